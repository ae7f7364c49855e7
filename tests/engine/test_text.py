"""Text from handler code shown safely: engine.text.printable, and the headless output using it."""

from __future__ import annotations

import io
import json
import logging

from hypothesis import given
from hypothesis import strategies as st

from engine.headless import HeadlessRunner
from engine.text import printable


def test_escapes_controls_and_invisible_characters_and_keeps_lines():
    shown = printable("ok\x1b[2J\x07 C1\x9b bidi\u202e zw\u200b \ud800\ttab\nnext é 日本")
    assert shown == "ok\\x1b[2J\\x07 C1\\x9b bidi\\u202e zw\\u200b \\ud800    tab\nnext é 日本"


@given(st.text())
def test_nothing_unprintable_but_newlines_remains(text: str):
    assert all(c == "\n" or c.isprintable() for c in printable(text))


def test_headless_text_lines_show_a_workers_escape_sequences_as_text():
    out = io.StringIO()
    runner = HeadlessRunner(None, out=out)  # type: ignore[arg-type]  # say() never reaches the manager
    runner.say("handler said \x1b]0;pwned\x07 then \x1b[31mred", logging.WARNING, "log", slot="a/#\x1b0")
    line = out.getvalue()
    assert "\x1b" not in line and "\\x1b]0;pwned\\x07" in line and "[a/#\\x1b0]" in line


def test_headless_json_lines_escape_through_json():
    out = io.StringIO()
    runner = HeadlessRunner(None, out=out, log_format="json")  # type: ignore[arg-type]
    runner.say("bell \x07", logging.INFO, "log", slot="s")
    raw = out.getvalue()
    assert "\x07" not in raw and json.loads(raw)["message"] == "bell \x07"
