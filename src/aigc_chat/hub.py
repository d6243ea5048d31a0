"""Bringing a GGUF model from a Hugging Face hub into the hub cache (`aigc-chat pull`).

Everything that talks to the hub is `huggingface_hub` (the optional extra `aigc-chat[hub]`):
the model listing (`HfApi.model_info`, with each file's size and LFS sha256), each file's
metadata (`get_hf_file_metadata`: the HEAD of `resolve`, with its redirect, ETag and size),
the transfer itself (`file_download.http_get`, which sends the byte Range to resume from and
retries a dropped connection from where it stopped), and the cache layout (`hf_hub_download`
makes the snapshot link once the blob is in place). HF_ENDPOINT, HF_TOKEN and the cache
variables mean what they mean to every other tool.

Why not `hf_hub_download` alone: huggingface_hub 2.x downloads into a temporary file unique
to the process and deletes it on any failure (its PR 4228), so a Ctrl-C on a 20 GB file throws
the 19 GB away. Here the partial file is `blobs/<etag>.incomplete` in the cache, kept on
Ctrl-C, a dropped connection or a full disk, and the same command continues it. Nothing is
listed before it is checked: the snapshot link (what `aigc-chat models` and other tools see)
is made only after every part of the model has its full size, the hub's sha256 and a GGUF
header we can read. A file that fails a check is deleted.

The core and the front ends meet through `on_progress(done, total, name)` and a cancel Event;
no Textual here (tests/test_import_contracts.py).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aigc_chat import hub_ref
from aigc_chat.errors import AigcError, UsageError
from aigc_chat.hub_ref import HubRef
from aigc_chat.sanitize import sanitize

DEFAULT_ENDPOINT = "https://huggingface.co"
ProgressFn = Callable[[int, int, str], None]


class PullError(AigcError):
    """A pull failed: one line that says why and, where it helps, what to do."""


class PullCancelled(AigcError):
    """Stopped on request (Esc in the TUI); the partial file is kept."""

    exit_code = 130


@dataclass
class RemoteFile:
    name: str  # path inside the repo
    size: int
    sha256: str | None  # the LFS sha256, when the hub gave one


@dataclass
class Plan:
    ref: HubRef
    commit: str
    quant: str
    files: list[RemoteFile] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)


# -- where things are -----------------------------------------------------------------------


def endpoint(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return (env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def offline(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return (env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE") or "").strip().upper() in {
        "1", "ON", "YES", "TRUE"}


def cache_dir(environ: dict[str, str] | None = None) -> Path:
    """The hub cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub (as discovery reads it)."""
    from aigc_chat import discovery

    return next(loc.path for loc in discovery.locations(None, environ) if loc.source == "huggingface")


def storage_dir(cache: Path, repo: str) -> Path:
    return cache / ("models--" + repo.replace("/", "--"))


def disk_free(path: Path) -> int:
    """Free bytes where `path` is (or would be): its nearest existing folder. A test replaces this."""
    p = path
    while not p.exists() and p.parent != p:
        p = p.parent
    return shutil.disk_usage(p).free


def _hf() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise PullError("pulling a model needs huggingface_hub: pip install 'aigc-chat[hub]' "
                        "(make installs it)") from None
    # Its logger writes retries ("Trying to resume download...") with server-made URLs to
    # stderr: several lines for what we say in one, and under the TUI, text over the screen.
    logging.getLogger("huggingface_hub").setLevel(logging.CRITICAL)
    return huggingface_hub


# -- which files ----------------------------------------------------------------------------


def select_files(ref: HubRef, names: list[str]) -> tuple[str, list[str]]:
    """(quant, the files to fetch: one, or every part of a split model) from a repo's file names."""
    ggufs = [n for n in names if n.lower().endswith(".gguf")]
    if ref.filename:
        if ref.filename not in names:
            raise PullError(f"{ref.repo} has no file {ref.filename}" + _listing(ggufs, "its GGUF files"))
        chosen = [ref.filename]
        key = hub_ref.split_key(ref.filename)
        if key is not None:
            if key[1] != 1:
                raise UsageError(f"{ref.filename} is part {key[1]} of a split model: name part 1 (the parts "
                                 "download together)")
            chosen = [n for n in ggufs if (k := hub_ref.split_key(n)) and k[0] == key[0] and k[2] == key[2]]
        return hub_ref.quant_of(ref.filename), _complete_split(ref, sorted(chosen))
    models = [n for n in ggufs if not hub_ref.is_projector(n)]
    if not models:
        raise PullError(f"{ref.repo} has no GGUF model file" + _listing(names, "it has"))
    wanted = ref.quant or hub_ref.DEFAULT_QUANT
    quants = _quants(models)
    chosen = [n for n in models if hub_ref.quant_matches(wanted, hub_ref.quant_of(n))]
    if not chosen:
        if ref.quant:
            raise UsageError(f"{ref.repo} has no {wanted} file" + _listing(quants, "its quants")
                             + f"; pick one: hf:{ref.repo}:QUANT")
        raise UsageError(f"{ref.repo} has no {wanted} (the default)" + _listing(quants, "its quants")
                         + f"; pick one: hf:{ref.repo}:QUANT")
    for n in chosen:  # a hostile name is refused before anything is asked of the server
        problem = hub_ref.unsafe_name(n)
        if problem:
            raise PullError(f"the hub lists a file name we refuse to write: {n!r} ({problem})")
    groups: dict[str, list[str]] = {}
    for n in chosen:
        key = hub_ref.split_key(n)
        groups.setdefault(f"{key[0]}#{key[2]}" if key else n, []).append(n)
    if len(groups) > 1:
        firsts = sorted(min(g) for g in groups.values())
        raise UsageError(f"{ref.repo} has {len(groups)} {wanted} models" + _listing(firsts, "")
                         + f"; name one: hf:{ref.repo}/FILE.gguf")
    only = sorted(next(iter(groups.values())))
    return hub_ref.quant_of(only[0]), _complete_split(ref, only)


