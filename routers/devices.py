"""Device commands: not shared (one subscriber, the main worker), QoS 2, answered with a reply."""

import json
import logging

from engine import Router

log = logging.getLogger("routers.devices")
router = Router()


def handle_command(device_id, command, payload, client):
    log.info("device %s: command %s", device_id, command)
    reply = {"device": device_id, "command": command, "ok": True}
    client.publish(f"devices/{device_id}/responses/{command}", json.dumps(reply), qos=1)
    return reply


router.on("devices/{device_id}/commands/{command}", handle_command, qos=2)
