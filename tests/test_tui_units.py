"""The TUI's Textual-free parts: slash commands, OSC 52, code blocks, titles, stats, settings."""

from __future__ import annotations

import base64

import pytest

from aigc_chat.config import Config
from aigc_chat.conversation import ConversationSettings
from aigc_chat.errors import UsageError
from aigc_chat.labels import title_from
from aigc_chat.params import GenerationParams
from aigc_chat.tui import slash
from aigc_chat.tui.clipboard import clipboard_sequences, osc52, tmux_wrap
from aigc_chat.tui.help_text import help_markdown
from aigc_chat.tui.text_utils import format_stats, last_code_block


@pytest.mark.parametrize("text,name,arg,args", [
    ("/new", "new", "", ()),
    ("/system Be brief.  ", "system", "Be brief.", ()),
    ("/system", "system", "", ()),
    ("/temp 0.3", "temp", "0.3", ()),
    ("/stop add  END OF", "stop", " END OF", ("add",)),
    ("/stop clear", "stop", "", ("clear",)),
    ("/model ~/m.gguf", "model", "~/m.gguf", ()),
    ("/BACKEND openai", "backend", "openai", ()),
    ("/export out.json", "export", "out.json", ()),
    ("/gan", "gan", "", ("", "8")),
    ("/gan 3 16", "gan", "3 16", ("3", "16")),
    ("/help", "help", "", ()),
])
def test_slash_parse(text: str, name: str, arg: str, args: tuple[str, ...]) -> None:
    cmd = slash.parse(text)
    assert (cmd.name, cmd.arg, cmd.args) == (name, arg, args)


@pytest.mark.parametrize("text,reason", [
    ("/nope", "unknown command /nope"),
    ("/temp", "/temp needs a value"),
    ("/stop", "usage: /stop"),
    ("/stop add", "usage: /stop"),
    ("/stop remove x", "usage: /stop"),
    ("/model", "/model needs an argument"),
    ("/new now", "/new takes no argument"),
    ("/gan x", "LABEL must be a number"),
    ("/gan 1 500", "between 1 and 64"),
    ("/gan 1 2 3", "usage: /gan"),
])
def test_slash_errors_are_one_line(text: str, reason: str) -> None:
    with pytest.raises(UsageError) as exc:
        slash.parse(text)
    assert reason in str(exc.value) and "\n" not in str(exc.value)


def test_slash_detection_and_escape() -> None:
    assert slash.is_slash("/new") and slash.is_slash("  /temp 1")
    assert not slash.is_slash("/") and not slash.is_slash("//new") and not slash.is_slash("a /new")
    assert not slash.is_slash("/ 2 is a fraction")
    assert slash.unescape("//etc/passwd") == "/etc/passwd"
    assert slash.unescape("hello") == "hello"


def test_osc52_bare_and_tmux_wrapped() -> None:
    seq = osc52("héllo")
    assert seq == "\x1b]52;c;" + base64.b64encode("héllo".encode()).decode() + "\x07"
    wrapped = tmux_wrap(seq)
    assert wrapped.startswith("\x1bPtmux;\x1b\x1b]52;") and wrapped.endswith("\x07\x1b\\")
    assert wrapped.count("\x1b") == 4  # the inner ESC doubled, the DCS opener and ST
    assert clipboard_sequences("x", {}) == osc52("x")
    assert clipboard_sequences("x", {"TMUX": "/tmp/t,1,0"}) == osc52("x") + tmux_wrap(osc52("x"))


def test_last_code_block() -> None:
    text = "a\n```py\nx = 1\n```\nb\n~~~\ny = 2\n~~~\n"
    assert last_code_block(text) == "y = 2\n"
    assert last_code_block("no code") is None
    assert last_code_block("```\nfirst\n```\n\n```sh\nrun --it\n") == "run --it\n"  # cut off mid-block
    assert last_code_block("````md\n```\ninner\n```\n````\n") == "```\ninner\n```\n"


def test_title_from_first_line() -> None:
    assert title_from("\n  Hello   world \nmore") == "Hello world"
    long = title_from("x" * 100)
    assert len(long) == 60 and long.endswith("…")
    assert title_from("   \n") == ""  # shown as (untitled)


def test_format_stats() -> None:
    line = format_stats({"time_to_first_token": 0.1234, "decode_tokens_per_s": 48.25, "completion_tokens": 12}, "stop")
    assert line == "0.12 s to first token · 48.2 tok/s · 12 tokens · done"
    assert format_stats({}, "cancelled") == "cancelled"
    assert "max tokens" in format_stats({"completion_tokens": 5}, "length")


def test_conversation_settings_roundtrip_and_tolerance() -> None:
    cfg = Config(path=__import__("pathlib").Path("/nonexistent.toml"))
    base = ConversationSettings.from_config(cfg)
    s = base.merged({"backend": "openai", "model": "m", "system_prompt": "S",
                     "generation": {"temperature": 0.2, "stop": ["a", "b"], "top_k": -5, "bogus": 1}})
    assert (s.backend, s.model, s.system_prompt) == ("openai", "m", "S")
    assert s.params.temperature == 0.2 and s.params.stop == ("a", "b")
    assert s.params.top_k == GenerationParams().top_k  # invalid stored value ignored
    again = base.merged(s.to_dict())
    assert again == s
    assert base.merged({}) == base


def test_help_lists_every_command_and_newline_key() -> None:
    text = help_markdown()
    for name in slash.COMMANDS:
        assert f"`/{name}" in text
    assert "ctrl+j" in text and "Esc" in text


def test_ui_leaves_a_core_for_the_screen_on_small_machines() -> None:
    from pathlib import Path

    from aigc_chat import cpu
    from aigc_chat.tui.app import ChatApp
    from aigc_chat.tui.launch import ui_reserve

    assert ui_reserve(1) == 1 and ui_reserve(2) == 1 and ui_reserve(4) == 1 and ui_reserve(16) == 0
    before = cpu.ui_reserve()
    try:
        cpu.reserve_for_ui(0)
        ChatApp(Config(path=Path("/nonexistent.toml")))
        assert cpu.ui_reserve() == ui_reserve()  # the app keeps its core from the engine
        # and the engine's choice leaves it: 2 cores with the UI's reserved -> 1 thread
        assert cpu.engine_threads(2, None) == 1 and cpu.engine_threads(4, None) == 3
        assert cpu.engine_threads(16, None) == 8
    finally:
        cpu.reserve_for_ui(before)
