"""Configuration: defaults < config.toml < environment < command-line flags.

Generation parameters also have a per-model layer (aigc_chat.model_settings): for each value,
flags > conversation > role > `[models."GLOB"]` > `[generation]` > the model's own defaults
(its GGUF `general.sampling.*` keys, then our built-in table) > llama.cpp's defaults. Roles
(`[roles.NAME]`) are stored here as checked tables; aigc_chat.roles does the rest. `sources`
records where each value in effect came from; `config show` and the settings pane print it.

Every value is checked here, once, and a bad one is reported as one line naming the file
and the key. Backend sections (`[llama]`, `[torch]`, `[openai]`, or a plug-in's) are
validated against the `OPTIONS` their backend class declares, so plug-ins get the same
treatment as built-ins.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aigc_chat import paths
from aigc_chat.errors import ConfigError, ParamError, UsageError
from aigc_chat.params import PARAM_NAMES, GenerationParams, coerce_param
from aigc_chat.safe_open import read_regular

DEFAULT_BACKEND = "llama"
TUI_DEFAULTS: dict[str, Any] = {
    "theme": "textual-dark",
    "show_history": True,
    # A blinking cursor repaints twice a second forever: ~435 B/s over SSH while idle.
    "cursor_blink": False,
    # How often streamed text is drawn; each draw repaints the scrolled chat area.
    "stream_interval_ms": 50,
    # A reasoning model's thinking, once the answer begins: expanded (True) or one line (False).
    "show_reasoning": False,
    # The terminal goes away mid-reply (SSH dropped, tmux killed): "finish" the reply (and a
    # queued question) without a screen and save it, or "stop" it at once.
    "on_hangup": "finish",
    # The most seconds a reply may go on without a screen after a hang-up.
    "hangup_limit_s": 600,
    # Run below the shell prompt without the alternate screen (tui/inline.py), like --inline.
    "inline": False,
    # Send the terminal only the cells that changed (tui/quiet_output.py); false: Textual's own
    # output, as it makes it (for diagnosis).
    "quiet_output": True,
}
STREAM_INTERVAL_MS = (10, 2000)
ON_HANGUP = ("finish", "stop")
HANGUP_LIMIT_S = (1, 86400)
CONFIG_LIMIT = 1 << 20  # 1 MiB: a hand-written config is a few KiB
NESTED_TOO_DEEP = "invalid TOML: nested too deeply (arrays or tables thousands of levels deep)"


@dataclass
class Config:
    path: Path
    backend: str = DEFAULT_BACKEND
    model: str = ""  # empty: the bundled default model (llama and torch backends)
    system_prompt: str = ""
    generation: GenerationParams = field(default_factory=GenerationParams)
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    tui: dict[str, Any] = field(default_factory=lambda: dict(TUI_DEFAULTS))
    # `[models."GLOB"]` tables: generation values for the models whose name matches GLOB.
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    # `[roles.NAME]` tables, checked (aigc_chat.roles: the built-ins, lookup, applying one).
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The role this run is under ("" for none: `--role`, the TUI's role picker), and the
    # system prompt, model and backend it replaced (so another role can put them back).
    role: str = ""
    role_base: dict[str, str] = field(default_factory=dict)
    # Extra folders `aigc-chat models` searches for GGUF files.
    models_dir: list[str] = field(default_factory=list)
    # What [generation] and the flags set, kept apart so the per-model layer can go between.
    file_generation: dict[str, Any] = field(default_factory=dict)
    flag_generation: dict[str, Any] = field(default_factory=dict)
    # parameter name -> where its value came from ("default", "config [generation]", "flag", ...)
    sources: dict[str, str] = field(default_factory=dict)
    # `[generation] on_overflow`: what a turn that would not fit does (aigc_chat.compaction)
    on_overflow: str = "drop_oldest"

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    def backend_options(self, name: str | None = None) -> dict[str, Any]:
        """Options for one backend: its class defaults overlaid with the config section."""
        from aigc_chat.backends import registry

        key = registry.canonical(name or self.backend)
        cls = registry.load_class(key)
        opts = {k: o.default for k, o in getattr(cls, "OPTIONS", {}).items()}
        opts.update(self.backends.get(key, {}))
        return opts

    def to_toml_dict(self) -> dict[str, Any]:
        """The effective settings as they would be written to config.toml."""
        out: dict[str, Any] = {
            "backend": self.backend,
            "model": self.model,
            "system_prompt": self.system_prompt,
        }
        # What the file itself sets and what differs from the defaults, never every default: a
        # value written here beats the model file's and the built-in table's (docs/models.md),
        # so writing them all (saving the theme, say) would take every model's own sampling away.
        default = GenerationParams().to_dict()
        gen = {k: v for k, v in self.generation.to_dict().items()
               if k in self.file_generation or v != default[k]}
        if gen.get("seed", 0) is None:
            del gen["seed"]  # TOML has no null
        if self.on_overflow != "drop_oldest":
            gen["on_overflow"] = self.on_overflow
        if gen:
            out["generation"] = gen
        out["tui"] = dict(self.tui)
        if self.models_dir:
            out["models_dir"] = list(self.models_dir)
        if self.models:
            out["models"] = {glob: {k: (list(v) if k == "stop" else v) for k, v in table.items()}
                             for glob, table in self.models.items()}
        if self.roles:
            out["roles"] = {name: {k: (list(v) if k == "stop" else v) for k, v in table.items()
                                   if v is not None}
                            for name, table in self.roles.items()}
        for name, opts in sorted(self.backends.items()):
            out[name] = dict(opts)
        return out

    def with_overrides(
        self,
        backend: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        **generation: Any,
    ) -> Config:
        """Apply command-line flags (None means: not given)."""
        cfg = replace(self)
        if backend is not None:
            cfg.backend = _check_backend(backend, "--backend")
        if model is not None:
            cfg.model = model
        if system_prompt is not None:
            cfg.system_prompt = system_prompt
        changes = {k: v for k, v in generation.items() if v is not None}
        if changes:
            try:
                cfg.generation = cfg.generation.with_updates(**changes)
            except ParamError as exc:
                raise UsageError(f"--{str(exc).replace('_', '-')}") from None
            cfg.flag_generation = {**cfg.flag_generation,
                                   **{k: getattr(cfg.generation, k) for k in changes}}
            cfg.sources = {**cfg.sources, **dict.fromkeys(changes, "flag")}
        return cfg


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read config.toml (missing is fine), then apply AIGC_CHAT_BACKEND / AIGC_CHAT_MODEL."""
    env = os.environ if environ is None else environ
    path = path or paths.config_file()
    cfg = Config(path=path)
    if path.exists():
        # Only a regular file, and only up to a size no real config reaches: a config path
        # pointing at /dev/zero or a FIFO must end with one line, not read (or wait) forever.
        data = read_regular(path, CONFIG_LIMIT, "config file")
        try:
            raw = tomllib.loads(data.decode("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(path, "", f"invalid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(path, "", f"cannot read: {exc}") from None
        except RecursionError:  # tomllib recurses per level: `a = [[[[…` 10,000 deep
            raise ConfigError(path, "", NESTED_TOO_DEEP) from None
        _apply_file(cfg, raw)
    if env.get("AIGC_CHAT_BACKEND"):
        cfg.backend = _check_backend(env["AIGC_CHAT_BACKEND"], "AIGC_CHAT_BACKEND")
    if env.get("AIGC_CHAT_MODEL"):
        cfg.model = env["AIGC_CHAT_MODEL"]
    return cfg


def save_config(cfg: Config) -> Path:
    """Write what changed in `cfg` into cfg.path, editing the file in place (the TUI's theme,
    reasoning view and "save as default").

    config.toml is the user's file: a full rewrite would drop their comments, reorder it, turn
    a symlink into a plain file and loosen a 0600 mode. Here the file is parsed with tomlkit,
    which keeps comments and layout, and only the values whose effect differs from what the
    file gives now are set (or removed: a seed back to random); every other byte stays. The
    result is written through a symlink to its target, atomically, with the old mode
    (aigc_chat.atomic_write). Returns the path given (the link, if it is one)."""
    import tomlkit

    path = cfg.path
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        text = read_regular(path, CONFIG_LIMIT, "config file").decode("utf-8")
        current = load_config(path, environ={}).to_toml_dict()
    else:
        text, current = "", Config(path=path).to_toml_dict()
    try:
        doc = tomlkit.parse(text)
        _edit(doc, current, cfg.to_toml_dict())
        data = tomlkit.dumps(doc).encode("utf-8")
    except RecursionError:
        raise ConfigError(path, "", NESTED_TOO_DEEP) from None
    except tomlkit.exceptions.TOMLKitError as exc:  # tomllib read it, tomlkit cannot edit it
        raise ConfigError(path, "", f"cannot be edited in place ({exc}); nothing was written") from None
    from aigc_chat.atomic_write import write_atomic

    write_atomic(path, data)
    return path


def _edit(doc: Any, current: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Make the tomlkit table `doc` say `wanted`, touching only the keys where the settings
    it gives (`current`, defaults filled in) differ. Tables are walked into, not replaced, so
    the comments inside them stay."""
    for key, value in wanted.items():
        have = current.get(key)
        if isinstance(value, dict):
            if key not in doc:
                if not value or value == have:
                    continue
                doc[key] = {}  # tomlkit makes it a table
            _edit(doc[key], have if isinstance(have, dict) else {}, value)
        elif value != have:
            doc[key] = value
    for key in current:
        if key not in wanted and key in doc:
            del doc[key]


def _check_backend(name: str, where: str) -> str:
    from aigc_chat.backends import registry

    if not isinstance(name, str) or not registry.is_known(name):
        known = ", ".join(registry.available())
        raise UsageError(f"{where}: unknown backend {name!r} (available: {known})")
    return registry.canonical(name)


def _apply_file(cfg: Config, raw: dict[str, Any]) -> None:
    from aigc_chat.backends import registry

    path = cfg.path
    for key, value in raw.items():
        if key == "backend":
            try:
                cfg.backend = _check_backend(value, "backend")
            except UsageError as exc:
                raise ConfigError(path, "backend", str(exc).split(": ", 1)[1]) from None
        elif key in ("model", "system_prompt"):
            if not isinstance(value, str):
                raise ConfigError(path, key, f"expected a string, got {value!r}")
            setattr(cfg, key, value)
        elif key == "generation":
            if isinstance(value, dict) and "on_overflow" in value:
                value = dict(value)
                cfg.on_overflow = _on_overflow(path, value.pop("on_overflow"))
            cfg.generation = _generation(path, value)
            cfg.file_generation = {k: getattr(cfg.generation, k) for k in value}
            cfg.sources.update(dict.fromkeys(value, "config [generation]"))
        elif key == "models":
            cfg.models = _models(path, value)
        elif key == "roles":
            from aigc_chat import roles

            cfg.roles = roles.check_tables(path, value)
        elif key == "models_dir":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(path, key, "expected a folder or a list of folders")
            cfg.models_dir = list(value)
        elif key == "tui":
            cfg.tui = _tui(path, value)
        elif registry.is_known(key):
            cfg.backends[registry.canonical(key)] = _backend_section(path, key, value)
        else:
            raise ConfigError(path, key, "unknown key")


def _on_overflow(path: Path, value: Any) -> str:
    from aigc_chat.compaction import OVERFLOW_CHOICES

    if value not in OVERFLOW_CHOICES:
        raise ConfigError(path, "generation.on_overflow",
                          f"expected one of {', '.join(OVERFLOW_CHOICES)}, got {value!r}")
    return str(value)


def _generation(path: Path, table: Any) -> GenerationParams:
    if not isinstance(table, dict):
        raise ConfigError(path, "generation", "expected a table")
    return GenerationParams(**_checked_params(path, "generation", table))


def _checked_params(path: Path, where: str, table: dict[str, Any]) -> dict[str, Any]:
    """Generation values from a config table, each checked; a bad one names `where.key`."""
    values: dict[str, Any] = {}
    for name, value in table.items():
        if name not in PARAM_NAMES:
            raise ConfigError(path, f"{where}.{name}", "unknown key")
        try:
            values[name] = coerce_param(name, value)
        except ParamError as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise ConfigError(path, f"{where}.{name}", reason) from None
    return values


def _models(path: Path, table: Any) -> dict[str, dict[str, Any]]:
    """`[models."smollm2*"] temperature = 0.2`: generation values per model name or glob."""
    if not isinstance(table, dict):
        raise ConfigError(path, "models", 'expected tables such as [models."smollm2*"]')
    out: dict[str, dict[str, Any]] = {}
    for glob, values in table.items():
        if not isinstance(values, dict):
            raise ConfigError(path, f"models.{glob}", "expected a table of generation values")
        out[glob] = _checked_params(path, f"models.{glob}", values)
    return out


def _tui(path: Path, table: Any) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(path, "tui", "expected a table")
    out = dict(TUI_DEFAULTS)
    for name, value in table.items():
        if name not in TUI_DEFAULTS:
            raise ConfigError(path, f"tui.{name}", "unknown key")
        if type(value) is not type(TUI_DEFAULTS[name]):
            raise ConfigError(path, f"tui.{name}", f"expected {type(TUI_DEFAULTS[name]).__name__}")
        lo, hi = STREAM_INTERVAL_MS
        if name == "stream_interval_ms" and not lo <= value <= hi:
            raise ConfigError(path, f"tui.{name}", f"must be between {lo} and {hi}, got {value}")
        if name == "on_hangup" and value not in ON_HANGUP:
            raise ConfigError(path, f"tui.{name}", f"must be one of {', '.join(ON_HANGUP)}, got {value!r}")
        lo, hi = HANGUP_LIMIT_S
        if name == "hangup_limit_s" and not lo <= value <= hi:
            raise ConfigError(path, f"tui.{name}", f"must be between {lo} and {hi}, got {value}")
        out[name] = value
    return out


def _backend_section(path: Path, name: str, table: Any) -> dict[str, Any]:
    from aigc_chat.backends import registry

    if not isinstance(table, dict):
        raise ConfigError(path, name, "expected a table")
    try:
        cls = registry.load_class(name)
    except UsageError:
        return dict(table)  # backend not importable here: keep its section untouched
    options = getattr(cls, "OPTIONS", {})
    out: dict[str, Any] = {}
    for key, value in table.items():
        opt = options.get(key)
        if opt is None:
            raise ConfigError(path, f"{name}.{key}", "unknown key")
        kinds = opt.kind if isinstance(opt.kind, tuple) else (opt.kind,)
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            names = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(path, f"{name}.{key}", f"expected {names}, got {value!r}")
        if opt.check is not None:
            reason = opt.check(value)
            if reason:
                raise ConfigError(path, f"{name}.{key}", reason)
        out[key] = value
    return out
