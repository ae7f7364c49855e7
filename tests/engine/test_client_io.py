"""ClientIO on a real broker: at most worker_concurrency messages in hand, whatever the socket
and the read buffer hold, with the selector told to stop watching the socket only when it wakes
the worker while reading is paused."""

from __future__ import annotations

import asyncio
from typing import Any

from engine import Router
from engine.protocol import Failure
from engine.worker.client_io import ClientIO
from engine.worker.inflight import InFlight
from tests.support import Publisher, settings_for

LIMIT = 4


class Events:
    def __init__(self) -> None:
        self.ready = asyncio.Event()

    def connected(self) -> None:
        pass

    def connect_failed(self, reason: str, failure: Failure | None) -> None:
        pass

    def connection_lost(self, reason: str) -> None:
        pass

    def subscribed(self, refused: list[str]) -> None:
        self.ready.set()

    def unsubscribed(self) -> None:
        pass


async def until(predicate: Any, what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_no_more_than_the_limit_is_taken_and_reading_resumes_below_it(broker, group_name):
    release = asyncio.Event()
    most = [0]
    router = Router()

    async def held(name, payload, client):
        most[0] = max(most[0], inflight.pending)
        await release.wait()

    router.on(f"{group_name}/jobs/{{name}}", held, qos=1)
    inflight = InFlight(router, None, LIMIT)
    events = Events()
    io = ClientIO(settings_for(broker, group_name, worker_concurrency=LIMIT), f"{group_name}-io", inflight, events)
    io.keep_subscribed([(f"{group_name}/jobs/+", 1)])

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        io.start(loop)
        assert await io.connect()
        await asyncio.wait_for(events.ready.wait(), 10)
        with Publisher(broker) as pub:
            for i in range(20):
                pub.publish(f"{group_name}/jobs/n{i}", {"i": i}, wait=False)
            await until(lambda: inflight.received == LIMIT, "the first messages")
            await asyncio.sleep(0.2)  # the rest wait: in the read buffer, the socket, the broker
            assert (inflight.received, inflight.pending) == (LIMIT, LIMIT)
            for i in range(20, 25):  # more arrive on the socket while paused: the selector wakes
                pub.publish(f"{group_name}/jobs/n{i}", {"i": i}, wait=False)
            await until(lambda: not io._reader_on, "the selector to stop watching the socket")
            assert inflight.received == LIMIT
            release.set()
            await until(lambda: inflight.handled == 25, "every message handled")
        assert most[0] <= LIMIT and inflight.pending == 0 and inflight.failed == 0
        await io.disconnect(end_session_too=True)
        io.stop()

    asyncio.run(scenario())


def test_messages_arriving_one_at_a_time_are_parsed_without_paho(broker, group_name):
    """At moderate rates each wake-up finds one message on the socket; it must still take the
    fast path (fill the buffer, then take_publishes), not paho's packet reader."""
    router = Router()
    router.on(f"{group_name}/one/{{name}}", lambda name, payload, client: None, qos=1)
    inflight = InFlight(router, None, LIMIT)
    events = Events()
    io = ClientIO(settings_for(broker, group_name), f"{group_name}-one", inflight, events)
    io.keep_subscribed([(f"{group_name}/one/+", 1)])

    async def scenario() -> None:
        io.start(asyncio.get_running_loop())
        assert await io.connect()
        await asyncio.wait_for(events.ready.wait(), 10)
        with Publisher(broker) as pub:
            for i in range(10):
                pub.publish(f"{group_name}/one/n{i}", {"i": i})
                await until(lambda i=i: inflight.handled == i + 1, f"message {i} handled")
        assert io.client.publishes_taken == 10
        await io.disconnect(end_session_too=True)
        io.stop()

    asyncio.run(scenario())
