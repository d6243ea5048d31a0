"""The process that renders Jinja chat templates (run by aigc_chat.template_process).

A chat template comes from a model file: untrusted code in a small language. Jinja's sandbox
stops it reaching Python, but not from looping for hours (nested `range(100000)` loops) or
building gigabytes (`'x' * 10**9`, `"{:>999999999}".format(1)`, a string doubled in a
namespace forty times). Counting steps and bytes inside the sandbox would mean guarding every
string method and filter one by one; here the whole render runs in a process of its own
instead, with an address-space limit (a huge build ends as MemoryError in this process, not
the app's), an output cap, and a deadline kept by the parent (which kills this process and
starts another when it passes). SIGINT is ignored: the parent decides what Ctrl-C means.

Protocol on stdin/stdout: the worker writes READY once it has started; then, one request at
a time, a request is an 8-byte little-endian length
and that much JSON, {"op": "check" | "render", "source": str, "vars": {...}, "cap": int}; a
reply is one status byte, an 8-byte length and that many bytes of UTF-8 (the prompt for OK,
"Type: message" otherwise). Imports nothing of aigc_chat's, so it starts in a few tens of ms.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
from typing import Any, BinaryIO

OK, REFUSED, SYNTAX, FAILED, MEMORY, TOO_BIG = range(6)
READY = b"R"  # written once, when the worker has started and can take requests
_LEN = struct.Struct("<Q")
_REPLY = struct.Struct("<BQ")
MEMORY_HEADROOM = 512 << 20  # bytes of address space a render may use beyond the idle process
_CACHE_SIZE = 4  # compiled templates kept (a model's, an override, ...)


def _limit_memory() -> None:
    try:
        import resource

        with open("/proc/self/statm") as f:
            idle = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = idle + MEMORY_HEADROOM
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):  # no /proc or no RLIMIT_AS: the deadline still holds
        pass


def _environment() -> Any:
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Refusal(TemplateError):
        """The template's own raise_exception(): it refuses this conversation."""

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message: str) -> None:
        raise Refusal(message)

    env.globals["raise_exception"] = raise_exception
    env.refusal = Refusal  # type: ignore[attr-defined]
    return env


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    return data if data is not None and len(data) == n else None


def _reply(out: BinaryIO, status: int, text: str) -> None:
    body = text.encode("utf-8", "replace")  # a lone surrogate from a template becomes '?'
    out.write(_REPLY.pack(status, len(body)))
    out.write(body)
    out.flush()


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def handle(env: Any, cache: dict[str, Any], request: dict[str, Any]) -> tuple[int, str]:
    """One request: (status, text)."""
    from jinja2 import TemplateError, TemplateSyntaxError

    source = request["source"]
    template = cache.get(source)
    if template is None:
        try:
            template = env.from_string(source)
        except TemplateSyntaxError as exc:
            return SYNTAX, f"{exc.message or exc} (line {exc.lineno})"
        except MemoryError:
            return MEMORY, "MemoryError"
        except Exception as exc:  # noqa: BLE001 - RecursionError from deep nesting, anything: one line
            return SYNTAX, _describe(exc)
        if len(cache) >= _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[source] = template
    if request["op"] == "check":
        return OK, ""
    try:
        out = template.render(**request["vars"])
    except env.refusal as exc:
        return REFUSED, str(exc.message or exc)
    except MemoryError:
        return MEMORY, "MemoryError"
    except TemplateError as exc:
        return FAILED, _describe(exc)
    except Exception as exc:  # noqa: BLE001 - ZeroDivisionError, RecursionError, OverflowError, ...
        return FAILED, _describe(exc)
    if len(out) > request["cap"]:
        return TOO_BIG, str(len(out))
    return OK, out


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but replies on the channel
    env = _environment()
    _limit_memory()
    stdout.write(READY)  # started: the parent's deadlines count from here
    stdout.flush()
    cache: dict[str, Any] = {}
    while True:
        head = _read_exact(stdin, _LEN.size)
        if head is None:
            return  # the parent is gone or closed us
        body = _read_exact(stdin, _LEN.unpack(head)[0])
        if body is None:
            return
        try:
            status, text = handle(env, cache, json.loads(body))
        except MemoryError:
            status, text = MEMORY, "MemoryError"
        _reply(stdout, status, text)


if __name__ == "__main__":
    main()
