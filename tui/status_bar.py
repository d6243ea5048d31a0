"""One line at the bottom: backend, model, device, context used and what the app is doing."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

from aigc_chat.sanitize import one_line


class StatusBar(Static):
    backend: reactive[str] = reactive("")
    model: reactive[str] = reactive("")
    device: reactive[str] = reactive("")
    context_used: reactive[int | None] = reactive(None)
    context_size: reactive[int | None] = reactive(None)
    state: reactive[str] = reactive("idle")
    branches: reactive[int] = reactive(0)  # paths of the conversation's tree (1: no branches)

    def render(self) -> Content:
        ctx = "-" if self.context_used is None else str(self.context_used)
        size = "?" if not self.context_size else str(self.context_size)
        parts = [
            self.backend or "-",
            self.model or "-",
            self.device or "-",
            f"ctx {ctx}/{size}",
        ]
        if self.branches > 1:
            parts.append(f"⑂ {self.branches} branches")
        text = " │ ".join(one_line(p) for p in parts)  # a model name with a newline must not cut the bar
        state = one_line(self.state)
        return Content.assemble(" ", text, " │ ", (state, "bold"))
