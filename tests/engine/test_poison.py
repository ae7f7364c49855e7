"""Poison messages: the in-hand table a worker shares with its manager, and the ledger that
decides when a message that keeps killing its slot's worker is set aside."""

from __future__ import annotations

from engine.in_hand import ENTRY_SIZE, TOPIC_KEPT, InHand, InHandTable, create, message_key
from engine.supervisor.poison import PoisonLedger


def table(entries: int = 4) -> tuple[InHandTable, InHandTable]:
    """The worker's view and the manager's view of one shared table."""
    fd = create(entries)
    worker, manager = InHandTable(fd), InHandTable(fd)
    return worker, manager


def test_what_a_worker_holds_is_what_its_manager_reads():
    worker, manager = table()
    first = worker.hold(b"jobs/a", b'{"n": 1}', 1)
    worker.hold(b"jobs/b", b"x" * (ENTRY_SIZE * 3), 0)  # too big to copy: its checksum is kept
    assert [h.key for h in manager.read()] == [
        message_key(b"jobs/a", b'{"n": 1}'),
        message_key(b"jobs/b", b"x" * (ENTRY_SIZE * 3)),
    ]
    worker.release(first)
    assert [h.topic for h in manager.read()] == ["jobs/b"]


def test_a_message_is_known_again_when_it_comes_back():
    worker, manager = table()
    worker.hold(b"t/" + b"x" * 1000, b"payload", 1)
    [held] = manager.read()
    assert held.key == message_key(b"t/" + b"x" * 1000, b"payload")
    assert len(held.key.topic) == TOPIC_KEPT
    assert held.key != message_key(b"t/" + b"x" * 1000, b"payloae")


def test_a_full_table_holds_nothing_more_and_says_so():
    worker, manager = table(entries=1)
    assert worker.hold(b"a", b"1", 1) == 0
    assert worker.hold(b"b", b"2", 1) == -1
    worker.release(-1)  # a hold that was not recorded is released harmlessly
    assert [h.topic for h in manager.read()] == ["a"]


def test_a_message_is_quarantined_after_the_allowed_deaths_once():
    ledger = PoisonLedger(deaths_allowed=3)
    poison = InHand(message_key(b"jobs/a", b"boom"), 1)
    assert ledger.died_holding("jobs/+#0", [poison], "1 (crashed)") == []
    assert ledger.died_holding("jobs/+#0", [poison], "1 (crashed)") == []
    [(key, suspect)] = ledger.died_holding("jobs/+#0", [poison], "SIGSEGV")
    assert key == poison.key and suspect.deaths == 3 and suspect.last_exit == "SIGSEGV"
    assert ledger.died_holding("jobs/+#0", [poison], "SIGSEGV") == []  # already quarantined
    assert [k for k, _ in ledger.quarantined("jobs/+#0")] == [poison.key]
    ledger.set_aside("jobs/+#0", poison.key)
    assert ledger.quarantined("jobs/+#0") == []


def test_deaths_count_per_slot_and_zero_turns_quarantine_off():
    ledger = PoisonLedger(deaths_allowed=2)
    poison = InHand(message_key(b"jobs/a", b"boom"), 1)
    ledger.died_holding("jobs/+#0", [poison], "1")
    assert ledger.died_holding("jobs/+#1", [poison], "1") == []  # another slot: another message
    off = PoisonLedger(deaths_allowed=0)
    for _ in range(10):
        assert off.died_holding("jobs/+#0", [poison], "1") == []


def test_the_ledger_forgets_its_oldest_suspects_first():
    ledger = PoisonLedger(deaths_allowed=5, kept=2)
    for n in range(3):
        ledger.died_holding("s", [InHand(message_key(b"t", str(n).encode()), 1)], "1")
    assert len(ledger) == 2
