"""Command-line options that override settings, validated as their variables are: what
``routemq-dash``, ``--observe`` and ``routemq-dash ctl`` share."""

from __future__ import annotations

from engine.broker import parse_broker_option
from engine.setting_values import SettingsError
from engine.settings import VARIABLES, Settings


def override(settings: Settings, option: str, field: str, value: str | None) -> Settings:
    """``settings`` with ``--option value`` parsed as the variable of ``field`` is; SettingsError
    naming the option when it does not parse. None leaves the settings as they are."""
    if value is None:
        return settings
    parse = next(v.parse for v in VARIABLES if v.field == field)
    try:
        return settings.replace(**{field: parse(value)})
    except ValueError as exc:
        raise SettingsError(f"--{option} {value!r} is not valid: {exc}") from None


def with_broker(settings: Settings, text: str | None) -> Settings:
    """``--broker HOST[:PORT]`` used as given (never a broker of our own); SettingsError when malformed."""
    if text is None:
        return settings
    try:
        host, port = parse_broker_option(text)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return settings.replace(broker=host, **({"port": port} if port is not None else {}))
