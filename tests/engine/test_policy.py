"""Supervision policy: apportioning workers, backoff, crash loops, who retires first."""

from __future__ import annotations

import pytest

from engine.policy import RestartPolicy, RetireCandidate, apportion, choose_retirees
from engine.snapshot import IllegalTransition, SlotState, check_transition, describe_exit


def test_apportion_follows_weights_with_largest_remainder():
    assert apportion(4, [2, 1]) == [3, 1]  # exact 2.67 / 1.33: the larger remainder gets the spare
    assert apportion(3, [2, 1]) == [2, 1]
    assert apportion(5, [1, 1, 1]) == [2, 2, 1]  # ties go to the earlier route
    assert apportion(0, [3, 1]) == [0, 0]
    assert sum(apportion(97, [5, 3, 2, 7])) == 97
    with pytest.raises(ValueError):
        apportion(-1, [1])


def test_backoff_doubles_caps_and_resets_after_a_long_uptime():
    policy = RestartPolicy(first_delay=0.5, max_delay=4, reset_after=30, crash_loop_restarts=100, window=60)
    delays = [policy.on_death(now=float(i), uptime=1.0) for i in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.on_death(now=10.0, uptime=31.0) == 0.5


def test_fifth_death_within_the_window_is_a_crash_loop():
    policy = RestartPolicy(crash_loop_restarts=5, window=60)
    assert all(policy.on_death(now=float(t), uptime=1.0) is not None for t in range(4))
    assert policy.on_death(now=4.0, uptime=1.0) is None


def test_deaths_outside_the_window_do_not_count():
    policy = RestartPolicy(crash_loop_restarts=3, window=10)
    assert policy.on_death(now=0.0, uptime=1.0) is not None
    assert policy.on_death(now=5.0, uptime=1.0) is not None
    assert policy.on_death(now=20.0, uptime=1.0) is not None  # the first two are older than 10 s
    policy.reset()
    assert policy.deaths == type(policy.deaths)() and policy.delay == 0.0


def test_retirees_are_the_slots_that_serve_least():
    candidates = [
        RetireCandidate("r#0", 0, SlotState.RUNNING, in_flight=0, last_message_age=1.0),
        RetireCandidate("r#1", 1, SlotState.RUNNING, in_flight=3, last_message_age=0.1),
        RetireCandidate("r#2", 2, SlotState.BACKOFF),
        RetireCandidate("r#3", 3, SlotState.RUNNING, in_flight=0, last_message_age=9.0),
        RetireCandidate("r#4", 4, SlotState.CRASH_LOOP),
    ]
    assert choose_retirees(candidates, 1) == ["r#4"]
    assert choose_retirees(candidates, 3) == ["r#4", "r#2", "r#3"]  # then the idle one, idle longest
    assert choose_retirees(candidates, 4)[-1] == "r#0"


def test_illegal_state_changes_raise():
    check_transition("s", SlotState.RUNNING, SlotState.STOPPING)
    with pytest.raises(IllegalTransition, match="exited -> running"):
        check_transition("s", SlotState.EXITED, SlotState.RUNNING)


def test_exit_codes_are_described_for_operators():
    assert describe_exit(-9) == "SIGKILL (likely OOM or killed)"
    assert describe_exit(-15) == "SIGTERM"
    assert describe_exit(0) == "0"
    assert describe_exit(3) == "3 (bad credentials)"
    assert describe_exit(None) is None
