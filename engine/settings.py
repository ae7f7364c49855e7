"""Settings: the environment and ``.env`` (the environment wins), validated into a frozen object.

Every variable is declared once in ``VARIABLES`` with its default, its parser and a description;
``.env.example`` documents the same list and a test keeps the two in step. An invalid value raises
:class:`SettingsError` naming the variable, the offending value (never a secret's) and what is
accepted. Secrets are held in :class:`Secret`, whose ``repr`` and ``str`` never show the value.
"""

from __future__ import annotations

import dataclasses
import difflib
import io
import logging
import os
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dotenv.parser import parse_stream

# Secret and SettingsError stay importable from here: they are part of what settings are.
from .setting_values import (
    Secret,
    SettingsError,
    _bool,
    _control_key,
    _dead_letter_topic,
    _existing_file,
    _float_range,
    _fraction,
    _host,
    _int_range,
    _log_level,
    _manager_id,
    _name,
    _optional_str,
    _protocol,
    _secret,
    _start_method,
    _topic_prefix,
    host_manager_id,
)

log = logging.getLogger("routemq.settings")

__all__ = ["VARIABLES", "Secret", "Settings", "SettingsError", "check_tls_files", "configure_logging", "load_settings"]


@dataclass(frozen=True)
class _Variable:
    env: str
    field: str
    default: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False


