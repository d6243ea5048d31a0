"""Roles: named presets of a system prompt, generation values and, optionally, a model.

A few built-in roles ship here (`BUILTINS`); config.toml adds more as `[roles.NAME]` tables,
and a table with a built-in's name replaces that role whole. config.py only stores the tables,
checked by `check_tables` when the file is read (one line naming the role and the key, exit 2,
like `[models."GLOB"]`). A role is chosen with `--role NAME` or the TUI's role picker (F8):

- its generation values are a layer of their own in aigc_chat.model_settings.resolve, between
  the conversation and the per-model tables: flags > conversation > role > `[models."GLOB"]` >
  `[generation]` > the model file > the built-in table > default, shown as `role NAME`;
- its system prompt and model apply unless the run names its own (`--system`, `--model` or
  `--backend`);
- a conversation started under a role keeps the role's values as its own settings (and the
  name, for display): editing the role later does not change it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigc_chat.errors import ConfigError, UsageError
from aigc_chat.params import PARAM_NAMES

if TYPE_CHECKING:
    from aigc_chat.config import Config

TEXT_KEYS = ("description", "system_prompt", "model", "backend")
NAME_RE = re.compile(r"^[\w.-]+$")


@dataclass(frozen=True)
class Role:
    name: str
    system_prompt: str = ""
    description: str = ""
    model: str = ""  # empty: whatever model the run has
    backend: str = ""  # empty: the run's backend (only read together with model)
    generation: dict[str, Any] = field(default_factory=dict)
    origin: str = "built-in"  # or "config"

    @property
    def source(self) -> str:
        """How model_settings and the settings pane name values that came from it."""
        return f"role {self.name}"

    def to_table(self) -> dict[str, Any]:
        """The role as a `[roles.NAME]` table (what `roles show` prints, what the config keeps)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in TEXT_KEYS if getattr(self, k)}
        for name in PARAM_NAMES:
            if name in self.generation and self.generation[name] is not None:
                value = self.generation[name]
                out[name] = list(value) if name == "stop" else value
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.origin, "description": self.description,
                "system_prompt": self.system_prompt, "model": self.model, "backend": self.backend,
                "generation": {k: (list(v) if k == "stop" else v) for k, v in self.generation.items()}}


# Short prompts on purpose: the default model is a 135M one, and long instructions only
# crowd its context. Sampling only where the job wants it (code and commands: near greedy).
BUILTINS: tuple[Role, ...] = (
    Role("coder", description="programming help: code first, brief explanation",
         system_prompt="You are an expert programmer. Answer with correct, idiomatic code in a fenced "
                       "block naming its language, then a short explanation. Say so when you are unsure.",
         generation={"temperature": 0.2}),
    Role("concise", description="short, direct answers",
         system_prompt="Answer briefly and directly, in one to three sentences. No preamble, no "
                       "repeating the question.",
         generation={"max_tokens": 256}),
    Role("translator", description="translates into English, or into the language you name",
         system_prompt="You are a translator. Translate the user's text into English, or into the "
                       "language they name. Keep the meaning, tone and formatting. Reply with the "
                       "translation only.",
         generation={"temperature": 0.2}),
    Role("shell", description="one shell command for the task, no chatter",
         system_prompt="You write shell commands. Reply with one bash command that does what the user "
                       "asks, in a fenced block, and nothing else. Prefer common, safe tools; never "
                       "delete anything unless asked.",
         generation={"temperature": 0.1, "max_tokens": 200}),
)


# -- the config's [roles.NAME] tables -------------------------------------------------------------


