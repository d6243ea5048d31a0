"""One line at the bottom: the role in effect, backend, model, device, context used, branches
and what the app is doing. It shows one snapshot (aigc_chat.chat_state.StatusFacts) that the
chat screen derives from its ChatState and the conversation core after every change, so no
part of it can be left behind by one path that forgot to update it."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static

from aigc_chat.chat_state import StatusFacts
from aigc_chat.sanitize import one_line


class StatusBar(Static):
    facts: reactive[StatusFacts] = reactive(StatusFacts)

    def render(self) -> Content:
        """The parts that fit the width, what the app is doing always last and always shown:
        on a narrow terminal the backend goes first, then the device, then the model name is
        shortened."""
        f = self.facts
        ctx = "-" if f.context_used is None else str(f.context_used)
        size = "?" if not f.context_size else str(f.context_size)
        role = [f"role {one_line(f.role)}"] if f.role else []
        model = one_line(f.model or "-")
        backend, device = one_line(f.backend or "-"), one_line(f.device or "-")
        tail = [f"ctx {ctx}/{size}"] + ([f"⑂ {f.branches} branches"] if f.branches > 1 else [])
        doing = one_line(f.doing)
        width = self.size.width or 10_000
        room = width - len(doing) - 4  # " ", " │ " around it

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
        return Content.assemble(" ", line(parts), " │ ", (doing, "bold"))
