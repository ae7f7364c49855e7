"""The baseline: the simplest correct paho-mqtt 2.x subscriber, as its own process.

``on_message`` json-decodes the payload and calls a handler from ``bench.handlers`` on paho's
network thread; paho acknowledges QoS 1 itself after ``on_message`` returns. No asyncio, no
hand-off between threads, no manager link: this is what the worker's machinery is compared to.
It prints ``ready`` on stdout once the broker has acknowledged the subscription, and runs until
SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find bench.handlers

from bench import handlers


def make_client(args: argparse.Namespace) -> mqtt.Client:
    v5 = args.protocol == "5"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    handler = getattr(handlers, args.handler)

    def on_connect(client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        client.subscribe(args.topic, qos=args.qos)

    def on_subscribe(client: mqtt.Client, userdata: object, mid: int, reasons: object, props: object) -> None:
        print("ready", flush=True)

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        handler(payload=json.loads(message.payload), client=client)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    return client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bare paho subscriber (benchmark baseline)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", required=True, help="filter, e.g. $share/group/bench/bare")
    parser.add_argument("--qos", type=int, default=0)
    parser.add_argument("--protocol", choices=("3.1.1", "5"), default="3.1.1")
    parser.add_argument("--handler", default="count", help="a function of bench.handlers")
    args = parser.parse_args(argv)
    client = make_client(args)
    signal.signal(signal.SIGTERM, lambda *_: client.disconnect())
    client.connect(args.host, args.port)
    client.loop_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