def check_tables(path: Path, table: Any) -> dict[str, dict[str, Any]]:
    """Check config.toml's `roles` table; the checked tables, each key's value coerced. A bad
    value is a ConfigError naming `roles.NAME.KEY`, as config.py names `models.GLOB.KEY`."""
    from aigc_chat.config import _check_backend, _checked_params

    if not isinstance(table, dict):
        raise ConfigError(path, "roles", "expected tables such as [roles.coder]")
    out: dict[str, dict[str, Any]] = {}
    for name, values in table.items():
        where = f"roles.{name}"
        if not NAME_RE.match(name):
            raise ConfigError(path, where, "a role's name is letters, digits, '-', '_' and '.'")
        if not isinstance(values, dict):
            raise ConfigError(path, where, "expected a table: system_prompt, model, description, "
                                           "generation values")
        checked: dict[str, Any] = {}
        for key in TEXT_KEYS:
            if key not in values:
                continue
            value = values[key]
            if not isinstance(value, str):
                raise ConfigError(path, f"{where}.{key}", f"expected a string, got {value!r}")
            if key == "backend" and value:
                try:
                    value = _check_backend(value, key)
                except UsageError as exc:
                    raise ConfigError(path, f"{where}.{key}", str(exc).split(": ", 1)[1]) from None
            checked[key] = value
        rest = {k: v for k, v in values.items() if k not in TEXT_KEYS}
        checked.update(_checked_params(path, where, rest))  # unknown keys end here too
        out[name] = checked
    return out


def _from_table(name: str, table: dict[str, Any]) -> Role:
    return Role(name, **{k: table[k] for k in TEXT_KEYS if k in table},
                generation={k: v for k, v in table.items() if k in PARAM_NAMES}, origin="config")


# -- lookup ---------------------------------------------------------------------------------------


def all_roles(config: Config | None) -> dict[str, Role]:
    """Every role by name: the built-ins (in their order), a config table replacing a
    built-in of its name, then the config's own in the file's order."""
    roles = {r.name: r for r in BUILTINS}
    for name, table in (getattr(config, "roles", None) or {}).items():
        roles[name] = _from_table(name, table)
    return roles


def find(config: Config | None, name: str) -> Role | None:
    return all_roles(config).get(name) if name else None


def lookup(config: Config | None, name: str, where: str = "--role") -> Role:
    """The role called `name`, or a UsageError (exit 2) listing the known ones."""
    role = find(config, name)
    if role is None:
        known = ", ".join(all_roles(config))
        raise UsageError(f"{where}: unknown role {name!r} (known: {known})")
    return role


# -- applying one --------------------------------------------------------------------------------


def apply(config: Config, name: str, keep: frozenset[str] | set[str] = frozenset()) -> Config:
    """A copy of config under role `name` ("" for none): its system prompt and its model (with
    its backend) replace the config's, except those named in `keep` ("system_prompt",
    "model", "backend": what this run's flags set). Its generation values are a layer of
    model_settings.resolve (`generation_layer`), so re-resolve the generation afterwards
    (loader.model_settings_for). What a previous role replaced comes back first, so
    switching roles never leaves the last one's system prompt behind."""
    role = lookup(config, name) if name else None
    base = dict(config.role_base) or {k: getattr(config, k) for k in ("system_prompt", "model", "backend")}
    cfg = replace(config, role="", role_base={})
    for key, value in base.items():
        if key not in keep:
            setattr(cfg, key, value)
    if role is None:
        return cfg
    cfg.role, cfg.role_base = role.name, base
    if role.system_prompt and "system_prompt" not in keep:
        cfg.system_prompt = role.system_prompt
    if role.model and not ({"model", "backend"} & set(keep)):
        cfg.model = role.model
        if role.backend:
            cfg.backend = role.backend
    return cfg


def generation_layer(config: Any) -> tuple[dict[str, Any], str]:
    """The active role's generation values and their source label (empty without a role)."""
    role = find(config, getattr(config, "role", "") or "")
    if role is None:
        return {}, ""
    return dict(role.generation), role.source


def sets(config: Any, settings: Any) -> list[str]:
    """What the active role set in these conversation settings (for the settings pane):
    'system prompt', 'model' and the generation values still as the role gave them."""
    role = find(config, getattr(settings, "role", "") or "")
    if role is None or getattr(config, "role", "") != role.name:
        return []
    out = []
    if role.system_prompt and settings.system_prompt == role.system_prompt:
        out.append("system prompt")
    if role.model and settings.model == role.model:
        out.append("model")
    for name in PARAM_NAMES:
        if config.source(name) == role.source and getattr(settings.params, name) == getattr(config.generation, name):
            out.append(name)
    return out
