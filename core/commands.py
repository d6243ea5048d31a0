"""Small subcommands: `config`, `doctor`, `models`."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import platform
import sys
from collections.abc import Callable
from pathlib import Path

from aigc_chat.cli import PROG, _Parser, add_model_flags
from aigc_chat.sanitize import sanitize


def run(name: str, argv: list[str]) -> int:
    return {"config": config_cmd, "doctor": doctor_cmd, "models": models_cmd}[name](argv)


def _load(args: argparse.Namespace):
    from aigc_chat.cli import _load as load

    return load(args)


def config_cmd(argv: list[str]) -> int:
    p = _Parser(prog=f"{PROG} config", description="Where the config file is, and what is in effect.")
    p.add_argument("action", choices=["path", "show"])
    add_model_flags(p)
    args = p.parse_args(argv)
    if args.action == "path":
        from aigc_chat import paths

        print(Path(args.config).expanduser() if args.config else paths.config_file())
        return 0
    import tomli_w

    cfg = _load(args)
    sys.stdout.write(sanitize(f"# effective settings (file: {cfg.path}{'' if cfg.path.exists() else ', not present'})\n"))
    sys.stdout.write(tomli_w.dumps(cfg.to_toml_dict()))
    return 0


def models_cmd(argv: list[str]) -> int:
    p = _Parser(prog=f"{PROG} models", description="List the models a backend offers.")
    add_model_flags(p)
    args = p.parse_args(argv)
    from aigc_chat.loader import create_backend

    cfg = _load(args)
    backend = create_backend(cfg)
    for name in backend.list_models():
        print(sanitize(name))  # names come from the server: untrusted
    return 0


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def doctor_cmd(argv: list[str]) -> int:
    p = _Parser(prog=f"{PROG} doctor", description="Check that aigc-chat can run here, and how.")
    add_model_flags(p)
    args = p.parse_args(argv)
    from aigc_chat import default_model, paths
    from aigc_chat.backends import registry

    problems: list[str] = []
    rows: list[tuple[str, str]] = []
    add: Callable[[str, str], None] = lambda k, v: rows.append((k, v))

    add("aigc-chat", _version("aigc-chat") or "not installed")
    add("python", f"{platform.python_version()} ({sys.executable})")
    for dist in ("textual", "rich", "llama-cpp-python", "torch", "openai"):
        add(dist, _version(dist) or "not installed")
    add("backends", ", ".join(registry.available()))
    try:
        cfg = _load(args)
        add("config", f"{cfg.path} ({'ok' if cfg.path.exists() else 'not present, defaults'})")
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
        cfg = None
        add("config", f"ERROR {exc}")
        problems.append(str(exc))
    add("data dir", str(paths.data_dir()))
    add("cache dir", str(paths.cache_dir()))
    add("default model", default_model.state())

    # llama.cpp: importable, GPU offload, the AMX workaround.
    from aigc_chat.backends.llama_cpp_backend import cpu_has_amx, extra_buffers_enabled

    try:
        import llama_cpp

        add("llama.cpp GPU offload", "yes" if llama_cpp.llama_supports_gpu_offload() else "no (CPU build)")
    except Exception as exc:  # noqa: BLE001
        add("llama.cpp", f"ERROR cannot import llama_cpp: {exc}")
        if cfg is None or cfg.backend == "llama":
            problems.append("llama-cpp-python is not importable: pip install 'aigc-chat[llama]'")
    amx = cpu_has_amx()
    setting = cfg.backend_options("llama")["extra_buffers"] if cfg else "auto"
    add("CPU AMX", f"{'yes' if amx else 'no'}; llama.cpp extra buffers "
        f"{'on' if extra_buffers_enabled(setting) else 'off (avoids the AMX segfault)'}")

    # Backends may add their own lines (the torch backend reports its device and dtype).
    for name in registry.available():
        try:
            cls = registry.load_class(name)
        except Exception:  # noqa: BLE001
            continue
        extra = getattr(cls, "doctor", None)
        if callable(extra):
            try:
                for key, value in extra():
                    add(key, value)
            except Exception as exc:  # noqa: BLE001
                add(name, f"ERROR {exc}")

    if cfg is not None:
        model_state = default_model.state()
        if cfg.backend == "llama" and not cfg.model and model_state.startswith("missing"):
            problems.append(default_model.INSTALL_HINT)
        elif cfg.backend in ("llama", "torch") and not cfg.model and model_state.startswith("cannot"):
            problems.append(f"the default model {model_state}")
    for label, where in (("data dir", paths.data_dir()),):
        problem = paths.dir_problem(where)
        if problem:
            problems.append(f"{label}: {problem}")
        if cfg.model and cfg.backend in ("llama", "torch") and cfg.model.endswith(".gguf"):
            from aigc_chat.errors import ModelError
            from aigc_chat.gguf_info import read_gguf_info

            try:
                read_gguf_info(cfg.model)
                add("configured model", f"ok: {cfg.model}")
            except ModelError as exc:
                add("configured model", f"ERROR {exc}")
                problems.append(str(exc))

    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(sanitize(f"{key:<{width}}  {value}"))  # paths, model metadata: shown, never obeyed
    if problems:
        for problem in problems:
            print(f"{PROG} doctor: problem: {sanitize(problem)}", file=sys.stderr)
        return 1
    print("ok: the default run can work")
    return 0
