"""config.toml is the user's file: writing it (theme, reasoning view, "save as default") edits
it in place. Comments, order, formatting, a symlink into a dotfiles repo and a 0600 mode all
survive; only the keys that changed change; the write is atomic. A config nested thousands of
levels deep is one line naming the file, not "internal error: RecursionError"."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from aigc_chat.config import load_config, save_config
from aigc_chat.conversation import Conversation
from aigc_chat.errors import ConfigError
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.events import ReasoningShown
from tests.conftest import run_cli
from tests.scripted_backend import ScriptedBackend
from tests.tui_driver import SIZE, wait_for, wait_idle

USER_FILE = """\
# my aigc-chat settings -- kept in ~/dotfiles
backend = "llama"   # the local one

[tui]
# dark, always
theme = "nord"
stream_interval_ms   =   40

[generation]
temperature = 0.7 # tuned by hand
top_k = 30

[roles.pirate]  # for fun
system_prompt = "Talk like a pirate."
stop = [ "\\n\\n" ]   # two newlines end a turn
seed = 4

[models."smollm2*"]
temperature = 0.2
"""


def _user_config(tmp_path: Path, *, link: bool = True) -> tuple[Path, Path]:
    """The config as a symlink (the path aigc-chat is given) into a 'dotfiles' folder, 0600."""
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "aigc-chat.toml"
    target.write_text(USER_FILE)
    target.chmod(0o600)
    path = Path(os.environ["AIGC_CHAT_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    if link:
        path.symlink_to(target)
    else:
        path.write_text(USER_FILE)
        path.chmod(0o600)
        target = path
    return path, target


def _kept(path: Path, target: Path, changed: dict[str, str]) -> None:
    """The link is still a link to the same file, 0600, and every line but the changed ones
    is the user's, byte for byte, in order."""
    assert path.is_symlink() and path.resolve() == target.resolve()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    lines = target.read_text().splitlines()
    before = USER_FILE.splitlines()
    assert len(lines) == len(before), target.read_text()
    for old, new in zip(before, lines, strict=True):
        assert new == changed.get(old, old), (old, new)
    assert not list(target.parent.glob("*.tmp")) and not list(path.parent.glob("*.tmp"))


def test_a_theme_change_edits_one_line_through_the_symlink(tmp_path: Path) -> None:
    path, target = _user_config(tmp_path)
    cfg = load_config(path)
    cfg.tui["theme"] = "gruvbox"
    assert save_config(cfg) == path
    _kept(path, target, {'theme = "nord"': 'theme = "gruvbox"'})
    assert load_config(path).roles["pirate"]["stop"] == ("\n\n",)


def test_save_as_default_changes_only_what_was_chosen(tmp_path: Path) -> None:
    path, target = _user_config(tmp_path)
    conv = Conversation(load_config(path))
    conv.set_params(top_k=7, seed=None)
    conv.save_as_default()
    _kept(path, target, {"top_k = 30": "top_k = 7"})
    # a value taken away (the seed back to random) leaves the file; the rest stays
    conv.set_params(seed=5)
    conv.save_as_default()
    assert tomllib.loads(target.read_text())["generation"]["seed"] == 5
    conv.set_params(seed=None)
    conv.save_as_default()
    _kept(path, target, {"top_k = 30": "top_k = 7"})


def test_a_new_config_is_private_and_written_whole(tmp_path: Path) -> None:
    path = Path(os.environ["AIGC_CHAT_CONFIG"])
    cfg = load_config(path)
    cfg.tui["theme"] = "nord"
    save_config(cfg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tomllib.loads(path.read_text()) == {"tui": {"theme": "nord"}}


def test_a_failed_write_keeps_the_file_and_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, target = _user_config(tmp_path, link=False)
    cfg = load_config(path)
    cfg.tui["theme"] = "gruvbox"

    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        save_config(cfg)
    assert target.read_text() == USER_FILE and not list(path.parent.glob("*.tmp"))


@pytest.mark.asyncio
async def test_every_tui_path_keeps_the_users_file(tmp_path: Path) -> None:
    """The theme, the reasoning view and "save as default", through the running TUI."""
    path, target = _user_config(tmp_path)
    app = ChatApp(load_config(path), store=None, backend=ScriptedBackend(["x"], model="scripted.gguf"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        app.theme = "gruvbox"
        await wait_for(pilot, lambda: 'theme = "gruvbox"' in target.read_text(), 10, "the theme saved")
        app.post_message(ReasoningShown(True))
        await wait_for(pilot, lambda: "show_reasoning" in target.read_text(), 10, "the reasoning view saved")
        app.conversation.set_params(top_k=9)
        app.action_save_default()
        await wait_for(pilot, lambda: "top_k = 9" in target.read_text(), 10, "the defaults saved")
    assert path.is_symlink() and stat.S_IMODE(target.stat().st_mode) == 0o600
    text = target.read_text()
    for line in USER_FILE.splitlines():
        if line not in ('theme = "nord"', "top_k = 30"):
            assert line in text, line
    assert text.index("# dark, always") < text.index('theme = "gruvbox"') < text.index("[generation]")
    saved = tomllib.loads(text)
    assert saved["tui"]["show_reasoning"] is True and saved["roles"]["pirate"]["seed"] == 4


# -- item 12: nesting ---------------------------------------------------------------------

DEEP = "a = " + "[" * 10_000 + "]" * 10_000 + "\n"  # 20 KB


def test_a_deeply_nested_config_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(DEEP)
    with pytest.raises(ConfigError, match="nested too deeply") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_the_cli_says_so_in_one_line(cli: str, tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("[tui]\n" + DEEP.replace("a = ", "x = "))
    r = run_cli(cli, "config", "show", env={"AIGC_CHAT_CONFIG": str(path)})
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1, r.stderr
    assert str(path) in r.stderr and "nested too deeply" in r.stderr and "internal error" not in r.stderr
