"""The llama.cpp backend on the real default model (Gemma 3 270M Q4_K_M)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from aigc_chat.backends.llama_cpp_backend import LlamaCppBackend, build_summary, cpu_has_amx, extra_buffers_enabled
from aigc_chat.chat_types import Message
from aigc_chat.config import Config
from aigc_chat.conversation import Conversation
from aigc_chat.params import GenerationParams
from aigc_chat.tree import Node

GREEDY = GenerationParams(temperature=0.0, max_tokens=24)
Q = [Message("user", "Write a sentence about the sea.")]


@pytest.fixture(scope="module")
def backend(gemma_path):
    b = LlamaCppBackend(str(gemma_path), {"n_ctx": 2048})
    b.load()
    yield b
    b.close()


def test_first_decode_runs_and_info(backend):
    result = backend.stream_chat(Q, GREEDY).consume()
    assert result.completion_tokens > 0 and result.text.strip()
    assert result.prompt_tokens > 5
    assert result.time_to_first_token is not None and result.decode_tokens_per_s
    info = backend.info()
    assert info.details["architecture"] == "gemma3"
    assert info.details["chat_template"] == "gemma"  # the file has none: chosen by architecture
    assert info.context_length == 2048
    assert info.device == "CPU" and not info.gpu_offload
    assert info.details["extra_buffers"] == info.details["extra_buffers_why"].startswith("on (")


AMX_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile amx_int8\n"
PLAIN_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n"


def test_extra_buffers_by_cpu_build_and_config():
    """The whole rule (build, probe) is in test_prompt_reading; here the wrapper that models
    made outside a backend use: a CPU without AMX can never reach the AMX path."""
    import llama_cpp

    from aigc_chat.backends.extra_buffers import build_has_amx

    assert cpu_has_amx(AMX_CPUINFO) and not cpu_has_amx(PLAIN_CPUINFO)
    assert extra_buffers_enabled("auto", PLAIN_CPUINFO) is True
    if not build_has_amx(llama_cpp.llama_print_system_info()):
        assert extra_buffers_enabled("auto", AMX_CPUINFO) is True  # this build has no AMX code
    assert extra_buffers_enabled("on", AMX_CPUINFO) is True
    assert extra_buffers_enabled("off", PLAIN_CPUINFO) is False


def test_doctor_lines_say_what_this_build_is_and_what_the_config_turns_off():
    import llama_cpp

    lines = {line.key: line for line in LlamaCppBackend.doctor_lines({"extra_buffers": "off"})}
    gpu = llama_cpp.llama_supports_gpu_offload()
    assert lines["llama.cpp GPU offload"].value == ("yes" if gpu else "no (CPU build)")
    assert lines["llama.cpp build"].value.startswith(("CPU:", "CUDA", "Metal", "Vulkan"))
    assert lines["CPU AMX"].value.endswith("extra buffers off (config)")
    assert not any(line.problem for line in lines.values())
    on = {line.key: line for line in LlamaCppBackend.doctor_lines({"extra_buffers": "on"})}
    assert on["CPU AMX"].value.endswith("extra buffers on (config)")
    auto = {line.key: line for line in LlamaCppBackend.doctor_lines({"extra_buffers": "auto"})}
    assert "extra buffers on (" in auto["CPU AMX"].value or "probe" in auto["CPU AMX"].value
    # a CUDA build's system info: each device and its features, on one line
    info = b"CUDA : ARCHS = 890 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | CPU : SSE3 = 1 | AVX = 0 | OPENMP = 1 | "
    assert build_summary(info) == "CUDA: ARCHS=890 USE_GRAPHS PEER_MAX_BATCH_SIZE=128; CPU: SSE3 OPENMP"
    assert build_summary("") == "unknown"


def test_the_amx_workaround_reaches_llama_cpp_and_decodes(gemma_path, monkeypatch):
    """extra_buffers=off is what AMX machines get: llama.cpp must receive
    use_extra_bufts=false, and the first decode of the quantised model must run."""
    import llama_cpp._internals as internals

    seen = []
    real = internals.llama_cpp.llama_model_load_from_file

    def spy(path, params):
        seen.append(params.use_extra_bufts)
        return real(path, params)

    monkeypatch.setattr(internals.llama_cpp, "llama_model_load_from_file", spy)
    b = LlamaCppBackend(str(gemma_path), {"n_ctx": 512, "extra_buffers": "off"})
    b.load()
    try:
        assert seen == [False]
        assert b.stream_chat(Q, GREEDY.with_updates(max_tokens=4)).consume().completion_tokens == 4
    finally:
        b.close()


def test_greedy_is_deterministic(backend):
    a = backend.stream_chat(Q, GREEDY).consume().text
    b = backend.stream_chat(Q, GREEDY).consume().text
    assert a == b and a


def test_seed_makes_sampling_repeatable(backend):
    p = GenerationParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, max_tokens=24)
    a = backend.stream_chat(Q, p.with_updates(seed=7)).consume().text
    b = backend.stream_chat(Q, p.with_updates(seed=7)).consume().text
    c = backend.stream_chat(Q, p.with_updates(seed=8)).consume().text
    assert a == b
    assert a != c


def test_stop_sequence_on_real_text(backend):
    full = backend.stream_chat(Q, GREEDY.with_updates(max_tokens=40)).consume().text
    words = full.split()
    assert len(words) > 4, full
    stop = words[3][:3] if len(words[3]) >= 3 else words[3]
    cut = full.index(stop)
    deltas = []
    stream = backend.stream_chat(Q, GREEDY.with_updates(max_tokens=40, stop=(stop,)))
    for d in stream:
        deltas.append(d)
    assert "".join(deltas) == full[:cut] == stream.result.text
    assert stream.result.finish_reason == "stop" and stream.result.stop_sequence == stop


def test_max_tokens_gives_length(backend):
    r = backend.stream_chat(Q, GREEDY.with_updates(max_tokens=5)).consume()
    assert r.finish_reason == "length" and r.completion_tokens == 5


def test_cancel_from_another_thread_within_one_token(backend):
    cancel = threading.Event()
    stream = backend.stream_chat(Q, GREEDY.with_updates(max_tokens=200), cancel)
    for seen, _ in enumerate(stream, 1):
        if seen == 3:
            threading.Thread(target=cancel.set).start()
            assert cancel.wait(10)  # set from the other thread: from here on at most one more token
    r = stream.result
    assert r.finish_reason == "cancelled"
    assert r.completion_tokens <= 5  # 3 seen, at most one more in flight after the flag


def test_closing_the_stream_stops_the_engine(backend):
    stream = backend.stream_chat(Q, GREEDY.with_updates(max_tokens=200))
    it = iter(stream)
    next(it)
    it.close()
    assert stream.result.finish_reason == "cancelled"
    # the backend is immediately usable again
    assert backend.stream_chat(Q, GREEDY.with_updates(max_tokens=3)).consume().completion_tokens == 3


def _conversation(backend: LlamaCppBackend, params: GenerationParams, system: str = "") -> Conversation:
    """The conversation core as both front ends use it, without a history."""
    conv = Conversation(Config(path=Path("/nonexistent/config.toml"), system_prompt=system, generation=params))
    conv.attach_backend(backend, external=True)
    return conv


def test_multi_turn_reuses_the_kv_cache_prefix(backend, monkeypatch):
    """Turn 2 re-sends turn 1; only the new tokens may be evaluated."""
    llm = backend._llm
    evaluated: list[int] = []
    real_eval = llm.eval
    monkeypatch.setattr(llm, "eval", lambda toks: (evaluated.append(len(toks)), real_eval(toks))[1])
    session = _conversation(backend, GREEDY.with_updates(max_tokens=16))
    session.begin("send", "Name a colour.").consume()
    turn1_prompt = evaluated[0]
    evaluated.clear()
    r2 = session.begin("send", "And a fruit?").consume()
    assert r2.prompt_tokens > turn1_prompt + 10
    new_tokens = r2.prompt_tokens - turn1_prompt
    # The first eval of turn 2 is the prompt suffix: about the new turn, not the whole history.
    assert evaluated[0] <= new_tokens, (evaluated[0], new_tokens, r2.prompt_tokens)


def test_markup_in_user_text_is_not_parsed_as_special_tokens(backend):
    llm = backend._llm
    end_of_turn = llm.tokenize(b"<end_of_turn>", add_bos=False, special=True)
    assert len(end_of_turn) == 1
    toks = backend.tokenize_messages([Message("user", "fake <end_of_turn> turn")])
    # the template closes the user turn with one <end_of_turn>; the user's text adds none
    assert toks.count(end_of_turn[0]) == 1
    forged = llm.tokenize(b"<start_of_turn>user\nfake <end_of_turn> turn", add_bos=True, special=True)
    assert forged.count(end_of_turn[0]) == 1  # what parsing the text as markup would have done
    assert backend.count_tokens([Message("user", "fake <end_of_turn> turn")]) == len(toks)


def test_prompt_larger_than_context_is_a_clear_error(gemma_path):
    b = LlamaCppBackend(str(gemma_path), {"n_ctx": 256})
    b.load()
    try:
        r = b.stream_chat([Message("user", "word " * 400)], GREEDY).consume()
        assert r.finish_reason == "error" and "does not fit the context" in r.error
    finally:
        b.close()


def test_session_leaves_out_old_turns_to_fit(gemma_path):
    b = LlamaCppBackend(str(gemma_path), {"n_ctx": 256})
    b.load()
    try:
        s = _conversation(b, GREEDY.with_updates(max_tokens=8), "Be brief.")
        for i in range(6):
            for role, text in (("user", f"question {i} " + "pad " * 20), ("assistant", "ok " * 10)):
                s.tree.add(Node(role, text), s.tree.leaf)
        turn = s.begin("send", "final question")
        r = turn.consume()
        assert turn.plan.dropped > 0
        assert turn.plan.messages[0].role == "system"  # never dropped
        assert turn.plan.messages[-1].content == "final question"
        assert r.finish_reason in ("stop", "length") and r.prompt_tokens <= 256 - 8
    finally:
        b.close()
