"""The 4-bit output head: its leading logits must be the exact ones, the rest close."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from aigc_chat.backends.torch_gpt.quantize import RefinedInt4Head  # noqa: E402


def test_int4_head_keeps_leading_logits_exact() -> None:
    gen = torch.Generator().manual_seed(0)
    weight = (torch.randn(4096, 128, generator=gen) * 0.05).to(torch.float16)
    x = torch.randn(3, 128, generator=gen).to(torch.bfloat16)
    head = RefinedInt4Head(weight, refine=32)
    got = head(x)
    want = x.float() @ weight.float().T
    assert got.shape == want.shape and got.dtype == torch.float32
    # Greedy picks and the leading logits are the float16 head's...
    assert torch.equal(got.argmax(-1), want.argmax(-1))
    top = want.topk(8, dim=-1).indices
    torch.testing.assert_close(got.gather(1, top), want.gather(1, top), rtol=1e-4, atol=1e-4)
    # ...and the 4-bit tail is an approximation, not noise.
    rel = ((got - want).norm() / want.norm()).item()
    assert 0 < rel < 0.15


def test_auto_picks_the_int4_head_only_where_it_was_measured_to_pay() -> None:
    from aigc_chat.backends.torch_gpt.quantize import auto_quantize

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    gemma_head = torch.empty(262144, 640, device="meta")
    small_head = torch.empty(50257, 64, device="meta")
    assert auto_quantize(cpu, torch.bfloat16, gemma_head) == "head-int4"
    assert auto_quantize(cpu, torch.float32, gemma_head) == "none"  # the kernel wants bfloat16
    assert auto_quantize(cuda, torch.bfloat16, gemma_head) == "none"  # a CPU kernel
    assert auto_quantize(cpu, torch.bfloat16, small_head) == "none"  # the head is not the cost
    assert auto_quantize(cpu, torch.bfloat16, torch.empty(262144, 600, device="meta")) == "none"  # groups of 32


def test_int4_head_packed_in_blocks_equals_packed_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(1)
    # 2480 rows: a multiple of 16 but not of the kernel's 64-row tiles, so the tail is partial
    weight = (torch.randn(2480, 64, generator=gen) * 0.05).to(torch.float16)
    whole = RefinedInt4Head(weight)
    monkeypatch.setattr(RefinedInt4Head, "PACK_ROWS", 1024)  # three blocks, the last one short
    blocks = RefinedInt4Head(weight)
    assert torch.equal(whole.weight, blocks.weight) and torch.equal(whole.scale, blocks.scale)
    x = torch.randn(2, 64, generator=gen).to(torch.bfloat16)
    assert torch.equal(whole(x), blocks(x))


def test_int4_head_refuses_shapes_the_kernel_cannot_pack() -> None:
    from aigc_chat.backends.torch_gpt.quantize import auto_quantize

    odd = torch.empty(262150, 640, device="meta")  # rows not a multiple of 16
    assert not RefinedInt4Head.fits(odd)
    assert auto_quantize(torch.device("cpu"), torch.bfloat16, odd) == "none"
