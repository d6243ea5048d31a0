"""Finding the GGUF files a user already has, and turning a short name into a path.

Where other tools put their models (read-only here; nothing is moved or written there):

- `models_dir` in config.toml: folders searched recursively;
- the Hugging Face hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
  `~/.cache/huggingface/hub`; `models--ORG--REPO/snapshots/REV/FILE.gguf` (symlinks into
  `blobs/`; the same blob in several revisions is listed once);
- LM Studio: `~/.lmstudio/models/PUBLISHER/REPO/FILE.gguf` (`$LMSTUDIO_MODELS` if set);
- llama.cpp's cache: `$LLAMA_CACHE`, else `$XDG_CACHE_HOME/llama.cpp` or `~/.cache/llama.cpp`;
- Ollama: `$OLLAMA_MODELS`, else `~/.ollama/models`: `manifests/REGISTRY/NAMESPACE/MODEL/TAG`
  names the layer of type `application/vnd.ollama.image.model`, `blobs/sha256-HEX`, a GGUF.

Every fact comes from our header reader (aigc_chat.gguf_info); what was read is kept in
`<cache dir>/models-index.json` keyed by path, size and mtime, so listing again only reads
the files that changed. Split files (`NAME-00001-of-0000N.gguf`) are one model.

Everything here was put there by the user or a download: the manifests and the index are read
through `aigc_chat.safe_open` (regular files only, never a FIFO that blocks or a link to
/dev/zero that reads forever, and only up to a bound), like the GGUF headers.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from aigc_chat.errors import AigcError, ModelError, UsageError
from aigc_chat.safe_open import read_regular

_SPLIT = re.compile(r"^(?P<base>.+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.gguf$", re.IGNORECASE)
OLLAMA_MODEL = "application/vnd.ollama.image.model"
EMBEDDING_ARCHS = {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3",
                   "t5encoder", "neo-bert", "modern-bert"}
KINDS = ("chat", "text", "embedding", "vision-projector", "adapter", "unreadable")
INDEX_VERSION = 1
_MAX_DEPTH = 6
_MAX_MANIFEST = 1 << 20  # an Ollama manifest is a few hundred bytes
_MAX_INDEX = 64 << 20  # models-index.json: about 500 bytes a model


@dataclass
class Found:
    name: str  # the short name `--model` accepts
    path: str  # the file to load (the first part of a split model)
    source: str  # models_dir, huggingface, lmstudio, llama.cpp, ollama, bundled
    label: str = ""  # where in that source: the HF repo, the Ollama model, the folder
    size: int = 0  # bytes, all parts together
    parts: int = 1
    architecture: str = ""
    parameters: int | None = None
    quantization: str = ""
    context_length: int | None = None
    chat_template: bool = False
    kind: str = "text"  # one of KINDS; only chat and text models are offered to chat with
    title: str = ""  # general.name
    error: str = ""

    @property
    def chattable(self) -> bool:
        return self.kind in ("chat", "text")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # flat: no deep copies


@dataclass
class Location:
    source: str
    path: Path
    exists: bool = False


def locations(config: Any = None, environ: dict[str, str] | None = None) -> list[Location]:
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())

    def user(p: str) -> Path:
        return home / p[2:] if p.startswith("~/") else Path(p)

    out = [Location("models_dir", user(d)) for d in getattr(config, "models_dir", []) or []]
    if env.get("HF_HUB_CACHE"):
        hub = user(env["HF_HUB_CACHE"])
    elif env.get("HF_HOME"):
        hub = user(env["HF_HOME"]) / "hub"
    else:
        hub = home / ".cache" / "huggingface" / "hub"
    out.append(Location("huggingface", hub))
    out.append(Location("lmstudio", user(env["LMSTUDIO_MODELS"]) if env.get("LMSTUDIO_MODELS")
                        else home / ".lmstudio" / "models"))
    if env.get("LLAMA_CACHE"):
        llama = user(env["LLAMA_CACHE"])
    else:
        llama = (user(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else home / ".cache") / "llama.cpp"
    out.append(Location("llama.cpp", llama))
    out.append(Location("ollama", user(env["OLLAMA_MODELS"]) if env.get("OLLAMA_MODELS")
                        else home / ".ollama" / "models"))
    for loc in out:
        loc.exists = loc.path.is_dir()
    return out


# -- walking the places ---------------------------------------------------------------------


def _walk_gguf(root: Path, max_depth: int = _MAX_DEPTH) -> list[Path]:
    out: list[Path] = []
    base_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if len(Path(dirpath).parts) - base_depth >= max_depth:
            dirnames[:] = []
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if f.lower().endswith(".gguf"):
                out.append(Path(dirpath) / f)
    return out


def _candidates(loc: Location) -> list[tuple[Path, str, str, str]]:
    """(file, label, name override, problem) for one location; a problem (an Ollama manifest
    that is not a regular file, or too big) makes the entry unreadable."""
    root = loc.path
    if not loc.exists:
        return []
    out: list[tuple[Path, str, str, str]] = []
    if loc.source == "huggingface":
        for repo in sorted(root.glob("models--*")):
            label = repo.name[len("models--"):].replace("--", "/")
            for f in _walk_gguf(repo / "snapshots"):
                out.append((f, label, "", ""))
    elif loc.source == "ollama":
        manifests = root / "manifests"
        for dirpath, _dirs, files in os.walk(manifests, followlinks=False):
            for tag in sorted(files):
                mpath = Path(dirpath) / tag
                try:
                    blob, name = _ollama_blob(root, manifests, mpath)
                except AigcError as exc:
                    name = _ollama_name(mpath.relative_to(manifests).parts)
                    out.append((mpath, name, name, str(exc)))
                    continue
                if blob is not None:
                    out.append((blob, name, name, ""))
    else:
        for f in _walk_gguf(root):
            rel = f.parent.relative_to(root)
            out.append((f, str(rel) if str(rel) != "." else "", "", ""))
    return out


def _ollama_name(rel: tuple[str, ...]) -> str:
    """`model:tag`, `namespace/model:tag` or `registry/namespace/model:tag` of a manifest path."""
    if len(rel) < 3:
        return ""
    *prefix, model, tag = rel
    registry = prefix[0] if prefix else ""
    namespace = "/".join(prefix[1:])
    if registry == "registry.ollama.ai" and namespace == "library":
        return f"{model}:{tag}"
    if registry == "registry.ollama.ai":
        return f"{namespace}/{model}:{tag}"
    return "/".join([*prefix, model]) + f":{tag}"


def _ollama_blob(root: Path, manifests: Path, mpath: Path) -> tuple[Path | None, str]:
    """The model blob a manifest names. Raises AigcError when the manifest is not a regular
    file or is over the bound; a manifest that is merely malformed names nothing."""
    rel = mpath.relative_to(manifests).parts
    if len(rel) < 3:
        return None, ""
    name = _ollama_name(rel)
    raw = read_regular(mpath, _MAX_MANIFEST, "Ollama manifest", ModelError)
    try:
        data = json.loads(raw.decode("utf-8"))
        layers = data.get("layers") or []
        for layer in layers:
            if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL:
                digest = str(layer.get("digest", ""))
                if re.fullmatch(r"sha256:[0-9a-fA-F]{64}", digest):
                    return root / "blobs" / digest.replace(":", "-"), name
    except (ValueError, AttributeError, RecursionError):  # RecursionError: [[[[… JSON
        pass
    return None, name


# -- facts per file ---------------------------------------------------------------------------


def _quant_name(info: Any) -> str:
    ft = info.metadata.get("general.file_type")
    if isinstance(ft, int):
        try:
            from gguf.constants import LlamaFileType

            name = LlamaFileType(ft).name
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except (ImportError, ValueError):
            pass
    if info.tensor_types:
        try:
            from gguf.constants import GGMLQuantizationType

            counts: dict[int, int] = {}
            for _, _, t, _ in info.tensors:
                counts[t] = counts.get(t, 0) + 1
            return GGMLQuantizationType(max(counts, key=counts.__getitem__)).name
        except (ImportError, ValueError):
            pass
    return ""


def _kind(info: Any, filename: str) -> str:
    meta, arch = info.metadata, info.architecture
    gtype = str(meta.get("general.type", "")).lower()
    if filename.lower().startswith("mmproj") or arch == "clip" or gtype in ("mmproj", "clip-vision"):
        return "vision-projector"
    if gtype == "adapter" or "adapter.type" in meta:
        return "adapter"
    if arch in EMBEDDING_ARCHS or f"{arch}.pooling_type" in meta:
        return "embedding"
    return "chat" if info.chat_template else "text"


def _facts(path: Path, parts: list[Path]) -> dict[str, Any]:
    """What the header says, as a JSON-able dict (cached by path, size and mtime)."""
    from aigc_chat.gguf_info import read_gguf_info

    try:
        info = read_gguf_info(path, check_architecture=False)
    except ModelError as exc:
        return {"kind": "unreadable", "error": str(exc)}
    params = 0
    for _, dims, _, _ in info.tensors:
        n = 1
        for d in dims:
            n *= d
        params += n
    for extra in parts[1:]:
        try:
            part = read_gguf_info(extra, check_architecture=False, require_architecture=False)
        except ModelError as exc:
            return {"kind": "unreadable", "error": str(exc)}
        for _, dims, _, _ in part.tensors:
            n = 1
            for d in dims:
                n *= d
            params += n
    title = info.metadata.get("general.name")
    return {
        "architecture": info.architecture,
        "parameters": params or None,
        "quantization": _quant_name(info),
        "context_length": info.context_length,
        "chat_template": info.chat_template is not None,
        "kind": _kind(info, path.name),
        "title": title if isinstance(title, str) else "",
    }


class _Index:
    """`models-index.json`: facts per file, reused while the file's size and mtime hold."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, Any] = {}
        self.dirty = False
        if path is not None and os.path.lexists(path):
            try:  # a FIFO or a link to /dev/zero here is not waited on, nor read forever
                data = json.loads(read_regular(path, _MAX_INDEX, "model index", ModelError).decode("utf-8"))
                if data.get("version") == INDEX_VERSION and isinstance(data.get("files"), dict):
                    self.entries = data["files"]
            except (AigcError, ValueError, AttributeError, RecursionError):
                pass  # unusable: the headers are read again, and the index is written anew

    def facts(self, path: Path, parts: list[Path]) -> dict[str, Any]:
        try:
            stamp = []
            for p in parts:
                st = os.stat(p)
                stamp.append([str(p), st.st_size, st.st_mtime_ns])
        except OSError as exc:
            return {"kind": "unreadable", "error": f"cannot read {path}: {exc.strerror or exc}"}
        key = str(path)
        hit = self.entries.get(key)
        if isinstance(hit, dict) and hit.get("stamp") == stamp and isinstance(hit.get("facts"), dict):
            return hit["facts"]
        facts = _facts(path, parts)
        self.entries[key] = {"stamp": stamp, "facts": facts}
        self.dirty = True
        return facts

    def save(self, seen: set[str]) -> None:
        if self.path is None:
            return
        stale = set(self.entries) - seen
        if not self.dirty and not stale:
            return
        for key in stale:
            del self.entries[key]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"version": INDEX_VERSION, "files": self.entries}), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only cache only costs reading the headers again


