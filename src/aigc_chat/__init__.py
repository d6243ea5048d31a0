"""aigc-chat: a terminal chat client for local language models."""

__version__ = "0.1.0"
