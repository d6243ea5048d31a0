"""A small Hugging Face hub of ours on 127.0.0.1, for the real huggingface_hub client.

No hub can be reached from the tests, so `aigc-chat pull` runs the real client (pinned in
pyproject.toml) against this server through HF_ENDPOINT. It answers what that client version
asks (read from huggingface_hub 2.4.0's own code: hf_api.model_info, file_download's
get_hf_file_metadata / http_get, utils._http.hf_raise_for_status):

- `GET /api/models/ORG/REPO[/revision/REV]?blobs=True`: `id`, `sha` (the commit) and
  `siblings`, each with `rfilename`, `size`, `blobId` and, for LFS files, `lfs` with `size`,
  `sha256` and `pointerSize`;
- `HEAD|GET /ORG/REPO/resolve/REV/FILE`: like the real hub for an LFS file, a 302 whose
  `Location` is another host (here `localhost` instead of `127.0.0.1`, so the client treats it
  as a CDN and stops following), with `X-Repo-Commit`, `X-Linked-Etag` (the sha256, quoted),
  `X-Linked-Size` and `ETag`;
- `GET /cdn/SHA256`: the bytes, with `Accept-Ranges` and `Range: bytes=N-` answered 206 with
  `Content-Range`;
- errors as the hub sends them: 404 `X-Error-Code: RepoNotFound` / `EntryNotFound` /
  `RevisionNotFound`, 401 for a private repo without the token, 403 `GatedRepo`.

Faults a test switches on per file or repo: a connection cut once after N bytes (the client
resumes with a Range), bytes that differ from the listed sha256, a file shorter than listed, a
pause after N bytes until the test releases it (Ctrl-C), hostile file names, a
listing whose sha256 is not a hash. Every request is logged (method, path, Range, auth).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    token: str | None = None  # private: 401 unless `Authorization: Bearer TOKEN`
    gated: str | None = None  # the listing is public; files answer 403 GatedRepo without this token
    listed_sha: dict[str, str] = field(default_factory=dict)  # a listing that lies about a file's sha256
    corrupt: set[str] = field(default_factory=set)  # serve other bytes than listed (same length)
    cut_once: dict[str, int] = field(default_factory=dict)  # close the first GET of FILE after N bytes
    short: dict[str, int] = field(default_factory=dict)  # FILE really holds only N bytes (listed whole)
    extra: dict[str, int] = field(default_factory=dict)  # FILE's body has N bytes more than listed
    pause_at: dict[str, int] = field(default_factory=dict)  # after N bytes of FILE, wait for HubServer.release


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    auth: str | None


class HubServer:
    """`with HubServer() as hub:`; `hub.url` for HF_ENDPOINT; `hub.repos["org/name"] = Repo(...)`."""

    CHUNK = 64 * 1024

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.log: list[Request] = []
        self.release = threading.Event()
        self.paused = threading.Event()
        self._cut_done: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cdn = f"http://localhost:{self.port}"  # another host to the client: a CDN
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def requests_for(self, name: str) -> list[Request]:
        return [r for r in self.log if r.path.startswith("/cdn/") and r.path.endswith("/" + name)]

    # -- lookups -------------------------------------------------------------------------

    def sha(self, repo: Repo, name: str) -> str:
        return repo.listed_sha.get(name) or hashlib.sha256(repo.files[name]).hexdigest()

    def body(self, repo: Repo, name: str) -> bytes:
        data = repo.files[name]
        if name in repo.short:
            data = data[: repo.short[name]]
        if name in repo.extra:
            data = data + b"\0" * repo.extra[name]
        if name in repo.corrupt:
            data = bytes(b ^ 0x5A for b in data)
        return data


def _handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_HEAD(self) -> None:
            self._route(head=True)

        def do_GET(self) -> None:
            self._route(head=False)

        # -- routing -------------------------------------------------------------------

        def _route(self, head: bool) -> None:
            path = urlparse(self.path).path
            with hub._lock:
                hub.log.append(Request(self.command, path, self.headers.get("Range"),
                                       self.headers.get("Authorization")))
            parts = path.strip("/").split("/")
            try:
                if parts[:2] == ["api", "models"] and len(parts) >= 4:
                    self._info("/".join(parts[2:4]), parts[5] if len(parts) >= 6 else "main")
                elif len(parts) >= 5 and parts[2] == "resolve":
                    self._resolve("/".join(parts[:2]), unquote(parts[3]), unquote("/".join(parts[4:])), head)
                elif parts[0] == "cdn" and len(parts) >= 4:
                    self._cdn("/".join(parts[1:3]), unquote("/".join(parts[3:])), head)
                else:
                    self._error(404, "RepoNotFound", "no such route")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _repo(self, name: str) -> Repo | None:
            repo = hub.repos.get(name)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return None
            auth = self.headers.get("Authorization")
            if repo.token is not None and auth != f"Bearer {repo.token}":
                self._error(401, "RepoNotFound", "Invalid username or password.")
                return None
            return repo

        def _info(self, name: str, revision: str) -> None:
            repo = self._repo(name)
            if repo is None:
                return
            if revision not in ("main", repo.commit):
                self._error(404, "RevisionNotFound", "Invalid rev id")
                return
            siblings = []
            for fname, data in repo.files.items():
                siblings.append({"rfilename": fname, "size": len(data), "blobId": hashlib.sha1(data).hexdigest(),
                                 "lfs": {"size": len(data), "sha256": hub.sha(repo, fname), "pointerSize": 134}})
            self._json({"_id": "x", "id": name, "modelId": name, "sha": repo.commit, "private": repo.token is not None,
                        "gated": "auto" if repo.gated is not None else False, "siblings": siblings})

        def _resolve(self, name: str, revision: str, fname: str, head: bool) -> None:
            repo = self._repo(name)
            if repo is None:
                return
            if revision not in ("main", repo.commit):
                self._error(404, "RevisionNotFound", "Invalid rev id")
                return
            if repo.gated is not None and self.headers.get("Authorization") != f"Bearer {repo.gated}":
                self._error(403, "GatedRepo", "Access to model is restricted", commit=repo.commit)
                return
            if fname not in repo.files:
                self._error(404, "EntryNotFound", "Entry not found", commit=repo.commit)
                return
            sha = hub.sha(repo, fname)
            self.send_response(302)
            self.send_header("Location", f"{hub.cdn}/cdn/{name}/{fname}")
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("X-Linked-Size", str(len(repo.files[fname])))
            self.send_header("ETag", '"pointer-etag"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _cdn(self, name: str, fname: str, head: bool) -> None:
            repo = hub.repos.get(name)
            if repo is None or fname not in repo.files:
                self._error(404, "EntryNotFound", "no such blob")
                return
            data = hub.body(repo, fname)
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                first = rng[len("bytes="):].split("-", 1)[0]
                start = int(first) if first.isdigit() else 0
            if start > len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206 if start else 200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if head:
                return
            cut = None
            with hub._lock:
                if fname in repo.cut_once and (name, fname) not in hub._cut_done:
                    hub._cut_done.add((name, fname))
                    cut = repo.cut_once[fname]
            pos = start
            while pos < len(data):
                end = min(len(data), pos + HubServer.CHUNK)
                if cut is not None and end - start > cut:
                    self.wfile.write(data[pos:start + cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data[pos:end])
                self.wfile.flush()
                pos = end
                if fname in repo.pause_at and pos >= repo.pause_at[fname] and not hub.release.is_set():
                    hub.paused.set()
                    hub.release.wait(60)

        # -- replies -------------------------------------------------------------------

        def _json(self, obj: Any) -> None:
            body = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
            body = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler
