"""engine/supervisor/journal.py and EventLog.journal: each slot keeps its own log lines and its
own lifecycle, bounded separately, so a flood from one never buries another's history."""

from __future__ import annotations

import itertools
import logging

import pytest

from engine.details import LIFECYCLE_KEPT, LOG_LINES_KEPT
from engine.snapshot import EngineEvent
from engine.supervisor.event_log import EventLog
from engine.supervisor.journal import LOG_CHARACTERS_KEPT, SLOTS_KEPT, SlotJournal

_seq = itertools.count(1)


def event(kind: str, slot: str | None, message: str = "") -> EngineEvent:
    return EngineEvent(next(_seq), 1_700_000_000.0, kind, message, slot)


def messages(events: tuple[EngineEvent, ...]) -> list[str]:
    return [e.message for e in events]


def test_log_lines_and_failures_are_logs_everything_else_lifecycle():
    journal = SlotJournal()
    for kind in ("started", "log", "failure", "exited", "restarted", "hung", "recycled", "log"):
        journal.add(event(kind, "jobs#0", kind))
    logs, lifecycle = journal.of("jobs#0")
    assert messages(logs) == ["log", "failure", "log"]
    assert messages(lifecycle) == ["started", "exited", "restarted", "hung", "recycled"]


def test_each_slot_has_its_own():
    journal = SlotJournal()
    journal.add(event("log", "jobs#0", "mine"))
    journal.add(event("started", "jobs#1", "theirs"))
    assert messages(journal.of("jobs#0")[0]) == ["mine"] and journal.of("jobs#0")[1] == ()
    assert journal.of("jobs#1")[0] == () and messages(journal.of("jobs#1")[1]) == ["theirs"]
    assert journal.of("never#0") == ((), ())


def test_a_flood_of_one_slots_logs_evicts_only_its_own_oldest_log_lines():
    journal = SlotJournal()
    journal.add(event("started", "loud#0", "loud started"))
    journal.add(event("log", "quiet#0", "quiet line"))
    journal.add(event("started", "quiet#0", "quiet started"))
    for index in range(LOG_LINES_KEPT + 500):
        journal.add(event("log", "loud#0", f"line {index}"))
    journal.add(event("exited", "loud#0", "loud exited"))
    logs, lifecycle = journal.of("loud#0")
    assert len(logs) == LOG_LINES_KEPT
    assert logs[0].message == "line 500" and logs[-1].message == f"line {LOG_LINES_KEPT + 499}"
    assert messages(lifecycle) == ["loud started", "loud exited"]
    assert messages(journal.of("quiet#0")[0]) == ["quiet line"]
    assert messages(journal.of("quiet#0")[1]) == ["quiet started"]


def test_lifecycle_is_bounded_on_its_own():
    journal = SlotJournal()
    journal.add(event("log", "jobs#0", "a line"))
    for index in range(LIFECYCLE_KEPT + 10):
        journal.add(event("restarted", "jobs#0", f"restart {index}"))
    logs, lifecycle = journal.of("jobs#0")
    assert len(lifecycle) == LIFECYCLE_KEPT
    assert lifecycle[0].message == "restart 10"
    assert messages(logs) == ["a line"]


def test_events_without_a_slot_are_not_kept_and_take_no_slots_place():
    journal = SlotJournal()
    journal.add(event("log", "first#0", "kept"))
    for _ in range(SLOTS_KEPT + 5):
        journal.add(event("scaled", None, "pool scaled"))
        journal.add(event("log", None, "the manager's own line"))
    assert messages(journal.of("first#0")[0]) == ["kept"]
    assert journal.of("None") == ((), ())


def test_beyond_slots_kept_the_slots_that_left_longest_ago_are_forgotten():
    journal = SlotJournal()
    for index in range(SLOTS_KEPT + 1):
        journal.add(event("started", f"gone#{index}", "started"))
    assert journal.of("gone#0") == ((), ())
    assert len(journal.of("gone#1")[1]) == 1
    assert len(journal.of(f"gone#{SLOTS_KEPT}")[1]) == 1


def test_a_slot_still_writing_is_not_forgotten_for_slots_that_left():
    journal = SlotJournal()
    journal.add(event("started", "main", "main started"))
    for index in range(SLOTS_KEPT + 10):
        journal.add(event("started", f"gone#{index}", "started"))
        journal.add(event("log", "main", f"main line {index}"))
    logs, lifecycle = journal.of("main")
    assert messages(lifecycle) == ["main started"]
    assert len(logs) == SLOTS_KEPT + 10


# --- EventLog -------------------------------------------------------------------------------------


def test_the_event_log_keeps_each_slots_journal():
    events = EventLog(kept=10)
    events.emit("started", "started (pid 1)", slot="jobs#0")
    for index in range(50):  # far more than the shared stream keeps
        events.emit("log", f"line {index}", slot="jobs#0", level=logging.DEBUG)
    events.emit("scaled", "jobs scaled to 2")
    logs, lifecycle = events.journal("jobs#0")
    assert len(logs) == 50 and logs[0].message == "line 0"
    assert messages(lifecycle) == ["started (pid 1)"]
    assert len(events.since(0)) == 10
    assert events.journal("jobs#1") == ((), ())


def test_emit_puts_a_failures_fields_on_the_event_and_the_log_record(caplog: pytest.LogCaptureFixture):
    events = EventLog()
    with caplog.at_level(logging.ERROR):
        events.emit(
            "failure", "ValueError in app.handle\nTraceback ...\nValueError: bad", slot="jobs#0", level=logging.ERROR,
            exception="ValueError", topic="jobs/7",
        )
    (failure,) = events.since(0)
    assert failure.kind == "failure" and failure.slot == "jobs#0" and failure.level == logging.ERROR
    assert (failure.exception, failure.topic, failure.traceback) == (
        "ValueError", "jobs/7", "Traceback ...\nValueError: bad",
    )
    assert events.journal("jobs#0")[0] == (failure,)
    (record,) = [r for r in caplog.records if r.name == "routemq.worker.jobs#0"]
    assert record.exception == "ValueError"  # type: ignore[attr-defined]
    assert record.topic == "jobs/7"  # type: ignore[attr-defined]
    events.emit("started", "started (pid 2)", slot="jobs#0")
    plain = events.since(failure.seq)[0]
    assert (plain.exception, plain.topic, plain.traceback) == (None, None, None)


def test_a_slots_log_is_bounded_in_characters_too():
    journal = SlotJournal()
    big = "x" * 100_000
    for _ in range(20):
        journal.add(event("failure", "jobs#0", big))
    journal.add(event("log", "jobs#0", "the latest"))
    logs, _ = journal.of("jobs#0")
    assert sum(len(e.message) for e in logs) <= LOG_CHARACTERS_KEPT
    assert logs[-1].message == "the latest" and len(logs) < 21
