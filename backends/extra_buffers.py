"""Whether llama.cpp's CPU "extra buffers" (weight repacking, and AMX) are safe to turn on.

Why this is not a one-liner: on CPUs with AMX, a llama.cpp built by GCC before 13.2.1 crashes
at the first multi-token batch of a quantised model (GCC reads `ldtilecfg` as an 8-byte load
and drops the stores that build the 64-byte tile config; llama.cpp issue 20824). The crash is
the build's, not the CPU's: a build without AMX code, or one made by a sound compiler, runs.
Turning extra buffers off on every AMX CPU threw away repacking (about 1.5x on prompts) on
machines where nothing would crash.

So, for "auto":
- a CPU without AMX, or a build without AMX code (`llama_print_system_info()` has no
  `AMX_INT8 = 1`): on, nothing can reach the broken path;
- otherwise: one probe in a child process, which loads a quantised model with extra
  buffers on and reads a short prompt. A crash there costs one refusal (off, and said so),
  never the user's process. The answer is kept per build and CPU in the cache dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aigc_chat import paths

PROBE_TIMEOUT = 120.0  # seconds; a probe that hangs is a refusal too


def _read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", "rb") as f:
            return f.read(1 << 20).decode("ascii", "replace")
    except OSError:
        return ""


def cpu_has_amx(cpuinfo: str | None = None) -> bool:
    """Whether the CPU reports AMX, read from /proc/cpuinfo (no instruction is executed)."""
    if cpuinfo is None:
        cpuinfo = _read_cpuinfo()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[-1].split())
            return bool(flags & {"amx_tile", "amx_int8", "amx_bf16"})
    return False


def build_has_amx(system_info: bytes | str) -> bool:
    """Whether this llama.cpp build carries AMX code ("AMX_INT8 = 1" in its system info)."""
    text = system_info.decode("utf-8", "replace") if isinstance(system_info, bytes) else system_info
    for part in text.split("|"):
        key, _, value = (x.strip() for x in part.rpartition(":")[-1].partition("="))
        if key.startswith("AMX") and value not in ("", "0"):
            return True
    return False


def _cpu_identity(cpuinfo: str | None = None) -> str:
    if cpuinfo is None:
        cpuinfo = _read_cpuinfo()
    lines = [ln for ln in cpuinfo.splitlines() if ln.startswith(("model name", "flags"))][:2]
    return "\n".join(lines)


def build_identity(llama_cpp: Any) -> str:
    """The build: its version, its shared library's size and time (a rebuild changes them)."""
    version = str(getattr(llama_cpp, "__version__", "?"))
    lib = getattr(getattr(llama_cpp, "llama_cpp", None), "_lib", None)
    name = getattr(lib, "_name", "") or ""
    try:
        st = os.stat(name)
        return f"{version}|{name}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        return f"{version}|{name}"


def _cache_file() -> Path:
    return paths.cache_dir() / "extra-buffers-probe.json"


def _read_cache() -> dict[str, Any]:
    try:
        with open(_cache_file(), "rb") as f:
            data = json.loads(f.read(1 << 20))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(data: dict[str, Any]) -> None:
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError:
        pass  # the probe runs again next time: slower, never wrong


def probe_command(model: Path) -> list[str]:
    # -P: the current folder is not on the child's path (a stray llama_cpp.py there is not ours)
    return [sys.executable, "-P", "-m", "aigc_chat.backends.extra_buffers", str(model)]


# What a broken build does on the first batch; any other failure (the file, memory, a hang on
# a loaded machine) says nothing about the build, so it is not kept.
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGABRT, signal.SIGFPE}


def _no_core_dump() -> None:
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass


def probe(key: str, model: Path, command: Sequence[str] | None = None,
          report: Callable[[str], None] | None = None) -> tuple[bool, str]:
    """(safe, why): run the probe once per key; a clean run or a crash is remembered, anything
    else only turns extra buffers off for this run."""
    cache = _read_cache()
    seen = cache.get(key)
    if isinstance(seen, dict) and isinstance(seen.get("safe"), bool):
        return seen["safe"], str(seen.get("why", ""))
    if report is not None:
        report("checking this llama.cpp build's AMX path in a child process (once)")
    cmd = list(command) if command is not None else probe_command(model)
    try:
        # Not our stdout/stderr: a crash handler there (llama.cpp runs gdb on a fault) must
        # not reach the user's terminal or pipe.
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=PROBE_TIMEOUT, check=False,
                           preexec_fn=_no_core_dump)
    except subprocess.TimeoutExpired:
        return False, "the probe did not finish in time (not kept: tried again next start)"
    except OSError as exc:
        return False, f"the probe could not start: {exc}"
    code = r.returncode
    if code == 0:
        safe, why = True, "the probe ran"
    elif code < 0 and -code in CRASH_SIGNALS:
        safe, why = False, f"the probe crashed (signal {-code})"
    else:
        return False, f"the probe failed ({code}; not kept: tried again next start)"
    cache[key] = {"safe": safe, "why": why}
    _write_cache(cache)
    return safe, why


def decide(setting: str, *, llama_cpp: Any | None = None, model: Path | None = None,
           cpuinfo: str | None = None, system_info: bytes | str | None = None,
           command: Sequence[str] | None = None, report: Callable[[str], None] | None = None) -> tuple[bool, str]:
    """(extra buffers on?, the reason in a few words) for `[llama] extra_buffers`."""
    if setting == "on":
        return True, "on (config)"
    if setting == "off":
        return False, "off (config)"
    if not cpu_has_amx(cpuinfo):
        return True, "on (no AMX on this CPU)"
    if system_info is None and llama_cpp is not None:
        system_info = llama_cpp.llama_print_system_info()
    if system_info is not None and not build_has_amx(system_info):
        return True, "on (this llama.cpp build has no AMX code)"
    ident = build_identity(llama_cpp) if llama_cpp is not None else "?"
    if model is None:  # doctor, a parity reference: off unless a probe said every type is safe
        return False, "off (AMX build on an AMX CPU; a model's load probes its own weight type)"
    # The answer is the build's, on this CPU, for this weight type: an F16 file never reaches
    # the AMX kernels, so its clean run says nothing about a Q4_0 file.
    key = hashlib.sha256(f"{ident}\n{_cpu_identity(cpuinfo)}\n{_weight_type(model)}".encode()).hexdigest()[:24]
    safe, why = probe(key, model, command, report)
    return safe, f"{'on' if safe else 'off'} (AMX build on an AMX CPU: {why})"


def _weight_type(model: Path) -> str:
    from aigc_chat.backends.requantize import main_weight_type
    from aigc_chat.gguf_info import read_gguf_info

    try:
        return str(main_weight_type(read_gguf_info(model)))
    except Exception:  # noqa: BLE001 - an unreadable header: its own key, the probe will say
        return "?"


def _probe_main(argv: list[str]) -> int:
    """The child: load the model with extra buffers on, read a 32-token batch, exit 0."""

    from aigc_chat.backends.llama_cpp_backend import _model_param_override, import_llama_cpp, install_quiet_logger

    llama_cpp = import_llama_cpp()
    install_quiet_logger(llama_cpp)
    with _model_param_override(llama_cpp, True):
        llm = llama_cpp.Llama(model_path=argv[0], n_ctx=128, n_batch=64, n_threads=2, verbose=False)
    n_vocab = llm.n_vocab()
    llm.eval([(i * 7919) % n_vocab for i in range(1, 33)])
    llm.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(_probe_main(sys.argv[1:]))
