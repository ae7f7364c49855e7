"""Hostile input on the wire: whatever arrives, workers stay up, and every message is handled or
counted as failed exactly once, with one log line per failure.

One long-lived pool serves the whole module (starting workers per example would be slow): a
QoS 1 shared route ``hostile/#`` whose handler accepts JSON objects and raises on anything else.
Hypothesis publishes many examples against it; after each example the route's handled + failed
total must have advanced by exactly the number of messages published.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from engine import Router, WorkerManager
from engine.settings import Secret, load_settings
from tests.e2e import helpers
from tests.support import Publisher, all_running, settings_for, wait_until

pytestmark = pytest.mark.e2e

ROUTE = "hostile/#"
HOSTILE = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Pool:
    manager: WorkerManager
    publisher: Publisher
    pids: dict[str, int]
    seen_seq: int = 0
    published: int = field(default=0)

    def totals(self) -> tuple[int, int]:
        route = next(r for r in self.manager.snapshot().routes if r.topic == ROUTE)
        return route.handled, route.failed

    def publish_and_account(self, messages: list[tuple[str, bytes]]) -> tuple[int, int]:
        """Publish ``messages`` (QoS 1, each acknowledged by the broker) and check the accounting:
        handled + failed advances by exactly their number, and each failure is logged once.
        Returns how many were handled and how many failed."""
        handled0, failed0 = self.totals()
        for topic, payload in messages:
            self.publisher.publish(topic, payload, qos=1)
        self.published += len(messages)
        wait_until(lambda: sum(self.totals()) - handled0 - failed0 >= len(messages),
                   what=f"{len(messages)} messages handled or failed")
        handled, failed = self.totals()
        assert (handled - handled0) + (failed - failed0) == len(messages), "each message counted exactly once"
        events = self.manager.events_since(self.seen_seq)
        if events:
            self.seen_seq = events[-1].seq
        # Failures come grouped by exception with the heartbeat that counts them: every one is
        # in a group of the route's detail, and reported with its traceback.
        reports = [e for e in events if e.kind == "failure" and e.level == logging.ERROR
                   and e.message.startswith("handler objects_only failed on topic")]
        assert (failed > failed0) == bool(reports) and all(e.traceback for e in reports)
        detail = self.manager.route_detail(ROUTE)
        assert detail is not None and sum(g.count for g in detail.failures) == failed, "each failure in a group"
        assert not [e for e in events if e.kind not in ("log", "failure")], "no worker died, restarted or was killed"
        return handled - handled0, failed - failed0

    def assert_same_workers(self) -> None:
        workers = self.manager.snapshot().workers
        assert {w.slot: w.pid for w in workers} == self.pids and all(w.restarts == 0 for w in workers)


@pytest.fixture(scope="module")
def pool(broker) -> Iterator[Pool]:
    group = "t" + uuid.uuid4().hex[:10]
    router = Router()
    router.on(ROUTE, helpers.objects_only, qos=1, shared=True, worker_count=2)
    manager = WorkerManager(router, group, settings=settings_for(broker, group))
    try:
        manager.start_workers()
        wait_until(lambda: all_running(manager), what="the hostile-input pool running")
        with Publisher(broker) as publisher:
            pool = Pool(manager, publisher, {w.slot: w.pid for w in manager.snapshot().workers})
            pool.seen_seq = manager.events_since(0)[-1].seq  # the start is not what we watch
            yield pool
        pool.assert_same_workers()
    finally:
        manager.close()


# ----------------------------------------------------------------------------------------------
# Payloads
# ----------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
DEEP = 100_000
# (payload, whether it decodes to a JSON object)
MONSTERS = [
    (b"", False),  # empty
    (b"[" * DEEP, False),  # 100 000 levels of [, never closed
    (b"[" * DEEP + b"]" * DEEP, False),  # and closed
    (b'{"a":' * DEEP + b"1" + b"}" * DEEP, False),  # 100 000 nested objects
    (b'{"text": "\xc3\x28 invalid UTF-8 inside a JSON string"}', False),
    (b"\xff\xfe\xfd not UTF-8 at all", False),
    (b"\x00" * 1024, False),
    (b"{" * 10 + b"truncated", False),
    (random.Random(6).randbytes(1 << 20), False),  # 1 MB of noise
    (json.dumps({"blob": "x" * (1 << 20)}).encode(), True),  # a 1 MB JSON object
    (json.dumps([{"n": i} for i in range(60_000)]).encode(), False),  # a 1 MB JSON array
]
# (payload, True when it decodes to a JSON object, False when it cannot, None when it may)
payloads = st.one_of(
    st.binary(max_size=512).map(lambda raw: (raw, None)),
    json_values.map(lambda value: (json.dumps(value).encode(), isinstance(value, dict))),
    st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=6).map(
        lambda obj: (json.dumps(obj, ensure_ascii=False).encode(), True)
    ),
    st.sampled_from(MONSTERS),
)


@HOSTILE
@given(batch=st.lists(payloads, min_size=1, max_size=8))
def test_any_payload_is_handled_or_counted_failed_exactly_once_and_logged_once(pool, batch):
    handled, failed = pool.publish_and_account([("hostile/payloads", raw) for raw, _ in batch])
    assert handled >= sum(1 for _, is_object in batch if is_object is True)
    assert failed >= sum(1 for _, is_object in batch if is_object is False)
    pool.assert_same_workers()


def test_monster_payloads_each_fail_once_without_hurting_the_workers(pool):
    # Every monster but the 1 MB JSON object is not a JSON object: the handler refuses it.
    # (Mosquitto's message_size_limit defaults to 0, "all valid MQTT messages are accepted";
    # MQTT allows payloads up to 256 MB, so the 1 MB ones reach the workers.)
    handled, failed = pool.publish_and_account([("hostile/monsters", raw) for raw, _ in MONSTERS])
    assert (handled, failed) == (1, len(MONSTERS) - 1)
    pool.assert_same_workers()


# ----------------------------------------------------------------------------------------------
# Topics
# ----------------------------------------------------------------------------------------------

# MQTT forbids U+0000 in topics and Mosquitto refuses control characters and non-characters
# (it disconnects the publisher): those are not ours to test. Wildcards cannot be published.
level_chars = st.characters(blacklist_categories=("Cs", "Cc", "Cn"), blacklist_characters="+#/")
levels = st.one_of(
    st.text(level_chars, max_size=12),
    st.sampled_from(["$", "a$b", "$SYS", "$share", " ", "  two  spaces ", "ünï©ødé", "日本語", "😀", "."]),
    st.integers(1_000, 20_000).map(lambda n: "long" * (n // 4)),  # very long levels
)
topics = (
    st.lists(levels, min_size=1, max_size=6)
    .map(lambda parts: "hostile/" + "/".join(parts))
    .filter(lambda topic: len(topic.encode()) <= 65_535)  # the longest topic MQTT can carry
)


@HOSTILE
@given(batch=st.lists(topics, min_size=1, max_size=8))
def test_messages_on_odd_topics_are_each_handled_once(pool, batch):
    handled, failed = pool.publish_and_account([(topic, b'{"ok": true}') for topic in batch])
    assert (handled, failed) == (len(batch), 0)
    pool.assert_same_workers()


# ----------------------------------------------------------------------------------------------
# Secrets
# ----------------------------------------------------------------------------------------------

PASSWORD = "pa55-W0rd-never-shown"
KEY_PASSWORD = "key-pa55-never-shown"


def test_a_password_never_shows_in_events_process_listings_or_snapshots(make_broker, group_name, managers,
                                                                       tmp_path, monkeypatch):
    passwords = tmp_path / "passwords"
    passwords.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "worker", PASSWORD], check=True)
    server = make_broker(listener_config="listener {port} {host}\nallow_anonymous false\n"
                                         f"password_file {passwords}\n")
    # Set as a user would, in the environment the manager (and so its workers) inherit.
    monkeypatch.setenv("MQTT_USERNAME", "worker")
    monkeypatch.setenv("MQTT_PASSWORD", PASSWORD)
    monkeypatch.setenv("MQTT_TLS_KEYFILE_PASSWORD", KEY_PASSWORD)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    loaded = load_settings(env_file=None)
    assert loaded.password == Secret(PASSWORD)
    router = Router()
    router.on("secret/+", helpers.objects_only, qos=1, shared=True, worker_count=2)
    router.on("plain/+", helpers.objects_only, qos=1)
    manager = WorkerManager(router, group_name, settings=settings_for(server, group_name).replace(
        username=loaded.username, password=loaded.password, tls_keyfile_password=loaded.tls_keyfile_password,
        log_level="DEBUG"))
    managers.append(manager)
    manager.start_workers()
    wait_until(lambda: all_running(manager), what="workers authenticated and subscribed")
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
    publisher.username_pw_set("worker", PASSWORD)
    publisher.connect(server.host, server.port)
    publisher.loop_start()
    publisher.publish("secret/x", b"not an object: the handler fails, with a traceback", qos=1).wait_for_publish(10)
    publisher.publish("plain/x", b'{"fine": true}', qos=1).wait_for_publish(10)
    publisher.disconnect()
    publisher.loop_stop()
    wait_until(lambda: manager.snapshot().failed == 1 and manager.snapshot().handled == 1, what="both handled")

    seen = [repr(manager.snapshot()), repr(manager.settings), *(e.message for e in manager.events_since(0))]
    for info in manager.snapshot().workers:
        process = psutil.Process(info.pid)
        seen.append(" ".join(process.cmdline()))
        seen.extend(f"{name}={value}" for name, value in process.environ().items())
    text = "\n".join(seen)
    assert "MQTT_USERNAME=worker" in text, "the environment was read (the check below is not vacuous)"
    assert PASSWORD not in text and KEY_PASSWORD not in text

