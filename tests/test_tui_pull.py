"""The picker's "Download…" (F4, then Ctrl+D or the last row), against our hub server.

Real Textual (pilot), the real huggingface_hub against tests/hub_server.py, real llama.cpp
loading the model that arrived: type a reference, watch the progress line, the picker lists
the new model highlighted, Enter switches to it. Esc stops a download and keeps the partial.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.download_panel import DownloadPanel
from aigc_chat.tui.model_picker import ModelPicker
from tests.hub_server import HubServer, Repo
from tests.tiny_gguf import CHATML, write_tiny_gguf
from tests.tui_driver import make_config, send, wait_for, wait_idle

pytest.importorskip("huggingface_hub")

SIZE = (120, 32)


@pytest.fixture
def hubenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HubServer, Path]]:
    chat = {"tokenizer.chat_template": CHATML}
    one = write_tiny_gguf(tmp_path / "one.gguf", "llama", seed=1, extra=chat)
    pulled = write_tiny_gguf(tmp_path / "pulled.gguf", "llama", seed=5, extra=chat).read_bytes()
    big = pulled + b"\0" * (3 << 20)  # trailing bytes after the tensors: still a readable GGUF header
    with HubServer() as srv:
        srv.repos["tiny-org/Pulled-GGUF"] = Repo(files={"Pulled-Q4_K_M.gguf": pulled})
        srv.repos["tiny-org/Slow-GGUF"] = Repo(files={"Slow-Q4_K_M.gguf": big},
                                               pause_at={"Slow-Q4_K_M.gguf": (1 << 20) + 1000})
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        for var in ("LLAMA_CACHE", "OLLAMA_MODELS", "LMSTUDIO_MODELS"):
            monkeypatch.setenv(var, str(tmp_path / "none"))
        for var in ("HF_TOKEN", "HF_HUB_OFFLINE"):
            monkeypatch.delenv(var, raising=False)
        yield srv, one


def _app(tmp_path: Path, model: Path) -> ChatApp:
    cfg = make_config(tmp_path, max_tokens=3)
    cfg.model = str(model)
    return ChatApp(cfg, store=None)


async def _open_download(pilot, app: ChatApp) -> DownloadPanel:
    await pilot.press("f4")
    await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker) and app.screen.entries is not None,
                   30, "the picker's list")
    await pilot.press("ctrl+d")
    await wait_for(pilot, lambda: isinstance(app.screen, DownloadPanel), 10, "the download panel")
    screen = app.screen
    assert isinstance(screen, DownloadPanel)
    return screen


@pytest.mark.asyncio
async def test_download_then_pick_the_new_model(tmp_path: Path, hubenv: tuple[HubServer, Path]) -> None:
    srv, one = hubenv
    app = _app(tmp_path, one)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await _open_download(pilot, app)
        await pilot.press(*"tiny-org/Pulled-GGUF", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker) and app.screen.entries is not None
                       and "downloaded pulled-q4_k_m" in str(app.screen.query_one("#picker-status").render()),
                       60, "the picker to list the download")
        picker = app.screen
        assert isinstance(picker, ModelPicker)
        assert picker.downloaded.endswith("snapshots/" + srv.repos["tiny-org/Pulled-GGUF"].commit
                                          + "/Pulled-Q4_K_M.gguf")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.conversation.settings.model == picker.downloaded
                       and app.chat_screen.chat_state.phase == "idle", 60, "the switch to the pulled model")
        reply = await send(pilot, app, "hi")
        assert reply.text is not None


@pytest.mark.asyncio
async def test_esc_stops_the_download_and_keeps_the_partial(tmp_path: Path, hubenv: tuple[HubServer, Path]) -> None:
    srv, one = hubenv
    app = _app(tmp_path, one)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        panel = await _open_download(pilot, app)
        await pilot.press(*"hf:tiny-org/Slow-GGUF", "enter")
        await wait_for(pilot, lambda: srv.paused.is_set() and "%" in panel.line, 60, "the progress line")
        await pilot.press("escape")  # the server is paused mid-file: the stop lands at the next chunk
        srv.release.set()
        await wait_for(pilot, lambda: "stopped" in panel.line, 30, "the stop")
        assert isinstance(app.screen, DownloadPanel) and not panel.running
        (partial,) = (tmp_path / "hf" / "models--tiny-org--Slow-GGUF" / "blobs").glob("*.incomplete")
        kept = partial.stat().st_size
        assert kept >= 1 << 20
        # Enter goes on from there and brings the model
        srv.repos["tiny-org/Slow-GGUF"].pause_at.clear()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker) and bool(app.screen.downloaded),
                       60, "the finished download")
        assert srv.requests_for("Slow-Q4_K_M.gguf")[-1].range == f"bytes={kept}-"


@pytest.mark.asyncio
async def test_a_bad_reference_is_one_line_in_the_panel(tmp_path: Path, hubenv: tuple[HubServer, Path]) -> None:
    _srv, one = hubenv
    app = _app(tmp_path, one)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        panel = await _open_download(pilot, app)
        await pilot.press(*"nobody/nothing", "enter")
        await wait_for(pilot, lambda: not panel.running and "no model repo nobody/nothing" in panel.line, 30,
                       "the error line")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker), 10, "back in the picker")


@pytest.mark.asyncio
async def test_ctrl_b_hides_the_panel_and_the_chat_goes_on(tmp_path: Path, hubenv: tuple[HubServer, Path]) -> None:
    srv, one = hubenv
    app = _app(tmp_path, one)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        panel = await _open_download(pilot, app)
        await pilot.press(*"tiny-org/Slow-GGUF", "enter")
        await wait_for(pilot, lambda: srv.paused.is_set() and "%" in panel.line, 60, "the progress line")
        await pilot.press("ctrl+b")  # hide: back to the picker, the download goes on
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker), 10, "the picker")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.chat_screen, 10, "the chat")
        reply = await send(pilot, app, "still here?")  # the chat works while the download waits
        assert reply.text is not None
        srv.release.set()
        await wait_for(pilot, lambda: any("Slow-Q4_K_M.gguf is ready" in str(n.message)
                                          for n in app._notifications), 60, "the notification")
        assert (tmp_path / "hf" / "models--tiny-org--Slow-GGUF" / "snapshots").is_dir()


@pytest.mark.asyncio
async def test_quitting_stops_the_download(tmp_path: Path, hubenv: tuple[HubServer, Path]) -> None:
    """A download must not keep the process alive after the app quits (the worker pool is joined at exit)."""
    from aigc_chat.tui.download_panel import job_for

    srv, one = hubenv
    app = _app(tmp_path, one)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        panel = await _open_download(pilot, app)
        await pilot.press(*"tiny-org/Slow-GGUF", "enter")
        await wait_for(pilot, lambda: srv.paused.is_set() and "%" in panel.line, 60, "the progress line")
        job = job_for(app)
    srv.release.set()  # the app has quit; the next chunk arrives and the job sees it
    assert job.finished.wait(30), "the download went on after the app quit"
    (partial,) = (tmp_path / "hf" / "models--tiny-org--Slow-GGUF" / "blobs").glob("*.incomplete")
    assert 0 < partial.stat().st_size < len(srv.repos["tiny-org/Slow-GGUF"].files["Slow-Q4_K_M.gguf"])
    assert not (tmp_path / "hf" / "models--tiny-org--Slow-GGUF" / "snapshots").exists()
