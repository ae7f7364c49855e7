"""engine/worker/ without a broker: handling and acknowledging (InFlight), the phases of a
worker's life, refusals, and taking the process group down when the manager is gone."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from engine import Middleware, Router
from engine.protocol import (
    Command,
    ExitCode,
    Failure,
    Fatal,
    FrameReader,
    Heartbeat,
    Hello,
    RoutesSource,
    WorkerSpec,
)
from engine.protocol_decode import decode
from engine.settings import Settings
from engine.worker import inflight as inflight_module
from engine.worker.buffered_client import Publish
from engine.worker.inflight import InFlight, decode_payload
from engine.worker.lifecycle import LEGAL_CHANGES, IllegalPhaseChange, Phase, Phases, Refusal, Worker
from engine.worker.link import ManagerLink
from tests.support import process_gone

# --- a client and messages without a broker -------------------------------------------------------


class FakeClient:
    """What InFlight needs of a paho client: a place for on_message, and ack()."""

    def __init__(self) -> None:
        self.acks: list[tuple[int, int]] = []
        self.on_message: Any = None

    def ack(self, mid: int, qos: int) -> None:
        self.acks.append((mid, qos))


_mids = itertools.count(1)


def message(topic: str | bytes, payload: bytes = b"{}", qos: int = 1) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(next(_mids), topic.encode() if isinstance(topic, str) else topic)
    msg.payload = payload
    msg.qos = qos
    return msg


class Harness:
    def __init__(self, router: Router, route_topic: str | None = None, limit: int = 100) -> None:
        route = router.find_route(route_topic) if route_topic else None
        self.inflight = InFlight(router, route, limit)
        self.client = FakeClient()
        self.pauses = 0
        self.resumes = 0
        self.inflight.attach(self.client, pause=self._pause, resume=self._resume)  # type: ignore[arg-type]

    def _pause(self) -> None:
        self.pauses += 1

    def _resume(self) -> None:
        self.resumes += 1

    def deliver(self, *messages: mqtt.MQTTMessage) -> None:
        """As loop_read does: paho's on_message for each (whichever it is now)."""
        for msg in messages:
            self.client.on_message(self.client, None, msg)

    async def settle(self) -> None:
        await asyncio.sleep(0)  # the inbox callback
        await asyncio.wait_for(self.inflight.finish_in_hand(), 5)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def _later(value: Any = None, fail: bool = False) -> Any:
    await asyncio.sleep(0.01)
    if fail:
        raise RuntimeError("the awaitable failed")
    return value


def returns_awaitable(payload, client):
    return _later(payload)


def returns_failing_awaitable(payload, client):
    return _later(fail=True)


def raises(payload, client):
    raise ValueError("bad message")


# --- InFlight -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "handled", "failed"),
    [(returns_awaitable, 1, 0), (returns_failing_awaitable, 0, 1), (raises, 0, 1)],
    ids=["awaitable", "failing awaitable", "raises"],
)
def test_a_plain_handler_is_counted_exactly_once_whatever_it_returns(handler, handled, failed):
    router = Router()
    router.on("jobs/+", handler, qos=1)
    h = Harness(router)

    async def scenario():
        h.inflight.start(asyncio.get_running_loop())
        msg = message("jobs/a")
        h.deliver(msg)
        await h.settle()
        await asyncio.sleep(0.05)  # nothing else may still count it
        return msg

    msg = run(scenario())
    assert (h.inflight.handled, h.inflight.failed) == (handled, failed)
    assert h.inflight.by_route == {"jobs/+": [handled, failed]}
    assert h.inflight.counts_by_route() == {"jobs/+": (handled, failed)}
    assert h.client.acks == [(msg.mid, 1)]
    assert h.inflight.received == 1 and h.inflight.pending == 0


def test_the_acknowledgement_waits_for_the_handler_to_return():
    gate: dict[str, asyncio.Event] = {}

    async def slow(payload, client):
        await gate["open"].wait()

    router = Router()
    router.on("jobs/+", slow, qos=1)
    h = Harness(router)

    async def scenario():
        h.inflight.start(asyncio.get_running_loop())
        gate["open"] = asyncio.Event()
        h.deliver(message("jobs/a"))
        await asyncio.sleep(0.05)
        assert h.client.acks == [] and h.inflight.pending == 1
        age = h.inflight.oldest_handler_age()
        assert age is not None and age > 0.03
        gate["open"].set()
        await h.settle()

    run(scenario())
    assert len(h.client.acks) == 1 and h.inflight.handled == 1
    assert h.inflight.oldest_handler_age() is None


class Tag(Middleware):
    async def handle(self, context, next_handler):
        context["payload"]["tag"] = True
        return await next_handler(context)


