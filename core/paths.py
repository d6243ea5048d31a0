"""Where aigc-chat keeps its files: platformdirs, each overridable by an environment variable.

The overrides exist so tests (and users with unusual set-ups) never touch the real dirs:
AIGC_CHAT_CONFIG (the config file), AIGC_CHAT_DATA_DIR (history), AIGC_CHAT_CACHE_DIR
(the assembled default model).
"""

from __future__ import annotations

import os
from pathlib import Path

APP = "aigc-chat"


def _platformdirs():  # imported lazily: it is cheap, but --help need not pay even that
    import platformdirs

    return platformdirs


def config_file() -> Path:
    env = os.environ.get("AIGC_CHAT_CONFIG")
    if env:
        return Path(env).expanduser()
    return Path(_platformdirs().user_config_dir(APP, appauthor=False)) / "config.toml"


def data_dir() -> Path:
    env = os.environ.get("AIGC_CHAT_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(_platformdirs().user_data_dir(APP, appauthor=False))


def cache_dir() -> Path:
    env = os.environ.get("AIGC_CHAT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path(_platformdirs().user_cache_dir(APP, appauthor=False))


def ensure_dir(path: Path) -> Path:
    """Create a private directory (0700): history and models are nobody else's business."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
