"""Slot and pool behaviour with a dummy process and a fake clock: no broker, no process, fast.

Each test drives a slot the way the arbiter does (spawn, messages, reap, tick) and checks what
the slot decided: its state, the signals its process got, the events it reported.
"""

from __future__ import annotations

import pytest

from engine.in_hand import InHand, message_key
from engine.protocol import Command, Failure, Fatal, Heartbeat
from engine.settings import Settings
from engine.states import IllegalTransition, SlotState
from engine.supervisor.slot import STARTUP_GRACE

from .dummies import DummyHost, exits, new_pool, process_of


def running_slot(host: DummyHost):
    pool = new_pool(host)
    pool.converge()
    slot = pool.slots[0]
    slot.on_message(Heartbeat(connected=True, subscribed=True))
    assert slot.state is SlotState.RUNNING
    return pool, slot


# --- restarts: backoff and crash-loop ------------------------------------------------------------


def test_a_dead_worker_restarts_after_a_backoff_that_doubles():
    host = DummyHost(Settings(restart_backoff=0.5, restart_backoff_max=30.0, crash_loop_restarts=10))
    _, slot = running_slot(host)
    exits(host, slot, 1)
    assert slot.state is SlotState.BACKOFF
    assert slot.last_exit == "1 (crashed)"
    host.advance(0.4)
    slot.tick(host.now())
    assert slot.state is SlotState.BACKOFF  # not yet
    host.advance(0.2)
    slot.tick(host.now())
    assert slot.state is SlotState.STARTING and slot.restarts == 1
    exits(host, slot, 1)
    assert slot.restart_at == pytest.approx(host.now() + 1.0)  # doubled


def test_a_worker_that_stayed_up_long_enough_restarts_after_the_first_delay_again():
    host = DummyHost(Settings(restart_backoff=0.5, restart_backoff_max=4.0, crash_loop_restarts=10))
    _, slot = running_slot(host)
    for _ in range(3):
        exits(host, slot, 1)
        host.advance(10)
        slot.tick(host.now())
    assert slot.policy.delay == 2.0
    host.advance(4.0)  # up for the reset time (restart_backoff_max)
    exits(host, slot, 1)
    assert slot.restart_at == pytest.approx(host.now() + 0.5)


def test_the_nth_death_within_the_window_is_a_crash_loop_and_the_share_is_handed_on():
    host = DummyHost(Settings(crash_loop_restarts=3, crash_loop_window=60.0, restart_backoff=0.5))
    _, slot = running_slot(host)
    for _ in range(2):
        exits(host, slot, 1)
        host.advance(1.0)
        slot.tick(host.now())
        assert slot.state is SlotState.STARTING
    exits(host, slot, 1)
    assert slot.state is SlotState.CRASH_LOOP
    assert host.left == [slot.key]
    assert "died 3 times within 60 s; last exit" in slot.detail
    said = next(e.message for e in host.events if e.kind == "crash-loop")
    assert said == (f"Worker {slot.key} died 3 times within 60 s and is no longer restarted (last exit 1 (crashed)). "
                    "Fix the cause, then restart it by hand.")
    host.advance(3600)
    slot.tick(host.now())
    assert slot.state is SlotState.CRASH_LOOP  # waits for the operator
    slot.restart()
    assert slot.state is SlotState.STARTING and not slot.policy.deaths


# --- hangs ---------------------------------------------------------------------------------------


def test_silence_after_the_first_heartbeat_is_a_hang_and_the_worker_is_killed():
    host = DummyHost(Settings(hang_timeout=5.0))
    _, slot = running_slot(host)
    host.advance(4.9)
    slot.tick(host.now())
    assert process_of(slot).signals == []
    host.advance(0.2)
    slot.tick(host.now())
    assert process_of(slot).signals == ["SIGKILL"]
    slot.tick(host.now())
    assert process_of(slot).signals == ["SIGKILL"]  # once
    exits(host, slot, -9)
    assert slot.state is SlotState.BACKOFF
    assert slot.last_exit == "killed: hung, no heartbeat for 5 s"  # ours, not "likely OOM"


