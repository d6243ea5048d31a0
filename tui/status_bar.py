"""One line at the bottom: the role in effect, backend, model, device, context used and what
the app is doing."""

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
    role: reactive[str] = reactive("")  # the role the conversation is under ("" for none)

    def render(self) -> Content:
        """The parts that fit the width, the state always last and always shown: on a narrow
        terminal the backend goes first, then the device, then the model name is shortened."""
        ctx = "-" if self.context_used is None else str(self.context_used)
        size = "?" if not self.context_size else str(self.context_size)
        role = [f"role {one_line(self.role)}"] if self.role else []
        model = one_line(self.model or "-")
        backend, device = one_line(self.backend or "-"), one_line(self.device or "-")
        tail = [f"ctx {ctx}/{size}"] + ([f"⑂ {self.branches} branches"] if self.branches > 1 else [])
        state = one_line(self.state)
        width = self.size.width or 10_000
        room = width - len(state) - 4  # " ", " │ " around the state

        def line(parts: list[str]) -> str:
            return " │ ".join(parts)

        for parts in ([*role, backend, model, device, *tail], [*role, model, device, *tail], [*role, model, *tail]):
            if len(line(parts)) <= room:
                break
        else:
            fixed = len(line([*role, *tail])) + 3
            keep = max(room - fixed, 4)
            short = model if len(model) <= keep else model[: keep - 1] + "…"
            parts = [*role, short, *tail]
        return Content.assemble(" ", line(parts), " │ ", (state, "bold"))