def _short_name(filename: str) -> str:
    m = _SPLIT.match(filename)
    stem = m.group("base") if m else filename[: -len(".gguf")] if filename.lower().endswith(".gguf") else filename
    return stem.lower()


def _group_splits(files: list[tuple[Path, str, str, str]]) -> list[tuple[list[Path], str, str, str]]:
    """One entry per model: split parts gathered under their first part."""
    groups: dict[tuple[str, str], dict[int, Path]] = {}
    totals: dict[tuple[str, str], int] = {}
    out: list[tuple[list[Path], str, str, str]] = []
    order: list[Any] = []
    for f, label, name, problem in files:
        m = _SPLIT.match(f.name)
        if m and not problem:
            key = (str(f.parent), m.group("base"))
            if key not in groups:
                groups[key] = {}
                order.append(("split", key, label))
            groups[key][int(m.group("i"))] = f
            totals[key] = int(m.group("n"))
        else:
            order.append(("file", (f, label, name, problem), None))
    for what, item, label in order:
        if what == "file":
            f, lab, name, problem = item
            out.append(([f], lab, name, problem))
            continue
        parts = groups[item]
        n = totals[item]
        ordered = [parts[i] for i in sorted(parts)]
        problem = "" if sorted(parts) == list(range(1, n + 1)) else f"split model: {len(parts)} of {n} parts present"
        if 1 not in parts:
            problem = problem or "split model: part 1 is missing"
        out.append((ordered, label, "", problem))
    return out