def _complete_split(ref: HubRef, files: list[str]) -> list[str]:
    for n in files:
        problem = hub_ref.unsafe_name(n)
        if problem:
            raise PullError(f"the hub lists a file name we refuse to write: {n!r} ({problem})")
    key = hub_ref.split_key(files[0])
    if key is None:
        return files
    have = sorted(k[1] for n in files if (k := hub_ref.split_key(n)))
    if have != list(range(1, key[2] + 1)):
        raise PullError(f"{ref.repo}: the split model {files[0]} has {len(have)} of its {key[2]} parts on the hub")
    return files


def _quants(models: list[str]) -> list[str]:
    out: list[str] = []
    for n in models:
        q = hub_ref.quant_of(n)
        if q and q not in out and not hub_ref.unsafe_name(n):
            out.append(q)
    return out


def _listing(items: list[str], what: str, limit: int = 12) -> str:
    shown = [i for i in items if not hub_ref.unsafe_name(i)][:limit]
    if not shown:
        return f" ({what}: nothing)" if what else ""
    more = f", and {len(items) - limit} more" if len(items) > limit else ""
    return f"; {what + ': ' if what else ''}{', '.join(shown)}{more}"


# -- asking the hub -------------------------------------------------------------------------


def plan(ref: HubRef, environ: dict[str, str] | None = None) -> Plan:
    """What `ref` means on the hub: its commit and the files to fetch, with sizes and sha256."""
    if offline(environ):
        raise PullError(f"HF_HUB_OFFLINE is set and {ref} is not in the hub cache ({cache_dir(environ)}); "
                        "unset it to download")
    hf = _hf()
    ep = endpoint(environ)
    with hub_errors(ref, ep):
        info = hf.HfApi(endpoint=ep).model_info(ref.repo, revision=ref.revision, files_metadata=True)
    commit = info.sha or ""
    if not isinstance(commit, str) or not hub_ref.COMMIT.match(commit):
        raise PullError(f"the hub's answer for {ref.repo} has no valid commit id: {commit!r}")
    siblings = {s.rfilename: s for s in (info.siblings or []) if isinstance(s.rfilename, str)}
    quant, names = select_files(ref, list(siblings))
    files = []
    for name in names:
        s = siblings[name]
        lfs = s.lfs
        size = (lfs.size if lfs else None) if s.size is None else s.size
        sha = lfs.sha256 if lfs else None
        if sha is not None and (not isinstance(sha, str) or not hub_ref.SHA256.match(sha)):
            raise PullError(f"the hub gave {name} a checksum that is not a sha256: {sha!r}")
        if not isinstance(size, int) or size < 0:
            raise PullError(f"the hub gave {name} no usable size: {size!r}")
        if size == 0:
            raise PullError(f"{ref.repo}/{name} is 0 bytes on the hub: not a model")
        files.append(RemoteFile(name, size, sha))
    return Plan(ref, commit, quant, files)