def test_async_handlers_and_middleware_go_through_the_routers_own_path():
    seen = []

    async def handler(name, payload, client):
        seen.append((name, payload, client))

    router = Router()
    router.on("jobs/{name}", handler, middleware=[Tag()])
    h = Harness(router)

    async def scenario():
        h.inflight.start(asyncio.get_running_loop())
        h.deliver(message("jobs/x", b'{"n": 1}', qos=0))
        await h.settle()

    run(scenario())
    assert seen == [("x", {"n": 1, "tag": True}, h.client)]
    assert h.client.acks == []  # QoS 0: nothing to acknowledge
    assert h.inflight.handled == 1


def test_messages_nobody_here_serves_are_acknowledged_and_not_counted():
    router = Router()
    router.on("jobs/+", lambda payload, client: None, qos=1, shared=True)
    router.on("jobs/special", lambda payload, client: None, qos=1, shared=True)
    router.on("other/+", lambda payload, client: None, qos=1)
    h = Harness(router, "jobs/+")

    async def scenario():
        h.inflight.start(asyncio.get_running_loop())
        h.deliver(message("jobs/special"), message("other/x"), message("nothing/here"), message("jobs/a"))
        await h.settle()

    run(scenario())
    assert len(h.client.acks) == 4
    assert h.inflight.by_route == {"jobs/+": [1, 0]}
    assert h.inflight.received == 4


def test_a_topic_that_is_not_utf8_is_a_failure_not_a_crash():
    router = Router()
    router.on("#", lambda payload, client: None, qos=1)
    h = Harness(router)

    async def scenario():
        h.inflight.start(asyncio.get_running_loop())
        h.deliver(message(b"bad/\xff\xfe"), message("good"))
        await h.settle()

    run(scenario())
    assert (h.inflight.handled, h.inflight.failed) == (1, 1)
    assert len(h.client.acks) == 2


def test_reading_pauses_at_the_limit_and_resumes_below_it():
    release: dict[str, asyncio.Event] = {}

    async def held(payload, client):
        await release["go"].wait()

    router = Router()
    router.on("jobs/+", held, qos=1)
    h = Harness(router, limit=3)

    async def scenario():
        h.inflight.start(asyncio.get_running_loop())
        release["go"] = asyncio.Event()
        h.deliver(message("jobs/1"), message("jobs/2"))
        assert h.pauses == 0
        h.deliver(message("jobs/3"))
        assert h.pauses == 1 and h.inflight.pending == 3
        await asyncio.sleep(0.01)
        assert h.resumes == 0
        release["go"].set()
        await h.settle()

    run(scenario())
    assert h.resumes == 1 and h.inflight.pending == 0 and h.inflight.handled == 3


def test_keeping_the_session_leaves_qos1_unacknowledged_and_still_takes_qos0():
    router = Router()
    router.on("jobs/+", lambda payload, client: None, qos=1)
    h = Harness(router)

    async def scenario():
        h.inflight.start(asyncio.get_running_loop())
        h.inflight.keep_for_session()
        h.deliver(message("jobs/kept", qos=1), message("jobs/taken", qos=0))
        await h.settle()

    run(scenario())
    assert h.client.acks == []
    assert h.inflight.received == 2 and h.inflight.handled == 1 and h.inflight.pending == 0