def scan(config: Any = None, environ: dict[str, str] | None = None, use_index: bool = True) -> list[Found]:
    """Every GGUF model in the places above, the bundled ones first."""
    from aigc_chat import default_model, paths

    found: list[Found] = []
    for name, title in default_model.BUNDLED.items():
        path = default_model.smollm2_file() if name == default_model.DEFAULT_NAME else default_model.gemma_model_path()
        installed = ((default_model.smollm2_file() is not None) if name == default_model.DEFAULT_NAME
                     else default_model._package() is not None)
        if installed and path is not None:
            found.append(Found(name=name, path=str(path), source="bundled", label=title,
                               kind="chat" if name == default_model.DEFAULT_NAME else "text"))
    index = _Index(paths.cache_dir() / "models-index.json" if use_index else None)
    seen_real: set[str] = set()
    seen_keys: set[str] = set()
    for b in found:  # the bundled files' facts too, when they exist yet (Gemma after assembly)
        if Path(b.path).is_file():
            _fill(b, index.facts(Path(b.path), [Path(b.path)]), [Path(b.path)])
            seen_keys.add(b.path)
            seen_real.add(_real(Path(b.path)))
    for loc in locations(config, environ):
        for parts, label, name, problem in _group_splits(_candidates(loc)):
            first = parts[0]
            real = _real(first)
            if real in seen_real:
                continue  # the same blob in two revisions, or a folder listed twice
            seen_real.add(real)
            entry = Found(name=name or _short_name(first.name), path=str(first), source=loc.source,
                          label=label, parts=len(parts))
            if problem:
                entry.kind, entry.error = "unreadable", problem
                try:
                    entry.size = sum(p.stat().st_size for p in parts)
                except OSError:
                    pass
            else:
                seen_keys.add(str(first))
                _fill(entry, index.facts(first, parts), parts)
            found.append(entry)
    index.save(seen_keys)
    return found


