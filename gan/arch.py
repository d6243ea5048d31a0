"""The architecture description shared by the torch model and the numpy sampler.

It is plain data (no torch) so a checkpoint's JSON header can be validated and the
generator run by numpy without importing the training side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from aigc_chat.errors import UsageError

#: The generator starts from a base_size x base_size map and doubles it `n_up` times, so the
#: sizes it can make are s * 2**k with 3 <= s <= 7 and k >= 1 (8, 16, 28, 32, 64, ...).
MIN_BASE, MAX_BASE = 3, 7
MAX_SIZE = 128
MAX_CHANNELS = 256


def plan_size(size: int) -> tuple[int, int]:
    """Split an image size into (base_size, n_up), or say clearly why it cannot be made."""
    if size < 2 * MIN_BASE or size > MAX_SIZE:
        raise UsageError(
            f"image size {size} is out of range: sizes from {2 * MIN_BASE} to {MAX_SIZE} "
            "of the form s*2^k with 3<=s<=7 (e.g. 8, 16, 28, 32, 64)"
        )
    base, n_up = size // 2, 1
    while base > MAX_BASE and base % 2 == 0:
        base //= 2
        n_up += 1
    if size % 2 or not MIN_BASE <= base <= MAX_BASE:
        raise UsageError(
            f"image size {size} cannot be made by the generator: sizes are s*2^k with "
            "3<=s<=7 and k>=1 (e.g. 8, 16, 28, 32, 64)"
        )
    return base, n_up


@dataclass(frozen=True)
class GanConfig:
    """Everything needed to rebuild the networks; stored in every checkpoint header."""

    image_size: int = 8
    channels: int = 1
    num_classes: int = 10  # 0 = unconditional
    z_dim: int = 32
    g_width: int = 32  # generator channels at full resolution; doubled per level going down
    d_width: int = 32  # discriminator channels at full resolution; doubled per level
    embed_dim: int = 16
    class_names: list[str] = field(default_factory=list)
    data: str = "digits"

    def __post_init__(self) -> None:
        plan_size(self.image_size)
        if self.channels not in (1, 3):
            raise UsageError(f"channels must be 1 or 3, not {self.channels}")
        if not 0 <= self.num_classes <= 1000:
            raise UsageError(f"number of classes out of range: {self.num_classes}")
        for name in ("z_dim", "g_width", "d_width", "embed_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 1024:
                raise UsageError(f"{name} out of range: {value!r}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise UsageError("class_names does not match num_classes")

    @property
    def base_size(self) -> int:
        return plan_size(self.image_size)[0]

    @property
    def n_up(self) -> int:
        return plan_size(self.image_size)[1]

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def g_channels(self) -> list[int]:
        """Channels at each generator level, from base_size up to full resolution."""
        return [min(self.g_width * 2 ** (self.n_up - i), MAX_CHANNELS) for i in range(self.n_up + 1)]

    def d_channels(self) -> list[int]:
        """Channels at each discriminator level, from full resolution down to base_size."""
        return [min(self.d_width * 2**i, MAX_CHANNELS) for i in range(self.n_up + 1)]

    def label_names(self) -> list[str]:
        return self.class_names or [str(i) for i in range(self.num_classes)]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any) -> GanConfig:
        if not isinstance(obj, dict):
            raise UsageError("checkpoint header: architecture is not an object")
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in obj.items() if k in known}
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise UsageError(f"checkpoint header: bad architecture ({err})") from None
