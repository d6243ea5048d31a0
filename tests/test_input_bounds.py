"""Bounds on what the user types that the work grows with: a search's words (repeats dropped,
at most SEARCH_MAX_WORDS different ones, SEARCH_MAX_CHARS characters), and stop sequences (at
most STOP_MAX_COUNT, each at most STOP_MAX_CHARS long), wherever they come from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aigc_chat.config import load_config
from aigc_chat.conversation import Conversation
from aigc_chat.errors import ConfigError, ParamError, UsageError
from aigc_chat.history_store import SEARCH_MAX_CHARS, SEARCH_MAX_WORDS, HistoryStore, fts_query
from aigc_chat.params import STOP_MAX_CHARS, STOP_MAX_COUNT, GenerationParams
from aigc_chat.tui.app import ChatApp
from tests.conftest import run_cli
from tests.scripted_backend import ScriptedBackend
from tests.tui_driver import SIZE, make_config, wait_for, wait_idle

# -- search ---------------------------------------------------------------------------------


def test_repeated_words_are_searched_once() -> None:
    assert fts_query("pelican " * 20_000) == '"pelican"'
    assert fts_query("Pelican fish PELICAN fish") == '"Pelican" "fish"'
    assert fts_query("pel fish pel", prefix=True) == '"fish" "pel"*'  # the word being typed stays last


def test_too_many_words_are_refused_with_the_limit() -> None:
    words = " ".join(f"w{i}" for i in range(SEARCH_MAX_WORDS))
    assert fts_query(words).count('"') == 2 * SEARCH_MAX_WORDS
    with pytest.raises(UsageError, match=f"at most {SEARCH_MAX_WORDS}"):
        fts_query(words + " one-more")
    with pytest.raises(UsageError, match="characters"):
        fts_query("a." * SEARCH_MAX_CHARS)  # one "word", a phrase of 1,000 terms


def test_history_search_cli(cli: str) -> None:
    with HistoryStore() as store:
        cid = store.create_conversation("birds")
        store.add_message(cid, "user", "How do pelicans fish?")
    r = run_cli(cli, "history", "search", *(["pelicans"] * 20_000), timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(f"{cid}\t"), r.stderr
    r = run_cli(cli, "history", "search", *(f"w{i}" for i in range(SEARCH_MAX_WORDS + 1)))
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1, r.stderr
    assert f"at most {SEARCH_MAX_WORDS}" in r.stderr


@pytest.mark.asyncio
async def test_tui_search_box(tmp_path: Path) -> None:
    store = HistoryStore()
    cid = store.create_conversation("birds")
    store.add_message(cid, "user", "How do pelicans fish?")
    app = ChatApp(make_config(tmp_path), store=store, backend=ScriptedBackend(["x"], model="s.gguf"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        pane = app.chat_screen.history
        count = app.query_one("#history-count")
        box = app.query_one("#history-search")
        box.value = "pelicans " * 20_000
        await wait_for(pilot, lambda: "1 match" in str(count.render()), 20, "one hit")
        assert [title for _, title in pane.rows()] == ["birds"]
        box.value = " ".join(f"w{i}" for i in range(SEARCH_MAX_WORDS + 1))
        await wait_for(pilot, lambda: f"at most {SEARCH_MAX_WORDS}" in str(count.render()), 20, "the limit")


# -- stop sequences -------------------------------------------------------------------------

MANY = [f"s{i}" for i in range(STOP_MAX_COUNT + 1)]


def test_stop_limits_in_the_one_checker() -> None:
    assert len(GenerationParams(stop=tuple(MANY[:-1])).validate().stop) == STOP_MAX_COUNT
    assert GenerationParams(stop=("x",) * 10_000).validate().stop == ("x",)  # repeats cost nothing
    with pytest.raises(ParamError, match=f"at most {STOP_MAX_COUNT} stop sequences"):
        GenerationParams(stop=tuple(MANY)).validate()
    with pytest.raises(ParamError, match=f"at most {STOP_MAX_CHARS} characters"):
        GenerationParams(stop=("x" * (STOP_MAX_CHARS + 1),)).validate()


def test_stop_flag(cli: str) -> None:
    args = [a for s in MANY for a in ("--stop", s)]
    r = run_cli(cli, "-p", "hi", *args)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1, r.stderr
    assert f"--stop: at most {STOP_MAX_COUNT} stop sequences, got {len(MANY)}" in r.stderr
    r = run_cli(cli, "-p", "hi", "--stop", "x" * 10_000)
    assert r.returncode == 2 and f"at most {STOP_MAX_CHARS} characters" in r.stderr


@pytest.mark.parametrize("table", ["[generation]", '[models."smol*"]', "[roles.pirate]"])
def test_stop_in_config_tables(table: str) -> None:
    path = Path(os.environ["AIGC_CHAT_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{table}\nstop = {MANY!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match=f"stop: at most {STOP_MAX_COUNT}"):
        load_config(path)


def test_stop_in_the_tui_and_a_stored_conversation() -> None:
    conv = Conversation(load_config())
    with pytest.raises(ParamError, match=f"at most {STOP_MAX_COUNT}"):
        conv.set_params(stop=tuple(MANY))  # /stop add, the settings pane
    # a conversation stored with more (an older build) opens with its stops left out
    settings = conv.settings.merged({"generation": {"stop": MANY, "top_k": 3}})
    assert settings.params.stop == () and settings.params.top_k == 3
