"""Which broker a run uses: configured, --broker, or one started for the session."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from engine import broker as broker_module
from engine.broker import (
    broker_configured,
    choose_broker,
    free_port,
    parse_broker_option,
    port_open,
)
from engine.settings import Settings, SettingsError


def _nothing_listening() -> Settings:
    return Settings(broker="127.0.0.1", port=free_port())


def _accepts_mqtt(settings: Settings) -> bool:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    try:
        client.connect(settings.broker, settings.port)
        return client.loop(timeout=2) == mqtt.MQTT_ERR_SUCCESS
    finally:
        client.disconnect()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("example.org", ("example.org", None)), ("10.0.0.5:1884", ("10.0.0.5", 1884)), ("[::1]:1883", ("::1", 1883))],
)
def test_broker_option_accepts_host_and_port(value, expected):
    assert parse_broker_option(value) == expected


@pytest.mark.parametrize("value", ["", "host:", "host:0", "host:99999", "host:port"])
def test_a_malformed_broker_option_is_a_clear_error(value):
    with pytest.raises(ValueError, match="--broker"):
        parse_broker_option(value)


def test_a_configured_broker_is_used_as_given_even_when_down():
    settings = _nothing_listening()
    choice = choose_broker(settings, requested=None, configured=True)
    assert (choice.kind, choice.server, choice.settings) == ("external", None, settings)


def test_broker_option_overrides_the_settings():
    choice = choose_broker(Settings(), requested="mqtt.example.org:8883", configured=True)
    assert choice.settings.broker_address == "mqtt.example.org:8883" and choice.server is None


def test_first_run_uses_a_broker_already_answering(broker):
    settings = Settings(broker=broker.host, port=broker.port)
    choice = choose_broker(settings, requested=None, configured=False)
    assert choice.kind == "external" and "answering" in choice.note


def test_first_run_without_a_broker_starts_a_private_mosquitto():
    choice = choose_broker(_nothing_listening(), requested=None, configured=False)
    try:
        assert choice.kind == "private mosquitto"
        assert _accepts_mqtt(choice.settings)
    finally:
        choice.stop()
    assert not port_open(choice.settings.broker, choice.settings.port)


def test_first_run_without_mosquitto_starts_the_embedded_broker(monkeypatch):
    # Mosquitto is installed on this machine; its absence is the one thing we must pretend.
    monkeypatch.setattr(broker_module, "find_mosquitto", lambda: None)
    choice = choose_broker(_nothing_listening(), requested=None, configured=False)
    try:
        assert choice.kind == "embedded rumqttd"
        assert _accepts_mqtt(choice.settings)
    finally:
        choice.stop()


def test_the_embedded_broker_refuses_mqtt_5():
    with pytest.raises(SettingsError, match="MQTT_PROTOCOL=5 does not work with the embedded broker"):
        choose_broker(Settings(protocol="5"), requested="embedded", configured=False)


def test_broker_is_configured_by_environment_or_env_file(tmp_path, monkeypatch):
    monkeypatch.delenv("MQTT_BROKER", raising=False)
    env = tmp_path / ".env"
    assert not broker_configured(env)
    env.write_text("MQTT_PORT=1884\n")
    assert not broker_configured(env)
    env.write_text("MQTT_BROKER=mqtt.local\n")
    assert broker_configured(env)
    monkeypatch.setenv("MQTT_BROKER", "elsewhere")
    assert broker_configured(None)
