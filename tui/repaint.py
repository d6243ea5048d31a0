"""One full repaint of the terminal, for when frames may not have reached it."""

from __future__ import annotations

from typing import Any


def repaint_all(app: Any) -> None:
    """Send the whole screen again, after a model load (loaded or not). llama-cpp-python
    points fd 1 and 2 at /dev/null while it loads a model (`verbose=False`, the only way to
    keep llama.cpp's own prints off the screen), so frames drawn meanwhile never reached the
    terminal: quiet output forgets what it believes is there, and Textual repaints it all."""
    invalidate = getattr(app._driver, "invalidate", None)
    if invalidate is not None:
        invalidate()
    app.screen.refresh()
