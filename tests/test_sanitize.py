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


# "Trojan Source": characters that change how text looks without being seen.
INVISIBLE = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
             "\u200e", "\u200f", "\u061c", "\u200b", "\ufeff", "\u2060", "\u2028", "\u2029", "\U000e0041"]


def test_invisible_direction_changes_are_shown_visibly():
    for ch in INVISIBLE:
        out = sanitize(f"a{ch}b")
        assert out == f"a\u27e8U+{ord(ch):04X}\u27e9b", (hex(ord(ch)), out)


def test_joiners_that_scripts_and_emoji_need_are_kept():
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"
    assert sanitize(family) == family
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # a ZWNJ inside a word: kept
    assert sanitize(persian) == persian


def test_lone_surrogates_become_replacement_characters():
    # what Python makes of bytes that are not UTF-8 in argv, file names or the environment
    out = sanitize("caf\udce9")
    assert out == "caf\ufffd"
    out.encode("utf-8")  # encodable for any terminal


_ANY_TEXT = st.text(alphabet=st.sampled_from(["a", " ", "\n", "\t", "\r", "\x1b", "[", "2", "J", "]", "\x07",
                                              "\x9b", "\\", *INVISIBLE, "\u200d", "\udce9", "é"]), max_size=60)


@settings(max_examples=400, deadline=None)
@given(_ANY_TEXT)
def test_sanitised_text_is_safe_and_sanitising_again_changes_nothing(text):
    out = sanitize(text)
    assert not any(ch in out for ch in INVISIBLE)
    assert not any((ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F for c in out)
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in out)
    assert sanitize(out) == out  # the clipboard sanitises what the screen already did


@settings(max_examples=300, deadline=None)
@given(st.lists(_ANY_TEXT, max_size=6))
def test_streamed_sanitising_matches_whole_text(pieces):
    s = StreamSanitizer()
    streamed = "".join(s.feed(p) for p in pieces) + s.flush()
    assert not any(ch in streamed for ch in INVISIBLE)
    assert "\x1b" not in streamed and "\r" not in streamed.replace("\u240d", "")
