"""Which device and dtype the torch backend runs on."""

from __future__ import annotations

import os
from typing import Any

from aigc_chat.errors import UsageError

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def check_device(value: Any) -> str | None:
    if isinstance(value, str) and (value in DEVICES or value.startswith("cuda:")):
        return None
    return 'must be "auto", "cpu", "cuda", "cuda:N" or "mps"'


def check_dtype(value: Any) -> str | None:
    return None if value in DTYPES else 'must be "auto", "float32", "bfloat16" or "float16"'


def pick_device(setting: str) -> Any:
    """"auto": CUDA, then MPS, then CPU. An explicit device that is not there is an error."""
    import torch

    setting = os.environ.get("AIGC_CHAT_TORCH_DEVICE") or setting
    if check_device(setting):
        raise UsageError(f"torch device {setting!r}: {check_device(setting)}")
    if setting == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"torch device {setting!r} requested but this torch has no usable CUDA "
                         f"(torch {torch.__version__}); use device = \"cpu\" or install a CUDA build")
    if setting == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("torch device 'mps' requested but MPS is not available here")
    return torch.device(setting)


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
