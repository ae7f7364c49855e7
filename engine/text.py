"""Text from handler code, made safe to show: one function for every screen and stream.

Log lines, printed output, tracebacks, exit causes and topics come from code we do not trust.
An escape sequence among them must show as text and never reach a terminal: every character
Python does not call printable (C0 and C1 controls, DEL, bidirectional overrides, zero-width
and other format characters, lone surrogates) is written as its escape (``\\x1b``,
``\\u202e``); newlines stay (tracebacks have lines) and a tab becomes spaces.
"""

from __future__ import annotations

_TAB = "    "


def printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(_shown(c) for c in text)


def _shown(c: str) -> str:
    if c == "\n" or c.isprintable():
        return c
    if c == "\t":
        return _TAB
    return c.encode("unicode_escape", "backslashreplace").decode("ascii")
