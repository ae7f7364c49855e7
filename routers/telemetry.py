"""Sensor telemetry: high-volume readings handled by shared worker pools."""

import logging

from engine import Router

log = logging.getLogger("routers.telemetry")
router = Router()

# Per-process tallies: each worker counts what it handled itself.
readings = {"temperature": 0, "humidity": 0}


def _value(payload):
    if isinstance(payload, dict):
        return payload.get("value")
    return payload


def record_temperature(payload, client):
    readings["temperature"] += 1
    log.debug("temperature %s (%d so far)", _value(payload), readings["temperature"])


async def record_humidity(sensor_id, payload, client):
    readings["humidity"] += 1
    log.debug("humidity of %s: %s", sensor_id, _value(payload))


router.on("sensors/+/temperature", record_temperature, qos=1, shared=True, worker_count=2)
router.on("sensors/{sensor_id}/humidity", record_humidity, qos=1, shared=True, worker_count=1)