def test_payloads_are_json_when_they_can_be():
    assert decode_payload(b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert decode_payload(b"42") == 42
    assert decode_payload(b"not json") == b"not json"
    assert decode_payload(b"{broken") == b"{broken"
    assert decode_payload(b"\xff\xfe") == b"\xff\xfe"
    assert decode_payload(b"") == b""
    assert decode_payload(b"[" * 100_000) == b"[" * 100_000


def _as_before(raw: bytes) -> Any:
    """decode_payload as it was: json.loads for what may start a JSON document."""
    if not raw or raw[0] not in b'{["-0123456789tfn \t\r\n':
        return raw
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw


@pytest.mark.parametrize("raw", [
    b'{"a": [1, 2]}', b" [1] \n", b'{"a": 1} x', b"1 2", b"-", b"[1,]", b"tru", b"true", b"null", b" ", b"\t",
    b'"\xff"', b'"\\ud800"', b'{"\xed\xa0\x80": 1}', b'{"a": 1}\x0b', b'{"a": 1}\xc2\xa0', b'{"a": 1}\x00',
    '{"\u00e9": 1}'.encode("utf-16-le"), "[1]".encode("utf-32-le"), "[1]".encode("utf-8-sig"), b"[" * 100_000,
    b"-Infinity", b"1e400", b'"a\\u0000"',
])
def test_payloads_decode_exactly_as_json_loads_decodes_them(raw):
    assert repr(decode_payload(raw)) == repr(_as_before(raw))
    assert repr(decode_payload(bytearray(raw))) == repr(_as_before(bytearray(raw)))


def publish(topic: str, payload: bytes = b"{}", qos: int = 1) -> Publish:
    return Publish(topic, payload, qos, next(_mids) if qos else 0)


def test_a_batch_parsed_by_the_client_is_taken_as_one_message_each():
    release: dict[str, asyncio.Event] = {}
    seen: list[tuple[str, Any]] = []

    async def held(name, payload, client):
        seen.append((name, payload))
        await release["go"].wait()

    router = Router()
    router.on("jobs/{name}", held, qos=1)
    h = Harness(router, limit=3)

    async def scenario():
        h.inflight.start(asyncio.get_running_loop())
        release["go"] = asyncio.Event()
        h.inflight.take([publish("jobs/a", b'{"n": 1}'), publish("jobs/b", b"raw", qos=0)])
        h.inflight.handle_inbox()  # as ClientIO._read does once it has read
        assert (h.inflight.received, h.inflight.pending, h.pauses) == (2, 2, 0)
        h.inflight.take([publish("jobs/c")])
        h.inflight.handle_inbox()  # as ClientIO._read does once it has read
        assert h.pauses == 1 and h.inflight.pending == 3
        await asyncio.sleep(0.01)
        assert h.client.acks == [] and h.inflight.oldest_handler_age() is not None
        release["go"].set()
        await h.settle()

    run(scenario())
    assert seen == [("a", {"n": 1}), ("b", b"raw"), ("c", {})]
    assert len(h.client.acks) == 2 and h.resumes == 1  # the QoS 0 message needs no acknowledgement
    assert (h.inflight.handled, h.inflight.pending, h.inflight.by_route) == (3, 0, {"jobs/{name}": [3, 0]})


def test_a_batch_taken_while_keeping_the_session_leaves_qos1_unacknowledged():
    router = Router()
    router.on("jobs/+", lambda payload, client: None, qos=1)
    h = Harness(router)

    async def scenario():
        h.inflight.start(asyncio.get_running_loop())
        h.inflight.keep_for_session()
        h.inflight.take([publish("jobs/kept", qos=1), publish("jobs/taken", qos=0)])
        h.inflight.handle_inbox()  # as ClientIO._read does once it has read
        await h.settle()

    run(scenario())
    assert h.client.acks == []
    assert h.inflight.received == 2 and h.inflight.handled == 1 and h.inflight.pending == 0


class Rename(Middleware):
    async def handle(self, context, next_handler):
        context["params"]["name"] += "!"
        return await next_handler(context)


def test_parameters_remembered_for_a_topic_are_not_changed_by_middleware():
    seen = []
    router = Router()
    router.on("jobs/{name}", lambda name, payload, client: seen.append(name), middleware=[Rename()])
    h = Harness(router)

    async def scenario():
        h.inflight.start(asyncio.get_running_loop())
        h.deliver(message("jobs/x", qos=0), message("jobs/x", qos=0))
        await h.settle()

    run(scenario())
    assert seen == ["x!", "x!"]


def test_matches_are_remembered_within_bounds_and_forgotten_when_routes_change(monkeypatch):
    monkeypatch.setattr(inflight_module, "PLANS_KEPT", 2)
    seen = []
    router = Router()
    router.on("jobs/+", lambda payload, client: seen.append(("any", payload)), qos=0)
    h = Harness(router)

    async def scenario():
        h.inflight.start(asyncio.get_running_loop())
        h.inflight.take([publish(f"jobs/{i}", str(i).encode(), qos=0) for i in range(5)])
        h.inflight.handle_inbox()  # as ClientIO._read does once it has read
        await h.settle()
        assert len(h.inflight._plans) <= 2
        router.on("jobs/special", lambda payload, client: seen.append(("special", payload)), qos=0)
        h.inflight.take([publish("jobs/special", b"5", qos=0), publish("jobs/4", b"6", qos=0)])
        h.inflight.handle_inbox()  # as ClientIO._read does once it has read
        await h.settle()

    run(scenario())
    assert seen == [*(("any", i) for i in range(5)), ("special", 5), ("any", 6)]


# --- phases -------------------------------------------------------------------------------------


def test_every_legal_phase_change_is_allowed_and_every_other_refused():
    for old, new in itertools.product(Phase, Phase):
        phases = Phases()
        phases.phase = old
        if new in LEGAL_CHANGES[old]:
            phases.move(new)
            assert phases.phase is new
        else:
            with pytest.raises(IllegalPhaseChange):
                phases.move(new)
            assert phases.phase is old


def test_done_is_the_end_and_every_phase_can_reach_it():
    assert LEGAL_CHANGES[Phase.DONE] == frozenset()
    for start in Phase:
        reachable, frontier = {start}, [start]
        while frontier:
            for nxt in LEGAL_CHANGES[frontier.pop()]:
                if nxt not in reachable:
                    reachable.add(nxt)
                    frontier.append(nxt)
        assert Phase.DONE in reachable, start


def test_waiting_for_a_phase_to_end():
    async def scenario():
        phases = Phases()
        waiter = asyncio.ensure_future(phases.leaving(Phase.CONNECTING, Phase.SERVING))
        await asyncio.sleep(0)
        phases.move(Phase.SERVING)
        await asyncio.sleep(0)
        assert not waiter.done()
        phases.move(Phase.RETIRING)
        await asyncio.wait_for(waiter, 1)

    run(scenario())


# --- the worker, without a broker -----------------------------------------------------------------


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_worker(router: Router, route_topic: str | None = None, **settings: Any) -> tuple[Worker, socket.socket]:
    mine, theirs = socket.socketpair()
    s = Settings(broker="127.0.0.1", port=unused_port(), graceful_timeout=2.0).replace(**settings)
    spec = WorkerSpec("slot#0", "test-worker-parts", "g", route_topic, RoutesSource(), s)
    return Worker(spec, router, ManagerLink(mine)), theirs


def received(sock: socket.socket) -> list[Any]:
    sock.setblocking(False)
    reader = FrameReader()
    frames: list[bytes] = []
    try:
        while data := sock.recv(65536):
            frames += reader.feed(data)
    except BlockingIOError:
        pass
    return [decode(body) for body in frames]


def test_a_pool_route_missing_from_the_routers_is_a_routes_refusal():
    router = Router()
    router.on("jobs/+", lambda payload, client: None)  # not shared
    with pytest.raises(Refusal) as caught:
        make_worker(router, "jobs/+")
    assert caught.value.failure is Failure.ROUTES
    assert caught.value.failure.exit_code is ExitCode.ROUTES


def test_a_failure_is_reported_once_and_ends_the_serving():
    router = Router()
    router.on("jobs/+", lambda payload, client: None)
    worker, manager = make_worker(router)
    try:
        worker.fail(Failure.AUTH, "bad credentials: Not authorized")
        worker.fail(Failure.CONFIG, "something else")
        assert worker.phase is Phase.FAILED
        worker.request_retire()
        worker.request_stop()
        assert worker.phase is Phase.FAILED
        assert received(manager) == [Fatal(Failure.AUTH, "bad credentials: Not authorized")]
    finally:
        manager.close()


def test_stop_keeping_the_session_while_the_broker_is_unreachable(monkeypatch):
    router = Router()
    router.on("jobs/+", lambda payload, client: None)
    worker, manager = make_worker(router)
    monkeypatch.setattr(worker, "_on_manager_gone", lambda: None)  # this test's process must not exit

    async def scenario():
        loop = asyncio.get_running_loop()
        loop.call_later(0.8, worker._on_command, Command.RETIRE)  # retiring also keeps connecting
        loop.call_later(1.2, worker.request_stop)
        return await asyncio.wait_for(worker.run(), 10)

    old = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        assert run(scenario()) is ExitCode.OK
    finally:
        signal.signal(signal.SIGTERM, old[0])
        signal.signal(signal.SIGINT, old[1])
    assert worker.phase is Phase.DONE
    messages = received(manager)
    manager.close()
    assert messages[0] == Hello(os.getpid())
    beats = [m for m in messages if isinstance(m, Heartbeat)]
    assert beats and not any(b.connected for b in beats)
    assert any("connection refused" in b.detail for b in beats)
    failures = [m for m in messages if isinstance(m, Fatal)]
    assert failures == []


# --- the process group goes when the manager has gone (issue 11) ---------------------------------

CHILD = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from engine.worker.lifecycle import take_group_down
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(sleeper.pid, flush=True)
    time.sleep(0.2)
    take_group_down()
    print("still here", flush=True)
    sleeper.kill()
    """
)


def test_taking_the_group_down_kills_what_the_worker_forked():
    child = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, start_new_session=True, timeout=30
    )
    lines = child.stdout.split()
    assert child.returncode == -9 and "still" not in child.stdout
    sleeper = int(lines[0])
    deadline = time.monotonic() + 5
    while not process_gone(sleeper) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process_gone(sleeper)


def test_taking_the_group_down_never_touches_a_group_the_worker_does_not_lead():
    child = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=30)  # our group
    assert child.returncode == 0 and "still here" in child.stdout
