"""Which torch device to run on: one rule for the chat backend and for GAN training.

It lives in the core, not in either user, so the GAN does not depend on the chat backend
(nor the backend on the GAN). torch is imported only when a device is picked: checking a
setting, as the config loader does, needs no torch.
"""

from __future__ import annotations

import os
from typing import Any

from aigc_chat.errors import UsageError

#: Overrides every device setting (config, --device) in this process: the one knob that a
#: test run or a machine without a usable GPU needs, whatever the config says.
ENV = "AIGC_CHAT_TORCH_DEVICE"
DEVICES = ("auto", "cpu", "cuda", "mps")


def check_device(value: Any) -> str | None:
    """Why `value` is not a device setting, or None when it is one."""
    if isinstance(value, str) and (value in DEVICES or _cuda_index(value) is not None):
        return None
    return 'must be "auto", "cpu", "cuda", "cuda:N" or "mps"'


def _cuda_index(value: str) -> int | None:
    head, sep, tail = value.partition(":")
    return int(tail) if head == "cuda" and sep and tail.isdigit() else None


def pick_device(setting: str) -> Any:
    """The torch.device for a setting: "auto" is CUDA, then MPS, then CPU; an explicit
    device that is not there is one clear UsageError, never a failure later in torch."""
    import torch

    override = os.environ.get(ENV)
    source = f" (from {ENV})" if override else ""
    setting = override or setting
    reason = check_device(setting)
    if reason:
        raise UsageError(f"torch device {setting!r}{source}: {reason}")
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if setting == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    if setting.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"torch device {setting!r}{source} requested but this torch has no usable CUDA "
                             f"(torch {torch.__version__}); use device \"cpu\" or install a CUDA build")
        index = _cuda_index(setting)
        if index is not None and index >= torch.cuda.device_count():
            raise UsageError(f"torch device {setting!r}{source}: this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s), numbered from 0")
    if setting == "mps" and not has_mps:
        raise UsageError(f"torch device 'mps'{source} requested but MPS is not available here")
    return torch.device(setting)
