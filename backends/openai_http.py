"""Bounds on what an OpenAI-compatible server may send back, for the openai backend.

A server is untrusted: a body that never ends, or 4 MB of gzip that inflates to 4 GB, must
not fill the memory, and HTML from a web server at the wrong address must not be parsed as
an API reply. The `openai` package reads bodies whole (the model list, error bodies) or line
by line (the event stream) with no limit, and lets httpx inflate gzip and deflate unbounded.

So every response our client receives passes through `bound()`, an httpx response hook that
runs before any byte of the body is read (redirects too): the body is inflated here, in
pieces of at most 64 KiB, and counted after inflating; past its limit the read fails with
`ReplyProblem`, which the backend turns into one line. The limits (docs/openai.md):

* a model list, or any other GET: 16 MiB;
* an error body (status 400 and up): 1 MiB;
* a streamed reply: 64 MiB in all, and 1 MiB for one line of the event stream.

We ask for `gzip, deflate` only; a body in any other encoding is refused, not decoded.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

try:  # the HTTP library the openai package uses: httpx2 from openai 3, httpx before
    import httpx2 as httpx
except ImportError:  # pragma: no cover - an older openai
    import httpx  # type: ignore[no-redef, import-not-found, unused-ignore]

MIB = 1 << 20
LIST_LIMIT = 16 * MIB
ERROR_LIMIT = 1 * MIB
STREAM_LIMIT = 64 * MIB
LINE_LIMIT = 1 * MIB
PIECE = 64 << 10  # inflated bytes handed on at a time
ENCODINGS = "gzip, deflate"


class ReplyProblem(Exception):
    """What the server sent cannot be used; `what` completes "the server at URL ..."."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def _mib(n: int) -> str:
    return f"{n // MIB} MiB"


def ask_encodings(request: httpx.Request) -> None:
    """Request hook: only the encodings `bound()` can inflate within its limits."""
    request.headers["Accept-Encoding"] = ENCODINGS


def bound(response: httpx.Response) -> None:
    """Response hook: the body is inflated and counted here, within the limits above."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        mode = ""
    elif encoding in ("gzip", "x-gzip", "deflate"):
        mode = "deflate" if encoding == "deflate" else "gzip"
    else:
        raise ReplyProblem(f"sent its reply in an encoding that was not asked for ({encoding[:40]!r})")
    streaming = response.request.method == "POST" and response.status_code < 400
    if response.status_code >= 400:
        limit, what = ERROR_LIMIT, "an error body"
    elif streaming:
        limit, what = STREAM_LIMIT, "a reply"
    else:
        limit, what = LIST_LIMIT, "a body"
    response.stream = _Bounded(response.stream, mode, limit, LINE_LIMIT if streaming else 0, what)
    if mode:
        del response.headers["content-encoding"]  # inflated here: httpx must not inflate again


class _Bounded(httpx.SyncByteStream):
    """The raw body, inflated if it is compressed, cut off past `limit` bytes (and, for an
    event stream, past `line_limit` bytes without a line break)."""

    def __init__(self, raw: Any, mode: str, limit: int, line_limit: int, what: str) -> None:
        self.raw, self.mode, self.limit, self.line_limit, self.what = raw, mode, limit, line_limit, what

    def __iter__(self) -> Iterator[bytes]:
        total = line = 0
        for piece in self._inflated():
            total += len(piece)
            if total > self.limit:
                raise ReplyProblem(f"sent {self.what} over the {_mib(self.limit)} limit")
            if self.line_limit:
                cut = max(piece.rfind(b"\n"), piece.rfind(b"\r"))
                line = line + len(piece) if cut < 0 else len(piece) - cut - 1
                if line > self.line_limit:
                    raise ReplyProblem(f"sent a line over the {_mib(self.line_limit)} limit in its event stream")
            yield piece

    def _inflated(self) -> Iterator[bytes]:
        if not self.mode:
            yield from self.raw
            return
        inflater = _Inflater(self.mode)
        for chunk in self.raw:
            yield from inflater.feed(chunk)
        yield from inflater.feed(b"")  # what is still inside (never `flush()`: it is unbounded)

    def close(self) -> None:
        close = getattr(self.raw, "close", None)
        if close is not None:
            close()


class _Inflater:
    """zlib, handing out at most PIECE bytes at a time however much one input chunk holds."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.wbits = zlib.MAX_WBITS | 16 if mode == "gzip" else zlib.MAX_WBITS
        self.zlib = zlib.decompressobj(self.wbits)
        self.started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while not self.zlib.eof:
            try:
                out = self.zlib.decompress(data, PIECE)
            except zlib.error:
                if not self.started and self.mode == "deflate" and self.wbits > 0:
                    # "deflate" is zlib-wrapped by the standard, raw from some servers
                    self.wbits = -zlib.MAX_WBITS
                    self.zlib = zlib.decompressobj(self.wbits)
                    continue
                raise ReplyProblem(f"sent a {self.mode} body that does not inflate") from None
            self.started = True
            data = self.zlib.unconsumed_tail
            if out:
                yield out
            if not data and len(out) < PIECE:
                return  # all input taken, and no output held back


def describe_type(content_type: str) -> str:
    """What a Content-Type says came back, in words: 'HTML', 'JSON', 'plain text'."""
    main = content_type.split(";")[0].strip().lower()
    if main in ("text/html", "application/xhtml+xml"):
        return "HTML"
    if main == "application/json" or main.endswith("+json"):
        return "JSON"
    if main == "text/plain":
        return "plain text"
    if not main:
        return "a body without a Content-Type"
    return f"{main[:60]} content"


def client(**kwargs: Any) -> Any:
    """The httpx client the openai package is given: its defaults, with our hooks."""
    import openai

    return openai.DefaultHttpxClient(event_hooks={"request": [ask_encodings], "response": [bound]}, **kwargs)
