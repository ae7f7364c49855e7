"""The values settings take: the ``Secret`` type, and one parser per kind of value.

Each parser returns the parsed value or raises ValueError saying what is accepted; settings.py
turns that into a one-line SettingsError naming the variable.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from typing import Any


class SettingsError(ValueError):
    """A configuration value that cannot be used. The message is one line naming the culprit."""


class Secret:
    """A string that is never shown: ``repr``/``str`` print ``'********'``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Secret, (self._value,))


# ---------------------------------------------------------------------------------------------
# Parsers: each returns the parsed value or raises ValueError with "what is accepted".
# ---------------------------------------------------------------------------------------------


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise ValueError(f"expected an integer from {low} to {high}") from None
        if not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}")
        return value

    return parse


def _float_range(low: float, high: float, accepted: str = "a number of seconds") -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            value = float("nan")
        if not low <= value <= high:  # NaN (not a number, or "nan") fails this too
            raise ValueError(f"expected {accepted} from {low:g} to {high:g}")
        return value

    return parse


def _fraction(low: float, high: float) -> Callable[[str], float]:
    return _float_range(low, high, "a fraction (0.7 is 70%)")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true/false (also 1/0, yes/no, on/off)")


def _optional_str(text: str) -> str | None:
    return text if text != "" else None


def _secret(text: str) -> Secret | None:
    return Secret(text) if text != "" else None


MIN_CONTROL_KEY = 16


def _control_key(text: str) -> Secret | None:
    # An HMAC key can be guessed offline from one signed command seen on the broker: a short one
    # soon. 16 characters of a password generator's output are beyond that.
    if text != "" and len(text) < MIN_CONTROL_KEY:
        raise ValueError(f"expected at least {MIN_CONTROL_KEY} characters (a short key can be guessed from one "
                         "signed command), or nothing to turn remote control off")
    return _secret(text)


def _host(text: str) -> str:
    host = text.strip()
    if not host or any(ch.isspace() for ch in host) or "/" in host:
        raise ValueError("expected a host name or IP address (no scheme, path or spaces)")
    return host


_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _name(text: str) -> str:
    if not _NAME_RE.match(text):
        raise ValueError("expected 1 to 64 characters from A-Z a-z 0-9 _ . -")
    return text


def _protocol(text: str) -> str:
    normal = {"3.1.1": "3.1.1", "311": "3.1.1", "v311": "3.1.1", "5": "5", "5.0": "5", "v5": "5"}
    try:
        return normal[text.strip().lower()]
    except KeyError:
        raise ValueError("expected 3.1.1 or 5") from None


def _start_method(text: str) -> str:
    method = text.strip().lower()
    if method not in ("zygote", "spawn"):
        raise ValueError("expected zygote (fork from a warm process, the default) or spawn (a fresh interpreter)")
    return method


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _dead_letter_topic(text: str) -> str:
    """A topic to publish to, in which {group} and {route} (the route's slug) are filled in."""
    if not text or len(text) > 1024:
        raise ValueError("expected a topic of 1 to 1024 characters")
    if "+" in text or "#" in text or any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError("expected a topic to publish to: no +, #, spaces or control characters")
    try:
        text.format(group="g", route="r")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"only {{group}} and {{route}} may be filled in ({exc})") from None
    return text


def _existing_file(text: str) -> str | None:
    if text == "":
        return None
    if not os.path.isfile(text):
        raise ValueError("expected the path of a readable file; no file is there")
    return text


def _manager_id(text: str) -> str | None:
    """One MQTT topic level without wildcards (it names the manager's fleet topics), and safe in
    a client id: the characters of a name."""
    if text == "":
        return None
    if not _NAME_RE.match(text):
        raise ValueError("expected one topic level of 1 to 64 characters from A-Z a-z 0-9 _ . - (no /, + or #)")
    return text


def host_manager_id() -> str:
    """The default manager id: this host's name, in the characters a manager id may have."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname()).strip("-.")[:64] or "host"


def _topic_prefix(text: str) -> str:
    """A topic that others are appended to: levels without wildcards, no empty level."""
    if not text or len(text) > 512 or text.startswith("$"):
        raise ValueError("expected a topic of 1 to 512 characters, not starting with $")
    if "+" in text or "#" in text or "//" in text or text.endswith("/") or text.startswith("/"):
        raise ValueError("expected topic levels without +, # or empty levels (no leading or trailing /)")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError("expected a topic without spaces or control characters")
    return text
