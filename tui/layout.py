"""How wide each pane is, and whether it sits beside the chat, over it, or is hidden, for a
terminal `width` columns wide.

The chat never gets narrower than MIN_CHAT columns because of a pane: a pane that would
squeeze it below that is laid over the chat (when the user asked for it: F2, F3) or hidden
(the history pane at start-up on a narrow terminal; it comes back by itself when the terminal
is widened). With both panes asked for and room for only one beside the chat, the settings
pane (opened last, on purpose) stays and the history pane steps aside until it is closed.
Pure arithmetic, so the rules are tested without a screen.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_CHAT = 44  # columns: a stats line and a code line stay readable
HISTORY = (0.24, 22, 36)  # share of the width, least and most columns
SETTINGS = (0.30, 30, 46)


def _share(width: int, rule: tuple[float, int, int]) -> int:
    share, least, most = rule
    return max(least, min(most, round(width * share)))


@dataclass(frozen=True)
class Fit:
    history: str  # "beside", "over" (laid over the chat) or "hidden"
    settings: str
    history_width: int
    settings_width: int

    @property
    def chat_width(self) -> int:
        return (self.total - (self.history_width if self.history == "beside" else 0)
                - (self.settings_width if self.settings == "beside" else 0))

    total: int = 0


def fit(width: int, *, history: bool, settings: bool, history_asked: bool = False) -> Fit:
    """Where the panes go at `width` columns: `history` / `settings` say whether the user has
    each shown; `history_asked`: the history pane was opened (F2) at a width where it does
    not fit beside the chat, so it is laid over it rather than kept hidden."""
    hw = min(_share(width, HISTORY), max(width - 2, 1))
    sw = min(_share(width, SETTINGS), max(width - 2, 1))
    s_place = "hidden"
    if settings:
        s_place = "beside" if width - sw >= MIN_CHAT else "over"
    h_place = "hidden"
    if history:
        room = width - (sw if s_place == "beside" else 0)
        if room - hw >= MIN_CHAT:
            h_place = "beside"
        elif history_asked:
            h_place = "over"
    return Fit(h_place, s_place, hw, sw, total=width)
