"""The example routers in routers/: their routes, and that they dispatch and reply."""

from __future__ import annotations

import json

import pytest

from engine import NoRouteError, Router
from routers import devices, telemetry


class RecordingClient:
    """Records publish calls: the only part of paho's client the example handlers use."""

    def __init__(self) -> None:
        self.published: list[tuple[str, object, int]] = []

    def publish(self, topic, payload=None, qos=0, retain=False):
        self.published.append((topic, payload, qos))


@pytest.fixture
def router() -> Router:
    merged = Router()
    merged.include(telemetry.router)
    merged.include(devices.router)
    return merged


def test_telemetry_routes_are_shared_pools():
    routes = {r.topic: r for r in telemetry.router.routes}
    assert set(routes) == {"sensors/+/temperature", "sensors/{sensor_id}/humidity"}
    assert all(r.shared for r in routes.values())
    assert routes["sensors/{sensor_id}/humidity"].get_subscription_topic("g") == "$share/g/sensors/+/humidity"
    assert telemetry.router.get_total_workers_needed() == 3


def test_the_device_command_route_is_qos_2_and_not_shared():
    [route] = devices.router.routes
    assert (route.topic, route.qos, route.shared) == ("devices/{device_id}/commands/{command}", 2, False)
    assert route.get_subscription_topic("g") == "devices/+/commands/+"
    assert devices.router.get_total_workers_needed() == 0


async def test_temperature_and_humidity_readings_are_counted(router, monkeypatch):
    monkeypatch.setattr(telemetry, "readings", {"temperature": 0, "humidity": 0})
    client = RecordingClient()
    await router.dispatch("sensors/s1/temperature", {"value": 21.5}, client)
    await router.dispatch("sensors/s2/temperature", 19, client)
    await router.dispatch("sensors/s1/humidity", {"value": 40}, client)
    assert telemetry.readings == {"temperature": 2, "humidity": 1}
    assert client.published == []


async def test_a_device_command_is_answered_with_a_reply(router):
    client = RecordingClient()
    reply = await router.dispatch("devices/dev-7/commands/reboot", b"{}", client)
    assert reply == {"device": "dev-7", "command": "reboot", "ok": True}
    assert client.published == [("devices/dev-7/responses/reboot", json.dumps(reply), 1)]


async def test_topics_the_examples_do_not_handle_raise_no_route_error(router):
    for topic in ["sensors/s1/pressure", "devices/dev-7/responses/reboot", "sensors/temperature"]:
        with pytest.raises(NoRouteError):
            await router.dispatch(topic, b"", RecordingClient())
