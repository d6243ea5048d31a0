"""Backends: engines that turn a list of chat messages into streamed text.

The interface lives in `aigc_chat.backends.base`; backends are found through the
`aigc_chat.backends` entry-point group (see `aigc_chat.backends.registry`).
"""