def test_a_new_worker_gets_the_startup_grace_for_its_first_heartbeat():
    host = DummyHost(Settings(hang_timeout=5.0))
    pool = new_pool(host)
    pool.converge()
    slot = pool.slots[0]
    host.advance(STARTUP_GRACE - 1)
    slot.tick(host.now())
    assert process_of(slot).signals == []
    host.advance(2)
    slot.tick(host.now())
    assert process_of(slot).signals == ["SIGKILL"]


def test_a_handler_held_too_long_is_a_hang():
    host = DummyHost(Settings(hang_timeout=5.0))
    _, slot = running_slot(host)
    slot.on_message(Heartbeat(connected=True, subscribed=True, in_flight=1, oldest_handler_age=6.0))
    slot.tick(host.now())
    assert process_of(slot).signals == ["SIGKILL"]
    assert slot.killed_for == "hung, a handler has run for 6 s"


# --- stopping --------------------------------------------------------------------------------------


def test_a_stop_that_outlives_the_graceful_timeout_ends_with_sigkill():
    host = DummyHost(Settings(graceful_timeout=10.0))
    _, slot = running_slot(host)
    slot.stop()
    assert slot.state is SlotState.STOPPING and process_of(slot).signals == ["SIGTERM"]
    host.advance(9.9)
    slot.tick(host.now())
    assert process_of(slot).signals == ["SIGTERM"]
    host.advance(0.2)
    slot.tick(host.now())
    assert process_of(slot).signals == ["SIGTERM", "SIGKILL"]
    exits(host, slot, -9)
    assert slot.state is SlotState.EXITED  # planned: no backoff
    assert "graceful timeout" in (slot.last_exit or "")


def test_a_stopped_slot_is_not_restarted():
    host = DummyHost()
    _, slot = running_slot(host)
    slot.stop()
    exits(host, slot, 0)
    host.advance(3600)
    slot.tick(host.now())
    assert slot.state is SlotState.EXITED and len(host.launched) == 1


def test_a_graceful_restart_starts_a_new_process_once_the_old_one_has_exited():
    host = DummyHost()
    _, slot = running_slot(host)
    old = process_of(slot)
    slot.restart()
    assert slot.state is SlotState.RESTARTING and old.signals == ["SIGTERM"]
    exits(host, slot, 0)
    assert slot.state is SlotState.STARTING and process_of(slot) is not old and slot.restarts == 1


def test_a_restart_interrupted_by_a_stop_stays_stopped():
    host = DummyHost()
    _, slot = running_slot(host)
    slot.restart()
    slot.stop()
    exits(host, slot, 0)
    assert slot.state is SlotState.EXITED and len(host.launched) == 1


# --- recycling -------------------------------------------------------------------------------------


def test_a_worker_over_its_memory_limit_is_recycled_gracefully():
    host = DummyHost(Settings(max_memory_mb=100))
    _, slot = running_slot(host)
    process_of(slot).usage = (5.0, 101 * 1024 * 1024)
    slot.sample(host.now())
    assert slot.state is SlotState.RESTARTING and process_of(slot).signals == ["SIGTERM"]
    assert "recycled" in host.kinds()
    exits(host, slot, 0)
    assert slot.state is SlotState.STARTING and slot.restarts == 1


def test_a_worker_past_its_message_limit_is_recycled():
    host = DummyHost(Settings(max_messages=100))
    _, slot = running_slot(host)
    slot.on_message(Heartbeat(connected=True, subscribed=True, handled=99, failed=0))
    slot.sample(host.now())
    assert slot.state is SlotState.RUNNING
    slot.on_message(Heartbeat(connected=True, subscribed=True, handled=99, failed=1))
    slot.sample(host.now())
    assert slot.state is SlotState.RESTARTING


# --- retiring and draining ---------------------------------------------------------------------------


