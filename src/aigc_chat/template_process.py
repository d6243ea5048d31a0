"""Jinja chat templates rendered in a process of their own, bounded in time and memory.

A template from a model file can loop for hours or build gigabytes inside Jinja's sandbox
(docs/bad-input.md). Python cannot stop a thread, and a cap on each string operation is a
list that is never complete, so the render runs in aigc_chat.template_worker: one long-lived
child per app, started on first use, that compiles each template once and keeps it. A render
costs one round trip over a pipe (the compiled template is cached there; measured against the
in-process render in bench/template_render.py). The child has an address-space limit; this
side keeps the deadline, and on a deadline, Ctrl-C or any other surprise kills the child (a
fresh one starts at the next render), so a template can cost at most `deadline()` seconds and
the child's memory limit, and nothing of it outlives the call.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aigc_chat.template_worker import _LEN, _REPLY, FAILED, MEMORY, OK, READY, REFUSED, SYNTAX, TOO_BIG

RENDER_SECONDS = 2.0  # what any real template needs, many times over ...
SECONDS_PER_MIB = 1.0  # ... plus this per MiB of conversation sent
START_SECONDS = 60.0  # for the child to start (Python and Jinja on a slow, busy machine); not the template's
MAX_SOURCE = 1 << 20  # characters of template: real ones are a few KB, the largest tens of KB
OUTPUT_CAP = 64 << 20  # characters: four times the largest stdin, far past any context
_WORKER_FILE = Path(__file__).with_name("template_worker.py")


class TemplateRunError(Exception):
    """A render that did not produce a prompt. `kind`: refused (the template's own
    raise_exception), syntax, failed (an exception inside the template), memory, too_big,
    timeout, crashed (the renderer could not run)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


_KINDS = {REFUSED: "refused", SYNTAX: "syntax", FAILED: "failed", MEMORY: "memory", TOO_BIG: "too_big"}


def deadline(request_bytes: int) -> float:
    """Seconds a render may take: generous for any real template on a busy machine."""
    return RENDER_SECONDS + SECONDS_PER_MIB * request_bytes / (1 << 20)


class TemplateProcess:
    """The child that renders; one call at a time (a lock), from any thread."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = False  # the child has said it started (its start is not the template's time)
        self._lock = threading.Lock()

    def check(self, source: str) -> None:
        """Compile `source` (no render): TemplateRunError('syntax', ...) if it is not Jinja."""
        self._call({"op": "check", "source": source, "vars": {}, "cap": 0})

    def render(self, source: str, variables: dict[str, Any]) -> str:
        return self._call({"op": "render", "source": source, "vars": variables, "cap": OUTPUT_CAP})

    def warm(self) -> None:
        """Start the child now, without waiting for it, so that its start overlaps other
        work (a model loading) instead of delaying the first render."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._kill()
                try:
                    self._proc = self._start()
                except TemplateRunError:
                    pass  # the first render will say why

    def close(self) -> None:
        with self._lock:
            self._kill()

    # -- the child ---------------------------------------------------------------------------
    def _start(self) -> subprocess.Popen[bytes]:
        try:
            # -P: no script folder or cwd on sys.path (a jinja2.py lying in the cwd is not imported);
            # its own session: the terminal's Ctrl-C and Ctrl-Z go to us, not to it.
            return subprocess.Popen([sys.executable, "-P", str(_WORKER_FILE)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
                                    start_new_session=True, close_fds=True)
        except OSError as exc:
            raise TemplateRunError("crashed", f"cannot start the template renderer: {exc.strerror or exc}") from None

    def _kill(self) -> None:
        proc, self._proc, self._ready = self._proc, None, False
        if proc is None:
            return
        try:
            proc.kill()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass

    def _call(self, request: dict[str, Any]) -> str:
        if len(request["source"]) > MAX_SOURCE:
            raise TemplateRunError("syntax", f"the template is {len(request['source']):,} characters, "
                                             f"over the {MAX_SOURCE:,} limit")
        body = json.dumps(request, ensure_ascii=True).encode("ascii")
        limit = deadline(len(body) - len(request["source"]))  # the conversation's size, not the template's
        with self._lock:
            ok = False
            try:
                self._await_start()
                text = self._exchange(body, time.monotonic() + limit, limit)
                ok = True
                return text
            finally:
                if not ok:  # a deadline, Ctrl-C, a dead child: never reuse a child in an unknown state
                    self._kill()

    def _await_start(self) -> None:
        """A running child that has said it started (starting one if needed)."""
        if self._proc is None or self._proc.poll() is not None:
            self._kill()
            self._proc = self._start()
        if self._ready:
            return
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        try:
            _wait(fd, "r", time.monotonic() + START_SECONDS, START_SECONDS)
        except TemplateRunError:
            raise TemplateRunError("crashed", f"the template renderer did not start in {START_SECONDS:.0f} s") from None
        if os.read(fd, len(READY)) != READY:
            raise TemplateRunError("crashed", "the template renderer did not start (is jinja2 installed?)")
        self._ready = True

    def _exchange(self, body: bytes, end: float, limit: float) -> str:
        for attempt in range(2):  # a child that died since the last call gets one replacement
            if attempt:
                self._await_start()
            assert self._proc is not None
            try:
                self._send(self._proc, _LEN.pack(len(body)) + body, end, limit)
                break
            except BrokenPipeError:
                self._kill()
                if attempt:
                    raise TemplateRunError("crashed", "the template renderer stopped") from None
        assert self._proc is not None
        status, text = self._receive(self._proc, end, limit)
        if status == OK:
            return text
        raise TemplateRunError(_KINDS.get(status, "crashed"), text)

    @staticmethod
    def _send(proc: subprocess.Popen[bytes], data: bytes, end: float, limit: float) -> None:
        assert proc.stdin is not None
        fd = proc.stdin.fileno()
        view = memoryview(data)
        while view:
            _wait(fd, "w", end, limit)
            view = view[os.write(fd, view[: 1 << 16]):]

    @staticmethod
    def _receive(proc: subprocess.Popen[bytes], end: float, limit: float) -> tuple[int, str]:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        data = bytearray()
        need = _REPLY.size
        status = -1
        while len(data) < need:
            _wait(fd, "r", end, limit)
            chunk = os.read(fd, min(need - len(data), 1 << 20))
            if not chunk:
                code = proc.poll()
                detail = f"signal {-code}" if code is not None and code < 0 else "it exited"
                raise TemplateRunError("crashed", f"the template renderer stopped ({detail})")
            data += chunk
            if status < 0 and len(data) >= _REPLY.size:
                status, size = _REPLY.unpack_from(data)
                if size > 4 * OUTPUT_CAP + 4096:
                    raise TemplateRunError("crashed", "the template renderer sent a malformed reply")
                need = _REPLY.size + size
        return status, bytes(data[_REPLY.size:]).decode("utf-8", "replace")


def _wait(fd: int, mode: str, end: float, limit: float) -> None:
    """Until `fd` is ready, or TemplateRunError('timeout') at `end`. Short slices, so Ctrl-C
    (KeyboardInterrupt in the main thread) is seen at once."""
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise TemplateRunError("timeout", f"{limit:.0f} s")
        r, w, _ = select.select([fd] if mode == "r" else [], [fd] if mode == "w" else [], [], min(left, 0.1))
        if r or w:
            return


_SHARED: TemplateProcess | None = None
_SHARED_LOCK = threading.Lock()


def shared() -> TemplateProcess:
    """The app's one renderer process (closed when the app exits)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = TemplateProcess()
            atexit.register(_SHARED.close)
        return _SHARED
