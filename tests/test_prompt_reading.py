"""Prompt reading on real llama.cpp (a tiny GGUF): progress between batches, a cancel that
stops between them and keeps what was read, the stats that say how the prompt was read,
the per-reply thread choice reaching llama.cpp, the Q4_1 -> Q8_0 copy, and the extra
buffers probe's refusal path."""

from __future__ import annotations

import ctypes
import json
import os
import sys
import threading
from pathlib import Path

import pytest

from aigc_chat.backends import extra_buffers, requantize
from aigc_chat.backends.llama_cpp_backend import LlamaCppBackend
from aigc_chat.chat_types import Message, PromptProgress
from aigc_chat.cpu import LoadMeter, ThreadPolicy
from aigc_chat.params import GenerationParams
from tests.tiny_gguf import CHATML, write_tiny_gguf

GREEDY = GenerationParams(temperature=0.0, max_tokens=4)
LONG = " ".join(f"w{i} hello world the {i % 7}" for i in range(260))  # ~1,900 tokens here


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("m") / "tiny.gguf", "llama", seed=3,
                           context_length=4096, extra={"tokenizer.chat_template": CHATML})


@pytest.fixture
def backend(tiny: Path):
    b = LlamaCppBackend(str(tiny), {"n_ctx": 4096, "n_threads": 1})
    b.load()
    yield b
    b.close()


def test_a_long_prompt_reports_progress_batch_by_batch_and_its_rate(backend: LlamaCppBackend) -> None:
    seen: list[PromptProgress] = []
    stream = backend.stream_chat([Message("user", LONG)], GREEDY, on_progress=seen.append)
    result = stream.consume()
    total = result.prompt_tokens
    assert total > 1000
    assert seen[0].done == 0 and seen[0].elapsed == 0.0 and seen[0].total == total  # at once, before reading
    assert len(seen) >= 4  # a small first batch, then batches sized to the rate
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert seen[-1].done == total - 1  # the last token is read with the first sample
    assert seen[1].done - seen[1].cached <= 128  # the first batch is smallish: progress comes soon
    assert result.cached_tokens == 0 and result.prompt_tokens_per_s and result.prompt_tokens_per_s > 0
    assert "reading" in seen[-1].text() and "tok/s" in seen[-1].text()
    # the same question again: all of it comes from the cache
    again = backend.stream_chat([Message("user", LONG)], GREEDY).consume()
    assert again.cached_tokens == total - 1


def test_a_cancel_while_reading_stops_between_batches_and_keeps_what_was_read(backend: LlamaCppBackend) -> None:
    cancel = threading.Event()
    seen: list[PromptProgress] = []

    def progress(p: PromptProgress) -> None:
        seen.append(p)
        if len(seen) == 3:
            cancel.set()  # as Esc does, from the UI thread

    result = backend.stream_chat([Message("user", LONG)], GREEDY, cancel, progress).consume()
    assert result.finish_reason == "cancelled" and result.text == "" and result.completion_tokens == 0
    assert len(seen) == 3  # no batch after the cancel was seen
    read = seen[-1].done
    assert 0 < read < seen[-1].total - 1
    assert backend._llm.n_tokens == read  # what was read is still in the cache
    retry = backend.stream_chat([Message("user", LONG)], GREEDY).consume()
    assert retry.finish_reason in ("stop", "length") and retry.cached_tokens == read


