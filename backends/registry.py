"""Find backends through the `aigc_chat.backends` entry-point group.

Third-party packages register a `Backend` subclass under that group and it shows up in
`--backend`, the settings pane and `doctor` without any change here. Entry points are read
lazily and a backend's module is imported only when that backend is asked for, so the
llama.cpp path never imports torch.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from aigc_chat.errors import UsageError

if TYPE_CHECKING:
    from aigc_chat.backends.base import Backend

GROUP = "aigc_chat.backends"
ALIASES = {"llama.cpp": "llama", "llama-cpp": "llama", "llamacpp": "llama", "pytorch": "torch"}


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    """Names of every registered backend."""
    return sorted(_entry_points())


def canonical(name: str) -> str:
    key = name.strip().lower()
    return ALIASES.get(key, key)


def is_known(name: str) -> bool:
    return canonical(name) in _entry_points()


def load_class(name: str) -> type[Backend]:
    """The Backend subclass registered under `name` (aliases accepted)."""
    key = canonical(name)
    eps = _entry_points()
    if key not in eps:
        known = ", ".join(available()) or "none installed"
        raise UsageError(f"unknown backend {name!r} (available: {known})")
    try:
        return eps[key].load()
    except ImportError as exc:
        raise UsageError(
            f"backend {key!r} cannot be imported ({exc}); install its extra, "
            f"e.g. pip install 'aigc-chat[{key}]'"
        ) from None
