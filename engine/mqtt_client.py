"""The MQTT client helpers both sides use: building a paho client from the settings, the
options of its CONNECT, reading a failed connect, and the brief sessions the manager opens to end
a slot's session or take it out of its share group.
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .settings import Settings

# CONNACK refusals that retrying will not cure. MQTT 3.1.1 return codes and MQTT 5 reason codes.
AUTH_REFUSALS = {4, 5, 0x86, 0x87, 0x8C}
CONFIG_REFUSALS = {1, 2, 0x84, 0x85, 0x8A}


def describe_connect_error(exc: BaseException, host: str, port: int) -> tuple[str, bool]:
    """(what went wrong, whether it is fatal) for an exception raised while connecting."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate was rejected: {exc.verify_message}", True
    if isinstance(exc, ssl.SSLError):
        return f"TLS: handshake failed: {exc.reason or exc}", True
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {host}:{port} (is the broker running?)", False
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve broker host {host!r}", False
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"timed out connecting to {host}:{port}", False
    return f"cannot connect to {host}:{port}: {exc}", False


def apply_credentials(client: mqtt.Client, s: Settings) -> None:
    """User name, password and TLS from the settings."""
    if s.username is not None:
        client.username_pw_set(s.username, s.password.reveal() if s.password else None)
    if s.tls:
        client.tls_set(
            ca_certs=s.tls_ca_certs,
            certfile=s.tls_certfile,
            keyfile=s.tls_keyfile,
            keyfile_password=s.tls_keyfile_password.reveal() if s.tls_keyfile_password else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(s.tls_insecure)


def new_client(
    settings: Settings,
    client_id: str,
    *,
    clean: bool,
    manual_ack: bool = False,
    client_class: type[mqtt.Client] = mqtt.Client,
) -> mqtt.Client:
    """A paho client for ``client_id`` with the settings' protocol, credentials and TLS."""
    v5 = settings.protocol == "5"
    client = client_class(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if v5 else clean,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    apply_credentials(client, settings)
    return client


def connect_options(settings: Settings, *, clean: bool, session_expiry: int) -> dict[str, Any]:
    """Arguments of ``connect``/``connect_async``: MQTT 5 gets a clean-start flag and an expiry."""
    options: dict[str, Any] = {"host": settings.broker, "port": settings.port, "keepalive": settings.keepalive}
    if settings.protocol == "5":
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = session_expiry
        options.update(clean_start=clean, properties=properties)
    return options


def _brief_session(
    client: mqtt.Client,
    settings: Settings,
    done: threading.Event,
    *,
    clean: bool,
    session_expiry: int,
    timeout: float,
    waiting_for: str,
) -> None:
    """Connect, wait until ``done`` is set by the client's callbacks, disconnect."""
    client.connect(**connect_options(settings, clean=clean, session_expiry=session_expiry))
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise TimeoutError(f"no {waiting_for} from the broker within {timeout:g} s")
    finally:
        client.disconnect()
        client.loop_stop()


def end_session(settings: Settings, client_id: str, timeout: float = 5.0) -> None:
    """End the broker session of ``client_id``: connect once with a clean session, disconnect.

    MQTT 3.1.1 has no other way to end a persistent session; in MQTT 5 the clean start with a
    session expiry of 0 does the same. Raises OSError when the broker cannot be reached.
    """
    client = new_client(settings, client_id, clean=True)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    _brief_session(client, settings, connected, clean=True, session_expiry=0, timeout=timeout, waiting_for="CONNACK")


def leave_share_group(settings: Settings, client_id: str, filters: list[str], timeout: float = 5.0) -> None:
    """Unsubscribe the (offline) session of ``client_id`` from ``filters``, keeping the session.

    A dead slot's session stays in its share group and the broker keeps assigning it messages.
    For a slot that will not come back soon (crash-loop), this hands its share to the live
    workers. Messages already queued in the session stay there, unacknowledged, until the slot
    runs again (and resubscribes). Not for QoS 2: paho would take those messages (PUBREC).
    Raises OSError when the broker cannot be reached.
    """
    # manual_ack: never acknowledge what the session hands us; it is redelivered later.
    client = new_client(settings, client_id, clean=False, manual_ack=True)
    unsubscribed = threading.Event()
    client.on_connect = lambda c, *args: c.unsubscribe(filters)
    client.on_unsubscribe = lambda *args: unsubscribed.set()
    _brief_session(
        client,
        settings,
        unsubscribed,
        clean=False,
        session_expiry=settings.session_expiry,
        timeout=timeout,
        waiting_for="UNSUBACK",
    )
