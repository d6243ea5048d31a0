"""Model output is untrusted: no escape sequence or control byte may reach a terminal."""

from hypothesis import given, settings
from hypothesis import strategies as st

from aigc_chat.sanitize import StreamSanitizer, sanitize

DANGEROUS = [
    "\x1b[2J",                    # clear screen
    "\x1b]0;pwned\x07",           # set window title
    "\x1b]52;c;ZXZpbA==\x1b\\",   # OSC 52 clipboard write
    "\x1b]8;;http://x\x1b\\",     # hyperlink
    "\x1bc",                      # full reset
    "\x9b2J",                     # 8-bit CSI
    "\x1bP+q544e\x1b\\",          # DCS capability query
]


def test_escape_sequences_are_removed_whole():
    for seq in DANGEROUS:
        out = sanitize(f"before{seq}after")
        assert out == "beforeafter", (seq, out)


def test_control_characters_become_visible_newline_and_tab_kept():
    out = sanitize("a\tb\nc\x07d\x00e\x7f\r\nf")
    assert out == "a\tb\nc\u2407d\u2400e\u2421\nf"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.sampled_from(list("ab[]2J;\x1b\x07\x9b\r\n\\\x00")), max_size=12), max_size=8))
def test_stream_output_never_contains_control_bytes(pieces):
    s = StreamSanitizer()
    out = "".join(s.feed(p) for p in pieces) + s.flush()
    assert not any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F for c in out)


def test_sequence_split_across_deltas_is_still_removed_whole():
    s = StreamSanitizer()
    out = s.feed("hi \x1b[") + s.feed("2") + s.feed("J there") + s.flush()
    assert out == "hi  there"


def test_markup_like_text_is_left_alone():
    assert sanitize("[bold]x[/] ~~y~~") == "[bold]x[/] ~~y~~"
