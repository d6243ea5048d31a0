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


_ENV_DIRS = ("AIGC_CHAT_DATA_DIR", "AIGC_CHAT_CACHE_DIR")


def _named_by(path: Path) -> str:
    """' (set by AIGC_CHAT_CACHE_DIR)' when an environment variable chose this place."""
    for var in _ENV_DIRS:
        value = os.environ.get(var)
        if value and (path == Path(value).expanduser() or Path(value).expanduser() in path.parents):
            return f" (set by {var})"
    return ""


def dir_problem(path: Path) -> str | None:
    """Why `path` cannot be used as a directory, or None (a missing one can be created)."""
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                return f"{p} is not a directory{_named_by(path)}"
            if p != path and not os.access(p, os.W_OK | os.X_OK):
                return f"cannot create {path}: {p} is not writable{_named_by(path)}"
            return None
    return None


def ensure_dir(path: Path) -> Path:
    """Create a private directory (0700): history and models are nobody else's business.
    A path that cannot be a directory is one clear line, naming the variable that set it."""
    from aigc_chat.errors import UsageError

    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(dir_problem(path) or f"{path} is not a directory{_named_by(path)}") from None
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror or exc}{_named_by(path)}") from None
    return path
