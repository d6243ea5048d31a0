"""Small subcommands: `config`, `doctor`, `models`, `roles`."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aigc_chat.argtypes import OneLineParser, text
from aigc_chat.cli import PROG, add_model_flags
from aigc_chat.sanitize import one_line, sanitize

if TYPE_CHECKING:
    from aigc_chat.config import Config


def run(name: str, argv: list[str]) -> int:
    return {"config": config_cmd, "doctor": doctor_cmd, "models": models_cmd, "roles": roles_cmd}[name](argv)


def _load(args: argparse.Namespace):
    from aigc_chat.cli import _load as load

    return load(args)


def config_cmd(argv: list[str]) -> int:
    p = OneLineParser(prog=f"{PROG} config", description="Where the config file is, and what is in effect.")
    p.add_argument("action", choices=["path", "show"])
    add_model_flags(p)
    p.add_argument("--role", metavar="NAME", type=text, help="show the settings under this role")
    args = p.parse_args(argv)
    if args.action == "path":
        from aigc_chat import paths

        print(Path(args.config).expanduser() if args.config else paths.config_file())
        return 0
    import tomlkit

    from aigc_chat import model_settings
    from aigc_chat.loader import model_settings_for

    cfg = model_settings_for(_load(args))
    present = "" if cfg.path.exists() else ", not present"
    # comment lines: a path, a model or role name with a newline must not forge a TOML line
    sys.stdout.write(one_line(f"# effective settings (file: {cfg.path}{present})") + "\n")
    sys.stdout.write(one_line(f"# model: {cfg.model or 'the default'} (backend {cfg.backend})") + "\n")
    if cfg.role:
        sys.stdout.write(one_line(f"# {_role_line(cfg)}") + "\n")
    sys.stdout.write("# where each generation value comes from, highest first: flag > conversation > role > "
                     'config [models."GLOB"] > config [generation] > model file (general.sampling) > '
                     "built-in table > default\n")
    for name, value, source in model_settings.describe(cfg):
        shown = "(none)" if value is None or value == () else repr(list(value) if name == "stop" else value)
        sys.stdout.write(one_line(f"#   {name:<15} {shown:<10} {source}") + "\n")
    sys.stdout.write(tomlkit.dumps(cfg.to_toml_dict()))
    return 0


def _role_line(cfg: Config) -> str:
    """'role coder (built-in): sets the system prompt' — what the role set besides sampling."""
    from aigc_chat import roles

    role = roles.lookup(cfg, cfg.role)
    parts = [what for what, key in (("system prompt", "system_prompt"), ("model", "model"))
             if getattr(role, key) and getattr(cfg, key) == getattr(role, key)]
    return f"role {role.name} ({role.origin})" + (f": sets the {' and '.join(parts)}" if parts else "")


def roles_cmd(argv: list[str]) -> int:
    p = OneLineParser(prog=f"{PROG} roles",
                      description="Roles: named presets of a system prompt, sampling values and a model, "
                      "used with --role NAME or the TUI's role picker (F8). Built-in ones, and "
                      "[roles.NAME] tables in config.toml (docs/roles.md).")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("name", nargs="?", metavar="NAME", type=text, help="the role to show")
    p.add_argument("--json", action="store_true", help="list: one JSON object per role, one per line")
    p.add_argument("--config", metavar="PATH", help="config file (default: see `aigc-chat config path`)")
    args = p.parse_args(argv)
    import json

    import tomlkit

    from aigc_chat import roles

    cfg = _load(args)
    if args.action == "list":
        if args.name is not None:
            p.error("roles list takes no NAME (roles show NAME shows one)")
        every = list(roles.all_roles(cfg).values())
        if args.json:
            for role in every:
                print(json.dumps(role.to_dict(), ensure_ascii=True))
            return 0
        rows = [("NAME", "SOURCE", "DESCRIPTION")] + [(r.name, r.origin, r.description) for r in every]
        rows = [(one_line(a), one_line(b), one_line(c)) for a, b, c in rows]  # a config's names: shown, never obeyed
        widths = [max(len(r[i]) for r in rows) for i in range(2)]
        for r in rows:
            print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip())
        return 0
    if args.name is None:
        p.error("roles show needs a NAME (see `aigc-chat roles list`)")
    role = roles.lookup(cfg, args.name, "roles show")
    if args.json:
        print(json.dumps(role.to_dict(), ensure_ascii=True))
        return 0
    where = "built in" if role.origin == "built-in" else f"from {cfg.path}"
    sys.stdout.write(one_line(f"# role {role.name}, {where}; copy it into config.toml to change it") + "\n")
    sys.stdout.write(sanitize(tomlkit.dumps({"roles": {role.name: role.to_table()}})))
    return 0


def models_cmd(argv: list[str]) -> int:
    p = OneLineParser(prog=f"{PROG} models",
                description="List the GGUF models on this machine (config models_dir, the Hugging Face "
                "cache, LM Studio, llama.cpp's cache, Ollama), or a server's models with --backend openai.")
    add_model_flags(p)
    p.add_argument("--json", action="store_true", help="one JSON object per model, one per line")
    p.add_argument("--all", action="store_true", help="also list files that cannot be read")
    args = p.parse_args(argv)
    from aigc_chat.backends import registry
    from aigc_chat.loader import LOCAL_BACKENDS, create_backend

    cfg = _load(args)
    if registry.canonical(cfg.backend) not in LOCAL_BACKENDS:
        backend = create_backend(cfg)
        for name in backend.list_models():
            print(one_line(name))  # names come from the server: untrusted, one row each
        return 0
    return _list_local(cfg, args.json, args.all)


def _list_local(cfg, as_json: bool, show_all: bool) -> int:
    import json

    from aigc_chat import discovery

    entries = [e for e in discovery.scan(cfg) if show_all or e.kind != "unreadable" or e.parts > 1]
    if as_json:
        for e in entries:
            print(json.dumps(e.to_dict(), ensure_ascii=True))
        return 0
    rows = [("NAME", "ARCH", "PARAMS", "QUANT", "SIZE", "CTX", "CHAT", "KIND", "SOURCE", "PATH")]
    for e in entries:
        kind = e.kind + (f" ({e.error})" if e.error else "") + (f", {e.parts} parts" if e.parts > 1 else "")
        rows.append((e.name, e.architecture or "?", discovery.human_params(e.parameters),
                     e.quantization or "?", discovery.human_size(e.size) if e.size else "?",
                     str(e.context_length or "?"), "yes" if e.chat_template else "no", kind,
                     e.source + (f" {e.label}" if e.label and e.source != "bundled" else ""), e.path))
    # names and paths come from the disk and from file headers: shown, never obeyed, one row each
    shown = [[one_line(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in shown) for i in range(len(shown[0]) - 1)]
    for r in shown:
        print(("  ".join(f"{c:<{w}}" for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]).rstrip())
    missing = [loc for loc in discovery.locations(cfg) if not loc.exists]
    if missing:
        sys.stderr.write(one_line("not present: " + ", ".join(f"{m.source} {m.path}" for m in missing)) + "\n"
                         if sys.stderr.isatty() else "")
    return 0


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _backend_lines(name: str, cfg: Config | None) -> list[tuple[str, str, str]]:
    """(key, value, problem) rows from one backend's doctor_lines(); a backend that cannot
    be imported, or whose check fails, is one ERROR row, never a traceback."""
    from aigc_chat.backends import registry

    try:
        cls = registry.load_class(name)
        options = (cfg.backend_options(name) if cfg is not None
                   else {k: o.default for k, o in getattr(cls, "OPTIONS", {}).items()})
        rows = []
        for line in cls.doctor_lines(options):
            key, value, *rest = line  # a plug-in may return plain (key, value) pairs
            rows.append((str(key), str(value), str(rest[0]) if rest and rest[0] else ""))
        return rows
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return [(f"{name} backend", f"ERROR {first}", f"the {name} backend: {first}")]


def doctor_cmd(argv: list[str]) -> int:
    p = OneLineParser(prog=f"{PROG} doctor", description="Check that aigc-chat can run here, and how.")
    add_model_flags(p)
    args = p.parse_args(argv)
    from aigc_chat import default_model, paths
    from aigc_chat.backends import registry

    problems: list[str] = []
    rows: list[tuple[str, str]] = []

    def add(key: str, value: str) -> None:
        rows.append((key, value))

    add("aigc-chat", _version("aigc-chat") or "not installed")
    add("python", f"{platform.python_version()} ({sys.executable})")
    for dist in ("textual", "rich", "llama-cpp-python", "torch", "openai"):
        add(dist, _version(dist) or "not installed")
    add("backends", ", ".join(registry.available()))
    try:
        cfg = _load(args)
        add("config", f"{cfg.path} ({'ok' if cfg.path.exists() else 'not present, defaults'})")
    except Exception as exc:  # noqa: BLE001 - a config that cannot be read is what doctor reports
        cfg = None
        add("config", f"ERROR {exc}")
        problems.append(str(exc))
    add("data dir", str(paths.data_dir()))
    add("cache dir", str(paths.cache_dir()))
    add("default model", default_model.state())
    add(default_model.GEMMA_NAME, default_model.gemma_state())

    # Each backend answers for itself (llama.cpp's build, torch's device, a plug-in's own);
    # a problem counts only for the backend the config uses.
    from aigc_chat.config import DEFAULT_BACKEND

    configured = registry.canonical(cfg.backend) if cfg is not None else DEFAULT_BACKEND
    for name in registry.available():
        for key, value, why in _backend_lines(name, cfg):
            add(key, value)
            if why and name == configured:
                problems.append(why)

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
        if cfg is not None and cfg.model and cfg.backend in ("llama", "torch") and cfg.model.endswith(".gguf"):
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
        print(f"{one_line(key):<{width}}  {one_line(value)}")  # paths, model metadata: shown, never obeyed
    if problems:
        for problem in problems:
            print(f"{PROG} doctor: problem: {one_line(problem)}", file=sys.stderr)
        return 1
    print("ok: the default run can work")
    return 0