VARIABLES: tuple[_Variable, ...] = (
    _Variable("MQTT_BROKER", "broker", "localhost", _host, "Broker host name or address"),
    _Variable("MQTT_PORT", "port", "1883", _int_range(1, 65535), "Broker port (8883 is usual with TLS)"),
    _Variable("MQTT_USERNAME", "username", "", _optional_str, "User name, if the broker wants one"),
    _Variable("MQTT_PASSWORD", "password", "", _secret, "Password; never logged or shown", secret=True),
    _Variable(
        "MQTT_CLIENT_ID", "client_id", "routemq", _name,
        "Prefix of worker client ids: <prefix>-<manager id>-<group>-<route>-<slot>",
    ),
    _Variable(
        "MQTT_GROUP_NAME", "group_name", "mqtt_framework_group", _name, "Share group: $share/<group>/..."
    ),
    _Variable(
        "MANAGER_ID", "manager_id", "", _manager_id,
        "Names this manager in its workers' client ids (and in the fleet); default: the host name",
    ),
    _Variable("MQTT_PROTOCOL", "protocol", "3.1.1", _protocol, "MQTT protocol version: 3.1.1 or 5"),
    _Variable("MQTT_KEEPALIVE", "keepalive", "60", _int_range(5, 65535), "Keepalive interval in seconds"),
    _Variable(
        "MQTT_SESSION_EXPIRY", "session_expiry", "3600", _int_range(0, 4294967295),
        "MQTT 5: seconds the broker keeps a stopped worker's session (0 ends it at disconnect)",
    ),
    _Variable("MQTT_TLS", "tls", "false", _bool, "Connect with TLS"),
    _Variable("MQTT_TLS_CA_CERTS", "tls_ca_certs", "", _existing_file, "CA bundle to verify the broker"),
    _Variable("MQTT_TLS_CERTFILE", "tls_certfile", "", _existing_file, "Client certificate (mutual TLS)"),
    _Variable("MQTT_TLS_KEYFILE", "tls_keyfile", "", _existing_file, "Client private key (mutual TLS)"),
    _Variable(
        "MQTT_TLS_KEYFILE_PASSWORD", "tls_keyfile_password", "", _secret,
        "Password of the client key; never logged or shown", secret=True,
    ),
    _Variable(
        "MQTT_TLS_INSECURE", "tls_insecure", "false", _bool,
        "Skip the broker host name check (testing only)",
    ),
    _Variable("LOG_LEVEL", "log_level", "INFO", _log_level, "DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    _Variable(
        "WORKER_CONCURRENCY", "worker_concurrency", "32", _int_range(1, 10000),
        "Messages a worker handles at once (async handlers run concurrently up to this bound)",
    ),
    _Variable(
        "WORKER_START_METHOD", "worker_start_method", "zygote", _start_method,
        "zygote: fork workers from a process that has imported the engine, paho and the routes; "
        "spawn: a fresh interpreter per worker",
    ),
    _Variable(
        "WORKER_GRACEFUL_TIMEOUT", "graceful_timeout", "10", _float_range(0, 3600),
        "Seconds a stopping worker may take to finish its in-flight messages before SIGKILL",
    ),
    _Variable(
        "WORKER_HANG_TIMEOUT", "hang_timeout", "60", _float_range(0.5, 86400),
        "A worker silent this long (3 s at least) or holding one message this long is hung: killed and restarted",
    ),
    _Variable(
        "WORKER_RESTART_BACKOFF", "restart_backoff", "0.5", _float_range(0, 3600),
        "First delay before restarting a dead worker; doubles on each further death",
    ),
    _Variable(
        "WORKER_RESTART_BACKOFF_MAX", "restart_backoff_max", "30", _float_range(0, 3600),
        "Longest restart delay; the delay resets once a worker stays up this long",
    ),
    _Variable(
        "WORKER_CRASH_LOOP_RESTARTS", "crash_loop_restarts", "5", _int_range(1, 1000),
        "Deaths within the window that put a slot in crash-loop (restarted only on request)",
    ),
    _Variable(
        "WORKER_CRASH_LOOP_WINDOW", "crash_loop_window", "60", _float_range(1, 86400),
        "Window in seconds for counting deaths",
    ),
    _Variable(
        "WORKER_MAX_MEMORY_MB", "max_memory_mb", "0", _int_range(0, 1048576),
        "Recycle a worker (drain, then replace) whose RSS exceeds this; 0 turns it off",
    ),
    _Variable(
        "WORKER_MAX_MESSAGES", "max_messages", "0", _int_range(0, 2**62),
        "Recycle a worker after it handled this many messages; 0 turns it off",
    ),
    _Variable(
        "WORKER_MAX_MESSAGES_JITTER", "max_messages_jitter", "0", _int_range(0, 2**62),
        "Random extra messages per worker so that workers do not all recycle at once",
    ),
    _Variable(
        "WORKER_POISON_DEATHS", "poison_deaths", "3", _int_range(0, 1000),
        "Deaths of a slot's worker holding the same message before that message is dead-lettered; 0 turns it off",
    ),
    _Variable(
        "DEAD_LETTER_TOPIC", "dead_letter_topic", "routemq/dead-letter/{group}/{route}", _dead_letter_topic,
        "Where a message that killed its worker WORKER_POISON_DEATHS times is published ({route}: the route's slug)",
    ),
    _Variable(
        "FLEET_TOPIC", "fleet_topic", "routemq/fleet", _topic_prefix,
        "Where managers publish their status: <topic>/<group>/<manager id>/status",
    ),
    _Variable("FLEET_STATUS", "fleet_status", "true", _bool, "Publish this manager's status for the fleet"),
    _Variable(
        "FLEET_CONTROL_KEY", "fleet_control_key", "", _control_key,
        "Shared key of signed remote commands on <topic>/<group>/<manager id>/control; empty: remote control off",
        secret=True,
    ),
    _Variable(
        "FLEET_STATUS_INTERVAL", "fleet_status_interval", "2", _float_range(0.2, 3600),
        "Seconds between status messages (one is also sent at once on every change of state)",
    ),
    _Variable(
        "AUTOSCALE_TARGET_UTILIZATION", "autoscale_target", "0.7", _fraction(0.05, 1.0),
        "Autoscaled pools are sized so that their workers are this busy on average",
    ),
    _Variable(
        "AUTOSCALE_TOLERANCE", "autoscale_tolerance", "0.1", _fraction(0.0, 0.9),
        "No resize while utilization / target is within 1 plus or minus this",
    ),
    _Variable(
        "AUTOSCALE_SCALE_UP_WINDOW", "autoscale_up_window", "3", _float_range(0, 3600),
        "Seconds a need for more workers must last before an autoscaled pool grows",
    ),
    _Variable(
        "AUTOSCALE_SCALE_DOWN_WINDOW", "autoscale_down_window", "60", _float_range(0, 86400),
        "An autoscaled pool shrinks only to the largest size needed over this many seconds",
    ),
    _Variable(
        "AUTOSCALE_HOLD", "autoscale_hold", "300", _float_range(0, 86400),
        "Seconds a pool stays held where adding workers did not raise throughput, unless the load falls first",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build it with :func:`load_settings`; change it with ``replace``."""

    broker: str = "localhost"
    port: int = 1883
    username: str | None = None
    password: Secret | None = None
    client_id: str = "routemq"
    group_name: str = "mqtt_framework_group"
    manager_id: str | None = None  # None: the host name
    protocol: str = "3.1.1"
    keepalive: int = 60
    session_expiry: int = 3600
    tls: bool = False
    tls_ca_certs: str | None = None
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    tls_keyfile_password: Secret | None = None
    tls_insecure: bool = False
    log_level: str = "INFO"
    worker_concurrency: int = 32
    worker_start_method: str = "zygote"
    graceful_timeout: float = 10.0
    hang_timeout: float = 60.0
    restart_backoff: float = 0.5
    restart_backoff_max: float = 30.0
    crash_loop_restarts: int = 5
    crash_loop_window: float = 60.0
    max_memory_mb: int = 0
    max_messages: int = 0
    max_messages_jitter: int = 0
    poison_deaths: int = 3
    dead_letter_topic: str = "routemq/dead-letter/{group}/{route}"
    fleet_topic: str = "routemq/fleet"
    fleet_status: bool = True
    fleet_status_interval: float = 2.0
    fleet_control_key: Secret | None = None
    autoscale_target: float = 0.7
    autoscale_tolerance: float = 0.1
    autoscale_up_window: float = 3.0
    autoscale_down_window: float = 60.0
    autoscale_hold: float = 300.0
    # Where the values came from, for messages ("MQTT_PORT in .env"); not configuration itself.
    source: str = dataclasses.field(default="defaults", compare=False)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def broker_address(self) -> str:
        return f"{self.broker}:{self.port}"

    @property
    def manager_name(self) -> str:
        """MANAGER_ID, or the host name when it is not set."""
        return self.manager_id or host_manager_id()


def _shown_value(var: _Variable, raw: str, from_file: bool) -> str:
    """The bad value as an error message may show it: not a secret's, and not one of a file that
    spans lines (a quote left open in .env swallows the lines after it, which may hold a password)."""
    if var.secret:
        return ""
    if from_file and ("\n" in raw or "\r" in raw):
        return f" (a value of {len(raw.splitlines())} lines: a quote left open?)"
    return f"={raw!r}"


def load_settings(
    env_file: str | os.PathLike[str] | None = ".env",
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read ``env_file`` (if it exists) and the environment; the environment wins.

    ``env_file=None`` reads the environment only. Raises :class:`SettingsError`.
    """
    environ = os.environ if environ is None else environ
    file_values: dict[str, str] = {}
    file_name = os.fspath(env_file) if env_file is not None else None
    if file_name is not None and os.path.exists(file_name):
        file_values = _read_env_file(file_name)
    values: dict[str, Any] = {}
    for var in VARIABLES:
        origin: str | None
        if var.env in environ:
            raw, origin = environ[var.env], "the environment"
        elif var.env in file_values:
            raw, origin = file_values[var.env], file_name
        else:
            raw, origin = var.default, None
        try:
            values[var.field] = var.parse(raw)
        except ValueError as exc:
            where = f" (from {origin})" if origin else ""
            shown = _shown_value(var, raw, from_file=origin == file_name)
            raise SettingsError(f"{var.env}{shown}{where} is not valid: {exc}") from None
    _check_combinations(values)
    if values["tls"]:
        check_tls_files(values["tls_ca_certs"], values["tls_certfile"], values["tls_keyfile"],
                        values["tls_keyfile_password"])
    _warn_unknown(file_values, file_name)
    source = "environment" + (f" and {file_name}" if file_values else "")
    return Settings(**values, source=source)


def _read_env_file(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read the file: {exc}") from None
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            # Never echo the line: it may hold a password.
            raise SettingsError(
                f"{path}:{binding.original.line}: cannot parse this line; expected NAME=value"
            )
        if binding.key is not None:
            values[binding.key] = binding.value if binding.value is not None else ""
    return values


def _warn_unknown(file_values: Mapping[str, str], file_name: str | None) -> None:
    """A misspelt variable (MQTT_PASWORD) in the .env file would silently do nothing: say so."""
    known = [var.env for var in VARIABLES]
    for name in file_values:
        if name.startswith(("MQTT_", "WORKER_")) and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            log.warning("%s: unknown variable %s is ignored%s", file_name, name, hint)


def _check_combinations(values: dict[str, Any]) -> None:
    if values["password"] is not None and values["username"] is None:
        raise SettingsError("MQTT_PASSWORD is set but MQTT_USERNAME is not: a password needs a user name")
    if (values["tls_certfile"] is None) != (values["tls_keyfile"] is None) and values["tls_certfile"] is None:
        raise SettingsError("MQTT_TLS_KEYFILE is set but MQTT_TLS_CERTFILE is not: set both for mutual TLS")
    uses_tls_files = values["tls_ca_certs"] or values["tls_certfile"]
    if uses_tls_files and not values["tls"]:
        raise SettingsError(
            "MQTT_TLS_CA_CERTS/MQTT_TLS_CERTFILE are set but MQTT_TLS is false: set MQTT_TLS=true"
        )
    if values["restart_backoff_max"] < values["restart_backoff"]:
        raise SettingsError(
            f"WORKER_RESTART_BACKOFF_MAX={values['restart_backoff_max']:g} is less than "
            f"WORKER_RESTART_BACKOFF={values['restart_backoff']:g}"
        )


def check_tls_files(
    ca_certs: str | None, certfile: str | None, keyfile: str | None, password: Secret | None
) -> ssl.SSLContext:
    """Load the TLS files into a client context, as the workers will; raise SettingsError if one is wrong.

    Done once, at start-up: otherwise a key that does not fit its certificate only shows when
    every worker fails its first connection and the pool crash-loops.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_certs:
        try:
            context.load_verify_locations(cafile=ca_certs)
        except (ssl.SSLError, OSError) as exc:
            raise SettingsError(
                f"MQTT_TLS_CA_CERTS={_shown(ca_certs)} does not hold a CA bundle (PEM certificates): "
                f"{_ssl_reason(exc)}"
            ) from None
    if certfile:
        _load_client_certificate(context, certfile, keyfile, password)
    return context


def _load_client_certificate(
    context: ssl.SSLContext, certfile: str, keyfile: str | None, password: Secret | None
) -> None:
    try:
        # Certificates alone, so that a broken certificate file is told apart from a broken key.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=certfile)
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(
            f"MQTT_TLS_CERTFILE={_shown(certfile)} does not hold a PEM certificate: {_ssl_reason(exc)}"
        ) from None
    asked: list[bool] = []

    def give_password() -> bytes:
        # A callback even without a password: OpenSSL would otherwise prompt on the terminal.
        asked.append(True)
        return password.reveal().encode() if password is not None else b""

    try:
        context.load_cert_chain(certfile, keyfile, give_password)
    except (ssl.SSLError, OSError, ValueError) as exc:  # ValueError: a password longer than OpenSSL takes
        raise SettingsError(_key_problem(certfile, keyfile, password is not None, bool(asked), exc)) from None


def _key_problem(certfile: str, keyfile: str | None, has_password: bool, asked: bool, exc: Exception) -> str:
    """The one line for a client key that does not load (never showing the password)."""
    reason = _ssl_reason(exc)
    if asked and not has_password:
        key = f"MQTT_TLS_KEYFILE={_shown(keyfile)}" if keyfile else f"the key in MQTT_TLS_CERTFILE={_shown(certfile)}"
        return f"{key} is encrypted and MQTT_TLS_KEYFILE_PASSWORD is not set: {reason}"
    wrong_password = " (or MQTT_TLS_KEYFILE_PASSWORD is wrong)" if asked else ""
    if keyfile is None:
        return (
            f"MQTT_TLS_CERTFILE={_shown(certfile)} holds no private key for its certificate{wrong_password}: "
            f"set MQTT_TLS_KEYFILE to the key file: {reason}"
        )
    return (
        f"MQTT_TLS_KEYFILE={_shown(keyfile)} does not hold the private key of MQTT_TLS_CERTFILE={_shown(certfile)}"
        f"{wrong_password}: {reason}"
    )


def _shown(path: str) -> str:
    """A path as it can go into a one-line message."""
    return path if path.isprintable() else repr(path)


def _ssl_reason(exc: Exception) -> str:
    """OpenSSL's words without CPython's source location; one line whatever the library says."""
    text = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc))
    return " ".join(text.split()) or type(exc).__name__


def configure_logging(level: str) -> None:
    """Set the level of the ``routemq`` loggers (the UI and headless runner add handlers)."""
    logging.getLogger("routemq").setLevel(level)
