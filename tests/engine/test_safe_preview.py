"""engine/details.py safe_preview: a failed message's payload as text that is safe to put on a
terminal. Readable UTF-8 stays readable; everything else is escaped, so no byte of a payload can
move the cursor, change colours or retitle the window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.details import FailureExample, safe_preview


def is_safe(text: str) -> bool:
    return not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text)


def test_printable_utf8_is_kept():
    assert safe_preview("température 21.5°C".encode()) == "température 21.5°C"
    assert safe_preview('{"city": "Zürich", "note": "日本語 ✓"}'.encode()) == '{"city": "Zürich", "note": "日本語 ✓"}'
    assert safe_preview(b"") == ""


def test_bytes_that_are_not_utf8_are_shown_as_hex():
    assert safe_preview(b"\xff\xfe") == "\\xff\\xfe"
    assert safe_preview(b"ok \xc3 cut") == "ok \\xc3 cut"  # half a character
    assert safe_preview("21.5°".encode("latin-1")) == "21.5\\xb0"


def test_control_characters_are_escaped():
    assert safe_preview(b"\x00") == "\\x00"
    assert safe_preview(b"\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert safe_preview(b"\x1b]0;owned\x07") == "\\x1b]0;owned\\x07"
    assert safe_preview(b"del\x7f") == "del\\x7f"
    assert safe_preview("\x9b31m".encode()) == "\\x9b31m"  # the one-character CSI, as UTF-8
    assert safe_preview(b"\x9b31m") == "\\x9b31m"  # and as a lone byte


def test_newline_tab_and_carriage_return_read_as_their_escapes():
    assert safe_preview(b"a\nb\tc\rd") == "a\\nb\\tc\\rd"


@given(st.binary(max_size=300))
def test_no_payload_puts_a_control_character_on_the_screen(payload: bytes):
    assert is_safe(safe_preview(payload))


@given(st.text(max_size=100))
def test_no_text_puts_a_control_character_on_the_screen(text: str):
    preview = safe_preview(text.encode("utf-8", errors="surrogatepass"))
    assert is_safe(preview)


@given(st.text(alphabet=st.characters(min_codepoint=160, exclude_categories=("Cs", "Cf")), max_size=50))
def test_printable_text_comes_out_as_it_went_in(text: str):
    assert safe_preview(text.encode()) == text


def test_a_failure_examples_preview_is_the_safe_one():
    example = FailureExample(0.0, "jobs#0", "jobs/1", b"\x1b[2Jwiped\xff", 9, "")
    assert example.preview == "\\x1b[2Jwiped\\xff"
    assert is_safe(example.preview)


def test_invisible_format_characters_are_shown_escaped():
    # A right-to-left override would make the rest read backwards; a zero-width space hides.
    assert safe_preview("pay\u202eload\u200b".encode()) == "pay\\u202eload\\u200b"
