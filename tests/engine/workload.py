"""Handlers for worker tests, steered by the payload. They live at module level in an importable
module, so that worker processes can import them.

Payload keys: ``id`` (recorded), ``out`` (file the record is appended to), and optional
behaviours: ``say`` a line logged (at ERROR) first; ``started`` a path prefix:
``<prefix>.<id>`` is written when handling begins; ``sleep`` seconds; ``hold`` a marker path:
the first delivery writes it and then blocks forever (a worker killed there must get the
message again); ``crash`` exits the process at once; ``raise`` raises; ``grow_mb`` allocates and
keeps memory; ``burn`` spends that many seconds of CPU time (process time, so the work per
message is the same however many workers share the cores).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

_kept: list[bytes] = []


def _behave(payload: Any) -> None:
    if not isinstance(payload, dict):
        return
    if payload.get("say"):
        logging.getLogger("workload").error("%s", payload["say"])
    if payload.get("crash"):
        os._exit(13)
    if payload.get("raise"):
        raise RuntimeError(f"handler failure for message {payload.get('id')}")
    if payload.get("grow_mb"):
        _kept.append(b"x" * (payload["grow_mb"] * 1024 * 1024))
    hold = payload.get("hold")
    if hold and not os.path.exists(hold):
        _mark(hold)
        while True:
            time.sleep(1)
    if payload.get("started"):
        _mark(f"{payload['started']}.{payload.get('id')}")
    if payload.get("sleep"):
        time.sleep(payload["sleep"])
    if payload.get("burn"):
        _burn(payload["burn"])


def _mark(path: str) -> None:
    """Write our pid to ``path`` atomically: a test that sees the file can read the pid."""
    with open(f"{path}.tmp", "w") as marker:
        marker.write(str(os.getpid()))
    os.replace(f"{path}.tmp", path)


def _burn(seconds: float) -> None:
    until = time.process_time() + seconds
    total = 0
    while time.process_time() < until:
        for i in range(2000):
            total += i * i


def _record(payload: Any, topic: str) -> None:
    if isinstance(payload, dict) and payload.get("out"):
        with open(payload["out"], "a") as out:
            out.write(f"{os.getpid()} {payload.get('id')} {topic}\n")


def burn(payload: Any, client: Any) -> None:
    """Pure-Python CPU work: the payload's ``burn`` seconds of it."""
    if isinstance(payload, dict) and payload.get("burn"):
        _burn(payload["burn"])
    _record(payload, "burn")


def record(payload: Any, client: Any) -> None:
    _behave(payload)
    _record(payload, "plain")


def record_param(name: str, payload: Any, client: Any) -> None:
    _behave(payload)
    _record(payload, f"param={name}")


async def record_async(name: str, payload: Any, client: Any) -> None:
    hold = payload.get("hold") if isinstance(payload, dict) else None
    if hold and not os.path.exists(hold):
        _mark(hold)
        await asyncio.Event().wait()  # never set: the event loop keeps running, this handler does not
    await asyncio.sleep(0)
    _behave(payload)
    _record(payload, "async")