def _real(path: Path) -> str:
    """The file behind a path, for listing a file once: symlinks (the HF cache's snapshots) are
    followed; a plain file is itself (one lstat instead of realpath's walk)."""
    return os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path)


# The facts an index entry may set, and their types: models-index.json is a file on disk, so
# an entry that says anything else (a path, a name, a list where a string goes) is ignored.
_FACT_TYPES: dict[str, tuple[type, ...]] = {
    "architecture": (str,), "parameters": (int, type(None)), "quantization": (str,),
    "context_length": (int, type(None)), "chat_template": (bool,), "kind": (str,), "title": (str,),
    "error": (str,),
}


def _fill(entry: Found, facts: dict[str, Any], parts: list[Path]) -> None:
    for key, value in facts.items() if isinstance(facts, dict) else ():
        if isinstance(value, _FACT_TYPES.get(key, ())) and (key != "kind" or value in KINDS):
            setattr(entry, key, value)
    try:
        entry.size = sum(p.stat().st_size for p in parts)
    except OSError:
        pass
    if entry.parts > 1 or len(parts) > 1:
        entry.parts = len(parts)


# -- resolving a name ---------------------------------------------------------------------------


def looks_like_path(ref: str) -> bool:
    if _is_ollama_name(ref):  # "namespace/model:tag"
        return False
    return ("/" in ref or os.sep in ref or ref.startswith(("~", "."))
            or ref.lower().endswith((".gguf", ".pt", ".bin", ".safetensors")))


def _is_ollama_name(ref: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+:[\w.-]+", ref))


def resolve(ref: str, config: Any = None, environ: dict[str, str] | None = None,
            entries: list[Found] | None = None, progress: Any = None) -> Path:
    """The file a `--model` value means: a path as given, else a short name from `scan()`.
    Several matches: UsageError listing them (exit 2). None: ModelError saying where we looked."""
    from aigc_chat import default_model

    ref = ref.strip()
    bundled = default_model.bundled_name(ref)
    if bundled:
        return default_model.ensure_bundled(bundled, progress)
    if looks_like_path(ref) or Path(ref).expanduser().exists():
        return Path(ref).expanduser()
    entries = scan(config, environ) if entries is None else entries
    hits = match(ref, entries)
    if len(hits) == 1:
        return Path(hits[0].path)
    if hits:
        shown = "; ".join(f"{h.name} ({h.source}: {h.path})" for h in hits[:8])
        more = f"; and {len(hits) - 8} more" if len(hits) > 8 else ""
        raise UsageError(f"--model {ref!r} matches {len(hits)} models: {shown}{more}; "
                         "give the full name or a path")
    looked = ", ".join(f"{loc.source} {loc.path}{'' if loc.exists else ' (absent)'}"
                       for loc in locations(config, environ))
    raise ModelError(f"no model called {ref!r}: not a file, and not a name `aigc-chat models` "
                     f"lists (looked in: {looked})")


def match(ref: str, entries: list[Found]) -> list[Found]:
    """Exact name first; then names starting with ref; then names containing it. Files that are
    not chat models (embeddings, projectors) only match exactly."""
    key = ref.lower()
    usable = [e for e in entries if e.kind != "unreadable"]

    def names(e: Found) -> list[str]:
        out = [e.name]
        if e.source == "ollama" and e.name.endswith(":latest"):
            out.append(e.name[: -len(":latest")])
        return out

    exact = [e for e in usable if key in names(e)]
    if exact:
        return _dedupe(exact)
    chat = [e for e in usable if e.chattable]
    for test in (lambda n: n.startswith(key), lambda n: key in n):
        hits = [e for e in chat if any(test(n) for n in names(e))]
        if hits:
            return _dedupe(hits)
    return []


def _dedupe(entries: list[Found]) -> list[Found]:
    out, seen = [], set()
    for e in entries:
        real = os.path.realpath(e.path)
        if real not in seen:
            seen.add(real)
            out.append(e)
    return out


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" or n >= 100 else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def human_params(n: int | None) -> str:
    if not n:
        return "?"
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M"
    return f"{n / 1e3:.0f}K"