def test_a_retired_worker_drains_ends_its_session_and_leaves_the_pool():
    host = DummyHost()
    pool, slot = running_slot(host)
    slot.retire()
    assert slot.state is SlotState.DRAINING and process_of(slot).commands == [Command.RETIRE]
    exits(host, slot, 0)
    assert slot.state is SlotState.RETIRED and host.ended == [slot.client_id]
    pool.prune()
    assert pool.slots == []


def test_a_draining_worker_that_dies_drains_again_after_its_backoff():
    host = DummyHost()
    _, slot = running_slot(host)
    slot.retire()
    exits(host, slot, -9)
    assert slot.state is SlotState.BACKOFF and host.ended == []
    host.advance(1)
    slot.tick(host.now())
    assert slot.state is SlotState.DRAINING  # the new process only drains


def test_a_leaving_slot_stopped_before_it_drained_keeps_its_session():
    host = DummyHost()
    _, slot = running_slot(host)
    slot.retire()
    slot.stop()
    exits(host, slot, 0)
    assert slot.state is SlotState.RETIRED
    assert host.ended == [] and slot.client_id in host.kept  # drained at the next start


def test_a_pool_grows_and_shrinks_to_its_desired_size_retiring_the_idlest():
    host = DummyHost()
    pool = new_pool(host, desired=3)
    pool.converge()
    assert [s.key for s in pool.slots] == ["jobs/{name}#0", "jobs/{name}#1", "jobs/{name}#2"]
    assert len({s.client_id for s in pool.slots}) == 3
    for slot in pool.slots[:2]:
        slot.on_message(Heartbeat(connected=True, subscribed=True, in_flight=3, last_message_at=None))
    pool.desired = 1
    pool.converge()
    # #2 never subscribed (still starting): it goes first, then the newer of the busy ones.
    assert [s.state for s in pool.slots] == [SlotState.RUNNING, SlotState.DRAINING, SlotState.DRAINING]
    assert pool.live == 1


def test_client_ids_are_stable_per_slot_index():
    host = DummyHost()
    first, second = new_pool(host, desired=2), new_pool(host, desired=2)
    first.converge()
    second.converge()
    assert [s.client_id for s in first.slots] == [s.client_id for s in second.slots]
    assert first.slots[0].client_id.startswith("routemq-host-group-jobs_name-")


# --- failures and illegal changes --------------------------------------------------------------------


def test_a_fatal_refusal_is_remembered_as_a_value_until_a_worker_connects():
    host = DummyHost()
    _, slot = running_slot(host)
    slot.on_message(Fatal(Failure.AUTH, "bad credentials: Not authorized"))
    exits(host, slot, 3)
    assert slot.last_exit == "3 (bad credentials): bad credentials: Not authorized"
    host.advance(1)
    slot.tick(host.now())
    assert slot.last_failure is not None and slot.last_failure.failure is Failure.AUTH
    slot.on_message(Heartbeat(connected=True, subscribed=True))
    assert slot.last_failure is None


def test_illegal_changes_raise():
    host = DummyHost()
    _, slot = running_slot(host)
    with pytest.raises(IllegalTransition, match="running -> starting"):
        slot.spawn()


# --- poison messages -----------------------------------------------------------------------------


def test_a_death_holding_messages_is_reported_with_them():
    host = DummyHost()
    _, slot = running_slot(host)
    held = InHand(message_key(b"jobs/a", b"{}"), 1)
    process_of(slot).in_hand = [held]
    exits(host, slot, -11)
    assert host.poisoned == [held]


def test_a_slot_whose_poison_message_is_set_aside_recovers_instead_of_crash_looping():
    host = DummyHost(Settings(crash_loop_restarts=3, restart_backoff=0.1), quarantine_after=3)
    _, slot = running_slot(host)
    held = InHand(message_key(b"jobs/a", b"boom"), 1)
    for _ in range(3):
        process_of(slot).in_hand = [held]
        exits(host, slot, 1)
        host.advance(10)
        slot.tick(host.now())
    assert slot.state is SlotState.STARTING  # the third death set the message aside: no crash-loop
    assert slot.restarts == 3
