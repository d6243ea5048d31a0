"""The shared stop-sequence filter: never shows a stop string, nor a prefix that becomes one."""

from hypothesis import given, settings
from hypothesis import strategies as st

from aigc_chat.stopseq import StopFilter


def run(pieces, stops):
    f = StopFilter(stops)
    shown = []
    for p in pieces:
        out = f.feed(p)
        shown.append(out)
        if f.stopped:
            break
    tail = f.flush()
    return shown, tail, f


def test_stop_split_across_tokens_is_caught():
    shown, tail, f = run(["Hello", " wor", "ld<", "|en", "d|>", "more"], ["<|end|>"])
    assert "".join(shown) + tail == "Hello world"
    assert f.stopped and f.matched == "<|end|>"


def test_prefix_is_held_back_until_it_cannot_be_a_stop():
    f = StopFilter(["STOP"])
    assert f.feed("abc ST") == "abc "  # "ST" might begin STOP
    assert f.feed("OP") == ""
    assert f.stopped


def test_prefix_released_when_it_turns_out_not_to_be_a_stop():
    f = StopFilter(["STOP"])
    assert f.feed("abc ST") == "abc "
    assert f.feed("ART") == "START"
    assert not f.stopped


def test_held_tail_flushed_at_end():
    f = StopFilter(["\n\nUser:"])
    assert f.feed("end\n\n") == "end"
    assert f.flush() == "\n\n"


def test_earliest_of_several_stops_wins():
    shown, _tail, f = run(["a b c d"], ["c", "b"])
    assert "".join(shown) == "a "
    assert f.matched == "b"


alphabet = st.sampled_from(list("abXY\n<>|"))


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet, max_size=40),
    stops=st.lists(st.text(alphabet, min_size=1, max_size=4), min_size=1, max_size=3),
    cuts=st.lists(st.integers(0, 40), max_size=10),
)
def test_any_split_gives_the_text_before_the_first_stop(text, stops, cuts):
    points = sorted({c for c in cuts if c <= len(text)})
    pieces, prev = [], 0
    for c in [*points, len(text)]:
        pieces.append(text[prev:c])
        prev = c
    shown, tail, _f = run(pieces, stops)
    out = "".join(shown) + tail
    firsts = [i for i in (text.find(s) for s in stops) if i != -1]
    expected = text[: min(firsts)] if firsts else text
    assert out == expected
    for s in stops:
        assert s not in out


def test_a_complete_stop_waits_for_a_longer_one_that_starts_earlier():
    """Found by the property test below: with stops "Y" and "<Y<", the text "<Y" holds a
    complete "Y", but "<Y<" may still complete from position 0 and must win if it does."""
    f = StopFilter(["Y", "<Y<"])
    assert f.feed("<Y") == "" and not f.stopped
    assert f.feed("<") == "" and f.stopped and f.matched == "<Y<"
    g = StopFilter(["Y", "<Y<"])
    assert g.feed("<Y") == ""
    assert g.feed("b") == "<" and g.stopped and g.matched == "Y"
    h = StopFilter(["Y", "<Y<"])
    assert h.feed("<Y") == ""
    assert h.flush() == "<" and h.stopped and h.matched == "Y"  # the engine ended there
