"""The reasoning splitter (aigc_chat.reasoning): every shape, markers split anywhere, and
property tests against a whole-text reference (hypothesis)."""

from __future__ import annotations

import itertools

from hypothesis import example, given, settings
from hypothesis import strategies as st

from aigc_chat.reasoning import KNOWN, Markers, Reasoning, ReasoningSplitter, markers_for, opens_inside

THINK = (Markers("<think>", "</think>"),)


def split(pieces: list[str], markers=KNOWN, inside: bool = False) -> tuple[str, str, bool]:
    s = ReasoningSplitter(markers, inside=inside)
    out = [p for piece in pieces for p in s.feed(piece)] + s.flush()
    reasoning = "".join(p for p in out if isinstance(p, Reasoning))
    answer = "".join(p for p in out if not isinstance(p, Reasoning))
    return reasoning, answer, s.unterminated


def reference(text: str, markers=KNOWN, inside: bool = False) -> tuple[str, str, bool]:
    """The same rules on the whole text at once (the module notes)."""
    if inside:
        hits = [(text.find(m.close), m.close) for m in markers if m.close in text]
        if not hits:
            return text, "", True
        i, close = min(hits)
        return text[:i], text[i + len(close):].lstrip(), False
    body = text.lstrip()
    lead = text[: len(text) - len(body)]  # shown at once, before any block
    for m in markers:
        if body.startswith(m.open):
            rest = body[len(m.open):]
            i = rest.find(m.close)
            if i == -1:
                return rest, lead, True
            return rest[:i], lead + rest[i + len(m.close):].lstrip(), False
    return "", text, False


def cuts(text: str, points: list[int]) -> list[str]:
    edges = sorted({0, len(text), *(p % (len(text) + 1) for p in points)})
    return [text[a:b] for a, b in itertools.pairwise(edges)]


# -- the shapes ---------------------------------------------------------------------------------

def test_an_opening_and_a_closing_marker() -> None:
    assert split(["<think>plan it</think>\n\nThe answer."]) == ("plan it", "The answer.", False)


def test_only_the_closing_marker_when_the_template_opened_the_block() -> None:
    assert split(["plan it</think>The answer."], inside=True) == ("plan it", "The answer.", False)


def test_no_markers_is_all_answer() -> None:
    assert split(["Just ", "an answer."]) == ("", "Just an answer.", False)


def test_an_unterminated_block_stays_reasoning() -> None:
    assert split(["<think>still going"]) == ("still going", "", True)
    assert split(["still going </thi"], inside=True) == ("still going </thi", "", True)


def test_every_known_family() -> None:
    for m in KNOWN:
        assert split([f"{m.open}x{m.close} y"]) == ("x", "y", False)


def test_a_marker_in_the_answer_is_text() -> None:
    reply = "Use it like this:\n```xml\n<think>inner</think>\n```\nand </think> in prose."
    assert split([reply]) == ("", reply, False)
    after = "<think>a</think>Then: ```\n</think><think>\n```"
    assert split([after]) == ("a", "Then: ```\n</think><think>\n```", False)


def test_an_opening_marker_inside_the_block_does_not_nest() -> None:
    assert split(["<think>a <think> b</think> c</think>"]) == ("a <think> b", "c</think>", False)


def test_a_huge_block_streams_in_pieces_and_holds_back_only_a_marker_prefix() -> None:
    s = ReasoningSplitter(THINK)
    assert s.feed("<think>") == []
    shown = []
    for _ in range(2000):
        got = s.feed("word " * 10)
        assert got and all(isinstance(p, Reasoning) for p in got)  # released at once
        shown += got
    assert s.feed("</th") == []  # could be the closing marker: held
    assert s.feed("ink>Answer") == ["Answer"]
    assert len("".join(shown)) == 2000 * 50


def test_markers_from_the_template_and_the_prefilled_opening() -> None:
    qwen3 = "{%- if enable_thinking %}<think>\n{%- endif %}... </think>"
    assert markers_for(qwen3) == (Markers("<think>", "</think>"),)
    assert markers_for("{{ messages }}") == KNOWN
    assert opens_inside("<|im_start|>assistant\n<think>\n", KNOWN)
    assert not opens_inside("<|im_start|>assistant\n", KNOWN)


# -- properties -----------------------------------------------------------------------------------

ALPHABET = st.sampled_from(["a", " ", "\n", "<", ">", "/", "t", "h", "i", "n", "k", "<think>", "</think>",
                            "</thi", "nk>", "[THINK]", "[/THINK]", "`", "é"])
TEXT = st.lists(ALPHABET, max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(TEXT, st.lists(st.integers(0, 200), max_size=12), st.booleans())
def test_any_split_gives_what_the_whole_text_gives(text: str, points: list[int], inside: bool) -> None:
    assert split(cuts(text, points), inside=inside) == reference(text, inside=inside)


@settings(max_examples=300, deadline=None)
@given(TEXT, st.lists(st.integers(0, 200), max_size=12))
@example(" [THINK][/THINK]a", [])  # an empty block after a space: the space is still the lead
def test_nothing_is_lost_or_made_up(text: str, points: list[int]) -> None:
    """Reasoning and answer together are the text less the markers and the whitespace the
    rules drop: never a character more, never one out of order."""
    reasoning, answer, _ = split(cuts(text, points))
    lead = answer[: len(answer) - len(answer.lstrip())]  # shown before any block (an empty one too)
    rest = text
    for part in (lead, reasoning, answer[len(lead):]):
        i = rest.find(part) if part else 0
        assert i != -1, (text, reasoning, answer)
        rest = rest[i + len(part):]