@contextmanager
def hub_errors(ref: HubRef, ep: str) -> Iterator[None]:
    """huggingface_hub's exceptions as one line each."""
    from huggingface_hub import errors as e

    host = urlparse(ep).netloc or ep
    try:
        yield
    except e.GatedRepoError:
        raise PullError(f"{ref.repo} is gated: accept its terms on {host}, then set HF_TOKEN to a token "
                        "of that account") from None
    except e.RepositoryNotFoundError as exc:
        status = exc.response.status_code if exc.response is not None else 404
        if status in (401, 403):
            raise PullError(f"{ref.repo}: access denied ({status}); it is private or gated, or does not exist: "
                            "set HF_TOKEN to a token that can read it") from None
        raise PullError(f"no model repo {ref.repo} on {host} ({status})") from None
    except e.RevisionNotFoundError:
        raise PullError(f"{ref.repo} has no revision {ref.revision!r}") from None
    except e.RemoteEntryNotFoundError as exc:
        raise PullError(f"{ref.repo}: the hub has no such file ({_url_tail(exc)})") from None
    except e.OfflineModeIsEnabled:
        raise PullError(f"HF_HUB_OFFLINE is set: {ref} cannot be downloaded; unset it to download") from None
    except e.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        if status == 403:
            raise PullError(f"{ref.repo}: access denied (403): set HF_TOKEN to a token that can read it") from None
        raise PullError(f"the hub at {host} answered {status} for {ref.repo}") from None
    except (AigcError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - network errors (httpx2's), a reply we cannot parse: one line
        raise PullError(_network_line(exc, host, ref)) from None


def _url_tail(exc: Any) -> str:
    try:
        return sanitize(str(exc.response.url).rsplit("/resolve/", 1)[-1])
    except Exception:  # noqa: BLE001 - only for the message
        return "?"


def _network_line(exc: Exception, host: str, ref: HubRef) -> str:
    name = type(exc).__name__
    if "Connect" in name or "Timeout" in name or "Network" in name or isinstance(exc, ConnectionError):
        return (f"cannot reach the hub at {host}: {str(exc) or name} (no network? HF_ENDPOINT names another hub; "
                "HF_HUB_OFFLINE=1 uses only the cache)")
    if isinstance(exc, (KeyError, TypeError, ValueError)):
        return f"the hub's answer for {ref.repo} is not what a hub sends ({name}: {exc})"
    return f"talking to the hub at {host} failed: {name}: {exc}"


# -- fetching -------------------------------------------------------------------------------


class _Overflow(Exception):
    """The server sent more bytes than the file's listed size."""


class _HashingWriter:
    """The partial file, hashed as it is written, so the check after a 5 GB download costs no
    second read. The hashing runs on its own thread (hashlib releases the GIL), beside the
    socket reads. http_get only writes, unless a server ignores the Range; any seek or
    truncate makes us hash the whole file at the end instead."""

    def __init__(self, fh: Any, digest: Any, limit: int) -> None:
        import queue

        self.fh = fh
        self.digest = digest
        self.limit = limit  # the listed size: a server that sends more fills no disk
        self.exact = True
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self._thread = threading.Thread(target=self._hash, name="pull-sha256", daemon=True)
        self._thread.start()

    def _hash(self) -> None:
        while (data := self._queue.get()) is not None:
            self.digest.update(data)

    def write(self, data: bytes) -> int:
        if self.fh.tell() + len(data) > self.limit:
            raise _Overflow
        view = memoryview(data)
        while view:  # unbuffered: a short write (a disk filling up) is written again, or raises
            view = view[self.fh.write(view):]
        self._queue.put(data if isinstance(data, bytes) else bytes(data))
        return len(data)

    def hexdigest(self) -> str | None:
        """The sha256 of everything written, or None when the file must be read again."""
        self.close()
        return self.digest.hexdigest() if self.exact else None

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def tell(self) -> int:
        return self.fh.tell()

    def seek(self, *args: Any) -> int:
        self.exact = False
        return self.fh.seek(*args)

    def truncate(self, *args: Any) -> int:
        self.exact = False
        return self.fh.truncate(*args)


def _sha256_file(path: Path, digest: Any = None) -> Any:
    d = digest or hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            d.update(chunk)
    return d


def _progress_class(tracker: _Tracker, name: str) -> type:
    """The tqdm_class http_get gets: forwards byte counts, and stops the transfer on cancel."""

    class Bar:
        def __init__(self, **kwargs: Any) -> None:
            tracker.file_start(name, int(kwargs.get("initial") or 0))

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *exc: Any) -> None:
            return None

        def update(self, n: int | float | None = 1) -> None:
            tracker.advance(int(n or 0))

        def close(self) -> None:
            return None

    return Bar


class _Tracker:
    def __init__(self, total: int, on_progress: ProgressFn | None, cancel: threading.Event | None) -> None:
        self.total = total
        self.done_before = 0  # finished files, and what the current one had on disk
        self.current = 0
        self.name = ""
        self.on_progress = on_progress
        self.cancel = cancel

    def file_start(self, name: str, have: int) -> None:
        self.name = name
        self.current = have
        self._tell()

    def advance(self, n: int) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise PullCancelled("download stopped; the partial file is kept for next time")
        self.current += n
        self._tell()

    def file_done(self, size: int) -> None:
        self.done_before += size
        self.current = 0
        self._tell()

    @property
    def done(self) -> int:
        return self.done_before + self.current

    def _tell(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.done, self.total, self.name)


def partial_bytes(p: Plan, cache: Path) -> int:
    """Bytes of this plan already on disk (whole blobs and kept partial files)."""
    blobs = storage_dir(cache, p.ref.repo) / "blobs"
    have = 0
    for f in p.files:
        if f.sha256:
            for path in (blobs / f.sha256, blobs / f"{f.sha256}.incomplete"):
                try:
                    have += min(path.stat().st_size, f.size)
                    break
                except OSError:
                    continue
    return have


def check_space(p: Plan, cache: Path) -> None:
    need = p.total - partial_bytes(p, cache)
    free = disk_free(cache)
    if need > free:
        from aigc_chat.discovery import human_size

        raise PullError(f"not enough disk space in {cache}: {p.ref} needs {human_size(need)} more, "
                        f"{human_size(free)} free")


def pull(p: Plan, cache: Path | None = None, on_progress: ProgressFn | None = None,
         cancel: threading.Event | None = None, environ: dict[str, str] | None = None) -> Path:
    """Fetch, check and list the plan's files; the path of the model (its first part)."""
    hf = _hf()
    cache = cache if cache is not None else cache_dir(environ)
    ep = endpoint(environ)
    check_space(p, cache)
    storage = storage_dir(cache, p.ref.repo)
    tracker = _Tracker(p.total, on_progress, cancel)
    with hub_errors(p.ref, ep):
        for f in p.files:
            _fetch_blob(hf, p, f, storage, ep, tracker)
            tracker.file_done(f.size)
        # Every part is in blobs/ and checked: only now the snapshot links appear.
        paths = [Path(hf.hf_hub_download(p.ref.repo, f.name, revision=p.commit, cache_dir=str(cache),
                                         endpoint=ep)) for f in p.files]
    if p.ref.revision != p.commit and not hub_ref.COMMIT.match(p.ref.revision):
        try:  # as huggingface_hub records a branch it resolved: refs/main holds the commit
            (storage / "refs").mkdir(parents=True, exist_ok=True)
            (storage / "refs" / p.ref.revision).write_text(p.commit, encoding="utf-8")
        except OSError:
            pass
    return paths[0]


# huggingface_hub reads the body in 10 MiB chunks: the progress moves, a cancel is seen and the
# partial file grows only that often (a minute apart at 1.5 Mbit/s). 1 MiB costs nothing measurable.
CHUNK_SIZE = 1 << 20


def _fetch_blob(hf: Any, p: Plan, f: RemoteFile, storage: Path, ep: str, tracker: _Tracker) -> None:
    from huggingface_hub import constants, file_download
    from huggingface_hub.utils import WeakFileLock, build_hf_headers

    url = hf.hf_hub_url(p.ref.repo, f.name, revision=p.commit, endpoint=ep)
    meta = hf.get_hf_file_metadata(url, endpoint=ep)
    etag = meta.etag or ""
    if not (hub_ref.SHA256.match(etag) or hub_ref.COMMIT.match(etag)):
        raise PullError(f"the hub sent {f.name} with an ETag that is not a hash: {etag!r}")
    if f.sha256 and etag != f.sha256:
        raise PullError(f"the hub lists {f.name} with sha256 {f.sha256[:12]}… but serves {etag[:12]}…")
    if meta.size is not None and meta.size != f.size:
        raise PullError(f"the hub lists {f.name} as {f.size} bytes but serves {meta.size}")
    blobs = storage / "blobs"
    blob = blobs / etag
    if blob.exists() and blob.stat().st_size == f.size:
        tracker.file_start(f.name, f.size)
        return
    blobs.mkdir(parents=True, exist_ok=True)
    partial = blobs / f"{etag}.incomplete"
    headers = build_hf_headers()
    headers["Accept-Encoding"] = "identity"  # the size on the wire must be the file's
    location = meta.location or url
    if urlparse(location).netloc != urlparse(url).netloc:
        headers.pop("authorization", None)  # a CDN's signed URL: the token stays with the hub
    lock = storage.parent / ".locks" / storage.name / f"{etag}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, CHUNK_SIZE)
    with WeakFileLock(str(lock)):
        digest = hashlib.sha256()
        with open(partial, "ab", buffering=0) as fh:  # unbuffered: what is written is on disk when it stops
            have = fh.tell()
            if have > f.size:  # more than the file can hold: not ours to continue
                fh.truncate(0)
                have = 0
            if have:
                _sha256_file(partial, digest)
            writer = _HashingWriter(fh, digest, f.size)
            try:
                if have < f.size:
                    file_download.http_get(location, writer, resume_size=have, headers=headers,  # type: ignore[arg-type]
                                           expected_size=f.size, displayed_filename=f.name,
                                           tqdm_class=_progress_class(tracker, f.name))
                else:
                    tracker.file_start(f.name, have)
            except OSError as exc:
                _write_or_transfer_error(exc, f, partial)
            except _Overflow:
                partial.unlink(missing_ok=True)
                raise PullError(f"the hub sent more of {f.name} than its listed size ({f.size} bytes); "
                                "the file was deleted") from None
            finally:
                writer.close()
        _verify(p, f, partial, writer.hexdigest())
        os.replace(partial, blob)
        try:
            os.chmod(blob, 0o644 & ~_umask())
        except OSError:
            pass


def _write_or_transfer_error(exc: OSError, f: RemoteFile, partial: Path) -> None:
    from aigc_chat.discovery import human_size

    hf_error = type(exc).__module__.startswith("huggingface_hub")
    if hf_error:
        raise exc  # an HTTP error: hub_errors says it
    try:
        have = partial.stat().st_size
    except OSError:
        have = 0
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        raise PullError(f"cannot write {f.name}: {exc.strerror or exc} after {human_size(have)} of "
                        f"{human_size(f.size)}; the partial file is kept: free some space and run the same "
                        "command to go on") from None
    if exc.errno is not None:
        raise PullError(f"cannot write {partial}: {exc.strerror or exc}") from None
    raise PullError(f"the download of {f.name} stopped at {human_size(have)} of {human_size(f.size)} (the connection "
                    "ended early); the partial file is kept: run the same command to go on") from None


def _verify(p: Plan, f: RemoteFile, partial: Path, streamed: str | None) -> None:
    from aigc_chat.errors import ModelError
    from aigc_chat.gguf_info import read_gguf_info

    size = partial.stat().st_size
    if size != f.size:
        raise PullError(f"{f.name}: {size} bytes arrived, the hub lists {f.size}; the partial file is kept: "
                        "run the same command to go on")
    if f.sha256:
        got = streamed or _sha256_file(partial).hexdigest()
        if got != f.sha256:
            partial.unlink(missing_ok=True)
            raise PullError(f"{f.name}: checksum mismatch (sha256 {got[:16]}…, the hub says {f.sha256[:16]}…); "
                            "the file was deleted")
    key = hub_ref.split_key(f.name)
    try:
        read_gguf_info(partial, check_architecture=False, require_architecture=key is None or key[1] == 1)
    except ModelError as exc:
        partial.unlink(missing_ok=True)
        reason = str(exc).replace(str(partial), f.name)
        raise PullError(f"{p.ref.repo}/{f.name} is not a usable GGUF file ({reason}); the file was deleted") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- what is here already -------------------------------------------------------------------


def find_local(ref: HubRef, cache: Path | None = None, environ: dict[str, str] | None = None) -> Path | None:
    """The model `ref` names, if it is complete in the hub cache (no network); its first part."""
    cache = cache if cache is not None else cache_dir(environ)
    storage = storage_dir(cache, ref.repo)
    snaps = storage / "snapshots"
    if not snaps.is_dir():
        return None
    commits: list[Path] = []
    try:
        head = (storage / "refs" / ref.revision).read_text(encoding="utf-8").strip()
        if hub_ref.COMMIT.match(head):
            commits.append(snaps / head)
    except OSError:
        pass
    if hub_ref.COMMIT.match(ref.revision):
        commits.append(snaps / ref.revision)
    try:
        commits += sorted((d for d in snaps.iterdir() if d.is_dir()), key=lambda d: -d.stat().st_mtime)
    except OSError:
        return None
    for snap in dict.fromkeys(commits):
        names = [str(path.relative_to(snap)) for path in snap.rglob("*.gguf") if path.exists()]
        try:
            _quant, chosen = select_files(ref, names)
        except AigcError:
            continue
        if all((snap / n).exists() for n in chosen):
            return snap / chosen[0]
    return None
