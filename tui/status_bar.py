"""One line at the bottom: the role in effect, backend, model, device, context used and what
the app is doing."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

from aigc_chat.sanitize import sanitize


class StatusBar(Static):
    backend: reactive[str] = reactive("")
    model: reactive[str] = reactive("")
    device: reactive[str] = reactive("")
    context_used: reactive[int | None] = reactive(None)
    context_size: reactive[int | None] = reactive(None)
    state: reactive[str] = reactive("idle")
    branches: reactive[int] = reactive(0)  # paths of the conversation's tree (1: no branches)
    role: reactive[str] = reactive("")  # the role the conversation is under ("" for none)

    def render(self) -> Content:
        ctx = "-" if self.context_used is None else str(self.context_used)
        size = "?" if not self.context_size else str(self.context_size)
        parts = [f"role {self.role}"] if self.role else []
        parts += [
            self.backend or "-",
            self.model or "-",
            self.device or "-",
            f"ctx {ctx}/{size}",
        ]
        if self.branches > 1:
            parts.append(f"⑂ {self.branches} branches")
        text = " │ ".join(sanitize(p) for p in parts)
        state = sanitize(self.state)
        return Content.assemble(" ", text, " │ ", (state, "bold"))
