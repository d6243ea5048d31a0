"""What `aigc-chat pull` and `--model hf:…` are asked for, and which hub file names we accept.

Pure functions, no network and no huggingface_hub: parsing a reference, reading the quant out
of a GGUF file name, grouping split parts, and refusing file names a server should never send.

References (llama.cpp's `-hf` convention, with an optional `hf:` in front):
  hf:ORG/REPO            the repo's Q4_K_M, else a list of the quants it has
  hf:ORG/REPO:QUANT      the file(s) of that quant (a split model's parts together)
  hf:ORG/REPO/FILE.gguf  that file (a folder inside the repo is allowed: ORG/REPO/Q8_0/F.gguf)
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from aigc_chat.errors import UsageError

PREFIX = "hf:"
DEFAULT_QUANT = "Q4_K_M"
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
_REPO = re.compile(rf"^{_PART}/{_PART}$")
_QUANT_TEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,99}$")
SPLIT = re.compile(r"^(?P<base>.+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.gguf$", re.IGNORECASE)
# The quant tag at the end of a file stem: Q4_K_M, IQ4_XS, Q8_0, UD-Q4_K_XL, BF16, F16, MXFP4_MOE, TQ1_0.
_QUANT_AT_END = re.compile(
    r"(?:^|[-._])((?:UD-)?(?:I?Q[1-8](?:_[0-9A-Z]+)*|BF16|F16|F32|MXFP4(?:_MOE)?|TQ[12]_0))$", re.IGNORECASE)
COMMIT = re.compile(r"^[0-9a-f]{40}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class HubRef:
    repo: str
    quant: str | None = None  # None: the default quant
    filename: str | None = None  # a file named in the reference
    revision: str = "main"

    def __str__(self) -> str:
        if self.filename:
            return f"{PREFIX}{self.repo}/{self.filename}"
        return f"{PREFIX}{self.repo}" + (f":{self.quant}" if self.quant else "")


def parse_ref(text: str, revision: str = "main") -> HubRef:
    """`hf:ORG/REPO[:QUANT]`, `hf:ORG/REPO/FILE.gguf`, or the same without `hf:`; UsageError with one line."""
    raw = text[len(PREFIX):] if text.startswith(PREFIX) else text
    example = "hf:ORG/REPO[:QUANT] or hf:ORG/REPO/FILE.gguf (e.g. hf:bartowski/SmolLM2-1.7B-Instruct-GGUF:Q4_K_M)"
    if not raw or any(unicodedata.category(c).startswith("C") or c.isspace() for c in raw):
        raise UsageError(f"not a hub model reference: {text!r}: expected {example}")
    if not _REVISION.match(revision) or ".." in revision:
        raise UsageError(f"not a revision: {revision!r}")
    parts = raw.split("/")
    if len(parts) >= 3 and raw.lower().endswith(".gguf"):
        repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
        if not _REPO.match(repo) or ".." in repo:
            raise UsageError(f"not a hub repo: {repo!r}: expected ORG/REPO")
        problem = unsafe_name(filename)
        if problem:
            raise UsageError(f"not a file name in a repo: {filename!r} ({problem})")
        return HubRef(repo, None, filename, revision)
    repo, _, quant = raw.partition(":")
    if not _REPO.match(repo) or ".." in repo:
        raise UsageError(f"not a hub model reference: {text!r}: expected {example}")
    if quant and not _QUANT_TEXT.match(quant):
        raise UsageError(f"not a quant: {quant!r} (e.g. Q4_K_M, Q8_0, IQ4_XS)")
    return HubRef(repo, quant or None, None, revision)


def unsafe_name(name: str) -> str:
    """Why a repo file name must not become a path in the cache, or "" when it may.

    Refused: control, format or other invisible characters; a backslash or a drive colon;
    a leading `/` (absolute); empty, `.` or `..` parts (`a//b`, `../x`); overlong parts.
    A `/` between plain parts is a folder inside the repo (real repos keep big split models
    so: `Q8_0/MODEL-Q8_0-00001-of-00002.gguf`); each part must then be a plain name."""
    if not name:
        return "empty"
    if len(name) > 1000:
        return "too long"
    if any(unicodedata.category(c)[0] == "C" for c in name):
        return "control characters"
    if "\\" in name or ":" in name:
        return "a backslash or colon"
    if name.startswith("/"):
        return "an absolute path"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return "a '..' or empty path part"
        if len(part.encode("utf-8", "surrogatepass")) > 255:
            return "a name part over 255 bytes"
    return ""


def quant_of(filename: str) -> str:
    """The quant tag in a GGUF file name (`Qwen3-8B-Q4_K_M-00001-of-00002.gguf` -> `Q4_K_M`), or ""."""
    base = filename.rsplit("/", 1)[-1]
    m = SPLIT.match(base)
    stem = m.group("base") if m else (base[:-5] if base.lower().endswith(".gguf") else base)
    q = _QUANT_AT_END.search(stem)
    return q.group(1).upper() if q else ""


def is_projector(filename: str) -> bool:
    return filename.rsplit("/", 1)[-1].lower().startswith("mmproj")


def quant_matches(wanted: str, have: str) -> bool:
    """Case-insensitive; `Q4_K_XL` also finds `UD-Q4_K_XL`."""
    w, h = wanted.upper(), have.upper()
    return bool(h) and (w == h or h.endswith("-" + w))


def split_key(filename: str) -> tuple[str, int, int] | None:
    """(folder/base, part, of) for `BASE-0000i-of-0000N.gguf`, else None."""
    folder, _, base = filename.rpartition("/")
    m = SPLIT.match(base)
    if not m:
        return None
    return (f"{folder}/{m.group('base')}" if folder else m.group("base"), int(m.group("i")), int(m.group("n")))
