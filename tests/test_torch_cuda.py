"""On a CUDA GPU: decode steps replayed as CUDA graphs give what eager steps give.

Skipped without CUDA (CI has none); run on a GPU box with
`pytest tests/test_torch_cuda.py`. Needs torch and gguf only, not llama.cpp.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gguf")

from aigc_chat.backends.torch_gpt import parity  # noqa: E402
from aigc_chat.backends.torch_gpt.gguf_loader import load_gguf  # noqa: E402
from aigc_chat.backends.torch_gpt.model import build_model  # noqa: E402
from aigc_chat.backends.torch_gpt.runner import Runner  # noqa: E402
from tests.tiny_gguf import write_tiny_gguf  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_graph_steps_equal_eager_steps(tmp_path: Path, arch: str, dtype: str) -> None:
    from aigc_chat.backends.torch_gpt.cuda_graphs import GraphedDecoder

    cfg, state, _ = load_gguf(write_tiny_gguf(tmp_path / f"{arch}.gguf", arch, seed=7))
    model = build_model(cfg, state, "cuda", getattr(torch, dtype))
    model.setup_cache(300)
    prompt = [2 if arch == "gemma3" else 1, *range(40, 290)]  # 251 tokens
    eager, graphed = Runner(model), Runner(model, GraphedDecoder(model))
    a = parity.torch_greedy(eager, prompt, 12)
    assert parity.torch_greedy(graphed, prompt, 12) == a  # positions 251..262
    assert sorted(graphed._step.graphs) == [256, 300]  # one graph per cache-length bucket crossed
    eager.reset()
    graphed.reset()
    eager.prefill(prompt)
    graphed.prefill(prompt)
    tol = 1e-4 if dtype == "float32" else 2e-2
    for t in a:
        torch.testing.assert_close(graphed.step(t), eager.step(t), rtol=tol, atol=tol)


def test_backend_uses_cuda_graphs_and_reports_it(hf_dir: tuple[Path, Any]) -> None:
    """The backend on a GPT-2 checkpoint (no llama.cpp needed): graphs on by default on
    CUDA, reported in info(), same greedy text as without them."""
    from aigc_chat.backends.torch_gpt.backend import TorchBackend
    from aigc_chat.chat_types import Message
    from aigc_chat.params import GenerationParams

    texts = {}
    for graphs in (True, False):
        backend = TorchBackend(str(hf_dir[0]), {"device": "cuda", "cuda_graphs": graphs})
        backend.load()
        assert backend.info().details["cuda_graphs"] is graphs
        assert backend.info().gpu_offload
        params = GenerationParams(temperature=0, max_tokens=20)
        result = backend.stream_chat([Message("user", "hello there")], params).consume()
        assert result.finish_reason in ("stop", "length"), result
        texts[graphs] = result.text
        backend.close()
    assert texts[True] == texts[False] and texts[True]
