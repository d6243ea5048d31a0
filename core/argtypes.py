"""argparse value types shared by every command line, so a bad number reads the same in
`aigc-chat`, `aigc-chat history` and `aigc-chat gan`: "expected WHAT, got 'TEXT'"."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def integer(what: str = "an integer", minimum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


def number(what: str = "a number") -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None

    parse.__name__ = what
    return parse


positive = integer("a positive integer", minimum=1)
non_negative = integer("a non-negative integer", minimum=0)
conversation_id = integer("a conversation id", minimum=1)