def test_the_thread_count_is_chosen_per_reply_from_the_load(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A simulated machine: two other processes keep both cores busy, then go away."""
    from aigc_chat import cpu

    monkeypatch.setattr(cpu, "_ui_reserve", 0)  # one-shot: no screen to keep a core for
    stat = {"busy": 0, "own": 0, "t": 0.0}

    def read_stat() -> str:
        b = stat["busy"]
        return f"cpu  0 0 0 0\ncpu0 {b // 2} 0 0 1000 0 0 0 0\ncpu1 {b - b // 2} 0 0 1000 0 0 0 0\n"

    meter = LoadMeter(read_stat=read_stat, read_self=lambda: f"1 (x) R {' '.join(['0'] * 10)} {stat['own']} 0 0 0",
                      cores=lambda: {0, 1}, clock=lambda: stat["t"], sleep=lambda s: None)
    b = LlamaCppBackend(str(tiny), {"n_ctx": 512})
    b.load()
    try:
        b.threads = ThreadPolicy(0, meter, cores=lambda: 2)
        import llama_cpp

        ticks = os.sysconf("SC_CLK_TCK")
        stat["t"] += 1.0
        stat["busy"] += 2 * ticks  # two cores' worth of others for a second
        b.stream_chat([Message("user", "hi")], GREEDY).consume()
        assert b.threads.last is not None and b.threads.last.others == pytest.approx(2.0)
        assert llama_cpp.llama_n_threads(b._llm._ctx.ctx) == 1 == b.info().details["threads"]
        stat["t"] += 1.0  # a quiet second
        meter.tick()
        stat["t"] += 1.0
        b.stream_chat([Message("user", "hi")], GREEDY).consume()
        assert llama_cpp.llama_n_threads(b._llm._ctx.ctx) == 2
    finally:
        b.close()


def test_a_q4_1_model_is_read_through_a_checked_q8_0_copy_made_once(tiny: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp

    monkeypatch.setenv("AIGC_CHAT_CACHE_DIR", str(tmp_path / "cache"))
    q41 = tmp_path / "tiny.Q4_1.gguf"
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = 3  # LLAMA_FTYPE_MOSTLY_Q4_1
    assert llama_cpp.llama_model_quantize(str(tiny).encode(), str(q41).encode(), ctypes.byref(p)) == 0
    b = LlamaCppBackend(str(q41), {"n_ctx": 512})
    b.load()
    try:
        note = b.info().details["file_note"]
        assert "Q8_0 copy" in note
        copies = list((tmp_path / "cache" / "requantized").glob("*.gguf"))
        assert len(copies) == 1 and str(copies[0]) in note
        from aigc_chat.gguf_info import read_gguf_info

        assert requantize.main_weight_type(read_gguf_info(copies[0])) == requantize.GGML_Q8_0
        assert b.info().model == str(q41)  # the user's file is what is named
        assert b.stream_chat([Message("user", "hi")], GREEDY).consume().completion_tokens > 0
        made = copies[0].stat().st_mtime_ns
    finally:
        b.close()
    again = LlamaCppBackend(str(q41), {"n_ctx": 512})
    again.load()
    again.close()
    assert copies[0].stat().st_mtime_ns == made  # reused, not made again
    # a copy changed behind our back is not trusted: made again
    with open(copies[0], "r+b") as f:
        f.truncate(copies[0].stat().st_size // 2)
    third = LlamaCppBackend(str(q41), {"n_ctx": 512})
    third.load()
    third.close()
    assert requantize.main_weight_type(read_gguf_info(copies[0])) == requantize.GGML_Q8_0
    # an F32 file, or "off", is loaded as it is
    off = LlamaCppBackend(str(q41), {"n_ctx": 512, "fast_copy": "off"})
    off.load()
    assert off.info().details["file_note"] == ""
    off.close()


AMX = "model name\t: Xeon\nflags\t\t: fpu avx512f amx_tile amx_int8 amx_bf16\n"
PLAIN = "model name\t: EPYC\nflags\t\t: fpu avx2 avx512f\n"
AMX_BUILD = "CPU : AVX512 = 1 | AMX_INT8 = 1 | OPENMP = 1 | REPACK = 1 |"
PLAIN_BUILD = "CPU : AVX512 = 1 | OPENMP = 1 | REPACK = 1 |"


def test_extra_buffers_are_on_wherever_the_amx_path_cannot_be_reached() -> None:
    assert extra_buffers.build_has_amx(AMX_BUILD) and not extra_buffers.build_has_amx(PLAIN_BUILD)
    assert extra_buffers.decide("auto", cpuinfo=PLAIN, system_info=AMX_BUILD)[0] is True
    assert extra_buffers.decide("auto", cpuinfo=AMX, system_info=PLAIN_BUILD)[0] is True
    assert extra_buffers.decide("on", cpuinfo=AMX, system_info=AMX_BUILD)[0] is True
    assert extra_buffers.decide("off", cpuinfo=PLAIN, system_info=PLAIN_BUILD)[0] is False


def test_a_crashing_probe_costs_one_refusal_never_the_process(tiny: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGC_CHAT_CACHE_DIR", str(tmp_path))
    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    on, why = extra_buffers.decide("auto", cpuinfo=AMX, system_info=AMX_BUILD, model=tiny, command=crash)
    assert on is False and "crashed (signal 11)" in why
    kept = json.loads((tmp_path / "extra-buffers-probe.json").read_text())
    assert [v["safe"] for v in kept.values()] == [False]
    # kept per build, CPU and weight type: not run again (a probe that would now pass is not asked)
    fine = [sys.executable, "-c", "raise SystemExit(0)"]
    assert extra_buffers.decide("auto", cpuinfo=AMX, system_info=AMX_BUILD, model=tiny, command=fine)[0] is False
    # a failure that is not a crash (the file, memory, a hang) says nothing about the build: not kept
    other = AMX.replace("Xeon", "Xeon w7")
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    on, why = extra_buffers.decide("auto", cpuinfo=other, system_info=AMX_BUILD, model=tiny, command=failing)
    assert on is False and "not kept" in why
    assert len(json.loads((tmp_path / "extra-buffers-probe.json").read_text())) == 1
    # another CPU is another question; the real probe runs real llama.cpp with extra buffers on
    other = AMX.replace("Xeon", "Xeon w9")
    on, why = extra_buffers.decide("auto", cpuinfo=other, system_info=AMX_BUILD, model=tiny)
    assert on is True and "the probe ran" in why
