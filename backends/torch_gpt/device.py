"""Which dtype the torch backend runs in, and how its device is described.

The device itself is picked by aigc_chat.torch_device, shared with GAN training; its names
are re-exported here for the backend.
"""

from __future__ import annotations

from typing import Any

from aigc_chat.torch_device import DEVICES, check_device, pick_device

__all__ = ["DEVICES", "DTYPES", "check_device", "check_dtype", "describe", "pick_device", "pick_dtype",
           "pick_head_dtype"]

DTYPES = ("auto", "float32", "bfloat16", "float16")


def check_dtype(value: Any) -> str | None:
    return None if value in DTYPES else 'must be "auto", "float32", "bfloat16" or "float16"'


def pick_dtype(setting: str, device: Any) -> Any:
    """"auto": bfloat16 on GPUs, and on CPUs with native bfloat16 matmuls (AVX512-BF16, AMX),
    where decode measured twice as fast as float32 and passes the same parity checks against
    llama.cpp (docs/torch.md); float32 on other CPUs, where bfloat16 would be emulated."""
    import torch

    if setting != "auto":
        return getattr(torch, setting)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.bfloat16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def cpu_has_native_bf16() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def describe(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def pick_head_dtype(device: Any, dtype: Any) -> Any:
    """The output head is the largest matrix (Gemma: 262k x 640). Beside bfloat16 on CPU it is
    kept in float16: faster in torch's CPU matmul here and 8x finer; its input is normalised,
    so float16's smaller range is no concern."""
    import torch

    if device.type == "cpu" and dtype == torch.bfloat16:
        return torch.float16
    return None
