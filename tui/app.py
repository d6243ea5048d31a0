"""Placeholder until the TUI lands: explains itself instead of failing."""

from __future__ import annotations

import argparse
import sys

from aigc_chat.config import Config


def run_tui(config: Config, args: argparse.Namespace) -> int:
    sys.stderr.write("aigc-chat: the TUI is not built yet; use --prompt TEXT for one-shot answers\n")
    return 2
