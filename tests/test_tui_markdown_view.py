"""The reply body must take the height of its latest text, whatever order Textual's layout
passes and our updates come in (under load a finished reply once stayed drawn empty)."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll

from aigc_chat.tui.chat_view import MarkdownView

pytestmark = [pytest.mark.asyncio]


class Host(App[None]):
    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield MarkdownView("")


async def test_height_follows_the_text_when_a_layout_pass_ran_between_two_updates() -> None:
    app = Host()
    async with app.run_test(size=(60, 30)) as pilot:
        await pilot.pause()
        view = MarkdownView("")  # built with its text: a layout is pending for it...
        await app.query_one(VerticalScroll).mount(view)
        app.screen._refresh_layout()  # ...when a layout pass places it (height 0)
        view.set_source("one\n\ntwo\n\nthree\n\nfour")  # the reply ends before the view idles
        await pilot.pause()
        await pilot.pause()
        assert view.size.height == 7, view.size
        assert "four" in "\n".join(s.text for s in app.screen._compositor.render_strips())
