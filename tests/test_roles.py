"""Roles (aigc_chat.roles, docs/roles.md): the installed command with real config files in the
test's own dirs, one-shot runs on real llama.cpp with a tiny GGUF whose greedy answer is known
(tests/tiny_gguf.py), and what the history stored. The model's wording is not what is
checked: the settings are, through `config show --role` and the stored conversation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aigc_chat import model_settings, roles
from aigc_chat.cli import _load, build_parser
from aigc_chat.config import load_config, save_config
from aigc_chat.errors import ConfigError
from aigc_chat.history_store import HistoryStore
from aigc_chat.loader import model_settings_for
from tests.conftest import run_cli
from tests.tiny_gguf import write_chain_gguf

BUILTIN = ["coder", "concise", "translator", "shell"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chain_gguf(tmp_path_factory.mktemp("chain") / "chain.gguf", list("Sure."))


def write_config(dirs: dict[str, Path], text: str) -> Path:
    path = dirs["config"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def show(cli: str, *args: str) -> dict[str, tuple[str, str]]:
    """`config show ARGS`: name -> (value, source) for every generation value."""
    r = run_cli(cli, "config", "show", *args)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        if line.startswith("#   "):
            name, value, source = line[4:].split(None, 2)
            out[name] = (value, source)
    return out


def stored_settings() -> list[dict]:
    with HistoryStore() as s:
        return [s.get_conversation(c.id).settings for c in reversed(s.list_conversations())]


def oneshot(cli: str, *args: str) -> None:
    r = run_cli(cli, *args, "--prompt", "hi", timeout=120)
    assert r.returncode == 0 and r.stdout == "Sure.\n", r.stderr


# -- listing ------------------------------------------------------------------------------------

def test_the_builtins_are_listed(cli: str) -> None:
    r = run_cli(cli, "roles", "list")
    assert r.returncode == 0, r.stderr
    rows = [line.split(None, 2) for line in r.stdout.splitlines()]
    assert rows[0] == ["NAME", "SOURCE", "DESCRIPTION"]
    assert [row[:2] for row in rows[1:]] == [[n, "built-in"] for n in BUILTIN]
    assert all(len(row) == 3 and row[2] for row in rows[1:])  # each says what it is for
    r = run_cli(cli, "roles", "list", "--json")
    listed = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["name"] for d in listed] == BUILTIN and {d["source"] for d in listed} == {"built-in"}
    assert all(d["system_prompt"] and len(d["system_prompt"]) < 300 for d in listed)  # short: small models
    r = run_cli(cli, "roles", "show", "shell")
    assert r.returncode == 0 and r.stdout.startswith("# role shell, built in"), r.stderr
    assert "[roles.shell]" in r.stdout and "temperature = 0.1" in r.stdout


def test_a_config_role_replaces_a_builtin_and_adds_its_own(cli: str, isolated_dirs: dict[str, Path]) -> None:
    write_config(isolated_dirs, '[roles.coder]\ndescription = "my coder"\nsystem_prompt = "Write Rust."\n'
                 'top_k = 12\n\n[roles.pirate]\nsystem_prompt = "Talk like a pirate."\n')
    r = run_cli(cli, "roles", "list", "--json")
    assert r.returncode == 0, r.stderr
    listed = {d["name"]: d for d in map(json.loads, r.stdout.splitlines())}
    assert list(listed) == [*BUILTIN, "pirate"]
    coder = listed["coder"]
    # replaced whole: the built-in's temperature is gone with its prompt
    assert (coder["source"], coder["description"], coder["system_prompt"], coder["generation"]) == (
        "config", "my coder", "Write Rust.", {"top_k": 12})
    assert listed["concise"]["source"] == "built-in" and listed["pirate"]["source"] == "config"
    r = run_cli(cli, "roles", "show", "coder")
    assert r.stdout.splitlines()[1:] == ["[roles.coder]", 'description = "my coder"',
                                         'system_prompt = "Write Rust."', "top_k = 12"]
    assert show(cli, "--role", "coder")["top_k"] == ("12", "role coder")
    assert show(cli, "--role", "coder")["temperature"][1] != "role coder"


def test_saving_the_config_keeps_the_roles(isolated_dirs: dict[str, Path]) -> None:
    # the TUI rewrites config.toml (theme, reasoning view, save as default): roles must survive
    write_config(isolated_dirs, '[roles.pirate]\nsystem_prompt = "Arr."\nstop = ["\\n\\n"]\nseed = 4\n')
    save_config(load_config())
    assert load_config().roles == {"pirate": {"system_prompt": "Arr.", "stop": ("\n\n",), "seed": 4}}


# -- applied ------------------------------------------------------------------------------------

def test_role_in_oneshot_is_what_the_conversation_stores(cli: str, chain: Path,
                                                       isolated_dirs: dict[str, Path]) -> None:
    write_config(isolated_dirs, '[roles.pirate]\nsystem_prompt = "Talk like a pirate."\n'
                 "temperature = 0.3\nmax_tokens = 40\n")
    shown = show(cli, "--role", "pirate", "--model", str(chain))
    assert shown["temperature"] == ("0.3", "role pirate") and shown["max_tokens"] == ("40", "role pirate")
    r = run_cli(cli, "config", "show", "--role", "pirate")
    assert "# role pirate (config): sets the system prompt\n" in r.stdout
    assert 'system_prompt = "Talk like a pirate."' in r.stdout
    oneshot(cli, "--model", str(chain), "--role", "pirate")
    (settings,) = stored_settings()
    assert settings["role"] == "pirate" and settings["system_prompt"] == "Talk like a pirate."
    assert (settings["generation"]["temperature"], settings["generation"]["max_tokens"]) == (0.3, 40)
    # a flag wins over the role: the system prompt here, a sampling value below
    oneshot(cli, "--model", str(chain), "--role", "pirate", "--system", "Be plain.", "-t", "0.9")
    settings = stored_settings()[-1]
    assert (settings["role"], settings["system_prompt"], settings["generation"]["temperature"],
            settings["generation"]["max_tokens"]) == ("pirate", "Be plain.", 0.9, 40)


def test_a_role_brings_its_model_unless_one_is_named(cli: str, chain: Path, isolated_dirs: dict[str, Path],
                                                     tmp_path: Path) -> None:
    other = write_chain_gguf(tmp_path / "other.gguf", list("No!"))
    write_config(isolated_dirs, f'[roles.bot]\nmodel = "{chain}"\nbackend = "llama"\n')
    oneshot(cli, "--role", "bot")
    assert stored_settings()[-1]["model"] == str(chain)
    r = run_cli(cli, "--role", "bot", "--model", str(other), "--prompt", "hi", timeout=120)
    assert r.returncode == 0 and r.stdout == "No!\n", r.stderr
    assert stored_settings()[-1]["model"] == str(other)


def test_precedence_flag_role_per_model_generation(cli: str, chain: Path, isolated_dirs: dict[str, Path]) -> None:
    write_config(isolated_dirs,
                 "[generation]\ntemperature = 0.5\ntop_k = 5\nmin_p = 0.01\nrepeat_penalty = 1.2\n\n"
                 '[models."chain*"]\ntemperature = 0.6\ntop_k = 6\nmin_p = 0.02\n\n'
                 "[roles.r]\ntemperature = 0.7\ntop_k = 7\n")
    # the CLI's own path: parse the flags, load the config, put the model's layers in
    args = build_parser().parse_args(["--model", str(chain), "--role", "r", "--temperature", "0.9"])
    cfg = model_settings_for(_load(args))
    got = {name: (value, source) for name, value, source in model_settings.describe(cfg)}
    assert got["temperature"] == (0.9, "flag")
    assert got["top_k"] == (7, "role r")
    assert got["min_p"] == (0.02, 'config [models."chain*"]')
    assert got["repeat_penalty"] == (1.2, "config [generation]")
    assert got["max_tokens"] == (512, "default")
    # the same through the installed command, without the flag
    shown = show(cli, "--role", "r", "--model", str(chain))
    assert shown["temperature"] == ("0.7", "role r") and shown["min_p"] == ("0.02", 'config [models."chain*"]')
    # and without the role, the per-model table is back on top
    assert show(cli, "--model", str(chain))["top_k"] == ("6", 'config [models."chain*"]')
    oneshot(cli, "--model", str(chain), "--role", "r", "--temperature", "0.9")
    gen = stored_settings()[-1]["generation"]
    assert (gen["temperature"], gen["top_k"], gen["min_p"], gen["repeat_penalty"]) == (0.9, 7, 0.02, 1.2)


def test_a_conversation_keeps_its_roles_values_after_the_role_is_edited(
        cli: str, chain: Path, isolated_dirs: dict[str, Path]) -> None:
    write_config(isolated_dirs, '[roles.r]\nsystem_prompt = "First."\ntemperature = 0.3\n')
    oneshot(cli, "--model", str(chain), "--role", "r")
    write_config(isolated_dirs, '[roles.r]\nsystem_prompt = "Second."\ntemperature = 1.5\n')
    oneshot(cli, "--model", str(chain), "--continue")
    first, = stored_settings()
    assert (first["role"], first["system_prompt"], first["generation"]["temperature"]) == ("r", "First.", 0.3)
    with HistoryStore() as s:
        (c,) = s.list_conversations()
        assert len(s.get_conversation(c.id).messages) == 4  # continued, not a new one
    # a new conversation under the edited role gets its new values
    oneshot(cli, "--model", str(chain), "--role", "r")
    second = stored_settings()[-1]
    assert (second["system_prompt"], second["generation"]["temperature"]) == ("Second.", 1.5)


# -- mistakes: one line, exit 2 ----------------------------------------------------------------

@pytest.mark.parametrize(("toml", "line"), [
    ("[roles.coder]\ntemperature = 5\n", "roles.coder.temperature: must be between 0.0 and 2.0 (got 5.0)"),
    ("[roles.coder]\ntemprature = 0.1\n", "roles.coder.temprature: unknown key"),
    ("[roles.pirate]\nsystem_prompt = 3\n", "roles.pirate.system_prompt: expected a string, got 3"),
    ('[roles.pirate]\nbackend = "nope"\n', "roles.pirate.backend: unknown backend 'nope'"),
    ('[roles.pirate]\nstop = [""]\n', "roles.pirate.stop: a stop sequence cannot be empty"),
    ("[roles]\npirate = 1\n", "roles.pirate: expected a table"),
    ('[roles."two words"]\ntop_k = 1\n', "roles.two words: a role's name is"),
])
def test_a_bad_role_value_is_one_line_naming_role_and_key(cli: str, isolated_dirs: dict[str, Path],
                                                          toml: str, line: str) -> None:
    path = write_config(isolated_dirs, toml)
    for args in (["roles", "list"], ["config", "show"], ["--role", "coder", "--prompt", "hi"]):
        r = run_cli(cli, *args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith(f"aigc-chat: error: {path}: {line}"), r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr and r.stdout == ""


def test_an_unknown_role_is_one_line_listing_the_known_ones(cli: str, isolated_dirs: dict[str, Path]) -> None:
    write_config(isolated_dirs, '[roles.pirate]\nsystem_prompt = "Arr."\n')
    known = "(known: coder, concise, translator, shell, pirate)"
    for args, where in ((["--role", "pirat", "--prompt", "hi"], "--role"),
                        (["config", "show", "--role", "pirat"], "--role"),
                        (["roles", "show", "pirat"], "roles show")):
        r = run_cli(cli, *args)
        assert r.returncode == 2 and r.stdout == "", r.stderr
        assert r.stderr == f"aigc-chat: error: {where}: unknown role 'pirat' {known}\n"
    with HistoryStore() as s:
        assert s.list_conversations() == []  # refused before anything was saved


def test_config_error_is_the_models_tables_kind(isolated_dirs: dict[str, Path]) -> None:
    write_config(isolated_dirs, "[roles.coder]\ntop_p = 2\n")
    with pytest.raises(ConfigError) as exc:
        load_config()
    assert (exc.value.key, exc.value.reason) == ("roles.coder.top_p", "must be between 0.0 and 1.0 (got 2.0)")


def test_switching_roles_puts_back_what_the_last_one_replaced(isolated_dirs: dict[str, Path]) -> None:
    write_config(isolated_dirs, 'system_prompt = "Mine."\n[roles.quiet]\ntemperature = 0.1\n')
    base = load_config()
    coder = roles.apply(base, "coder")
    assert coder.system_prompt == roles.lookup(base, "coder").system_prompt
    quiet = roles.apply(coder, "quiet")  # no prompt of its own: the config's comes back, not coder's
    assert (quiet.role, quiet.system_prompt) == ("quiet", "Mine.")
    none = roles.apply(quiet, "")
    assert (none.role, none.system_prompt, none.role_base) == ("", "Mine.", {})
    kept = roles.apply(base.with_overrides(system_prompt="Flag."), "coder", {"system_prompt"})
    assert kept.system_prompt == "Flag."
