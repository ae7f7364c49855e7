"""The states of a worker slot and the changes between them (standard library only).

A slot is one place in a route's pool (``sensors/+/temperature#0``); processes come and go in it.
Its state says what the slot is doing with its process; its :class:`Goal` says whether the slot
is meant to stay in its pool or to leave it. Together they cover every real situation, so the
supervisor keeps no other flags. Any change not in :data:`LEGAL_TRANSITIONS` is a bug and raises.

::

    stopped -> starting -> running --stop--> stopping --exit--> exited (or retired when leaving)
                  |           |--restart--> restarting --exit--> starting (a new process)
                  |           |--retire--> draining --clean exit--> retired (gone from the pool)
                  '-----------'--dies--> backoff --delay--> starting ...
                                           '--too often--> crash-loop (waits for the operator)
"""

from __future__ import annotations

from enum import StrEnum


class SlotState(StrEnum):
    STOPPED = "stopped"  # never started
    STARTING = "starting"  # process spawned, not yet subscribed
    RUNNING = "running"  # subscribed and sending heartbeats
    BACKOFF = "backoff"  # died; restarts when its delay has passed
    STOPPING = "stopping"  # SIGTERM sent: finishing what it holds, keeping its session
    RESTARTING = "restarting"  # as stopping, and a new process takes over when it has exited
    DRAINING = "draining"  # leaving its pool: unsubscribed, finishing what the broker still sends
    EXITED = "exited"  # stopped by request
    CRASH_LOOP = "crash-loop"  # died too often; restarted only by the operator
    RETIRED = "retired"  # left its pool; the slot is gone

    def __str__(self) -> str:
        return self.value

    @property
    def is_live(self) -> bool:
        """A process is (or should be) alive in this state."""
        return self in _LIVE

    @property
    def is_dead(self) -> bool:
        """The slot wants a process and has none."""
        return self in (SlotState.BACKOFF, SlotState.CRASH_LOOP)

    @property
    def is_serving(self) -> bool:
        """The slot's process counts towards its pool's size."""
        return self in (SlotState.STARTING, SlotState.RUNNING)


_LIVE = frozenset(
    {SlotState.STARTING, SlotState.RUNNING, SlotState.STOPPING, SlotState.RESTARTING, SlotState.DRAINING}
)


class Goal(StrEnum):
    """What a slot is for: serving its route, or leaving its pool without losing its session's messages."""

    SERVE = "serve"
    RETIRE = "retire"


S = SlotState

LEGAL_TRANSITIONS: dict[SlotState, frozenset[SlotState]] = {
    S.STOPPED: frozenset({S.STARTING, S.DRAINING}),
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.RESTARTING, S.DRAINING, S.BACKOFF, S.CRASH_LOOP}),
    S.RUNNING: frozenset({S.STOPPING, S.RESTARTING, S.DRAINING, S.BACKOFF, S.CRASH_LOOP}),
    # Whatever made the supervisor stop a process, its exit is planned: never a backoff.
    S.STOPPING: frozenset({S.EXITED, S.RETIRED}),
    S.RESTARTING: frozenset({S.STARTING, S.STOPPING, S.EXITED}),
    S.DRAINING: frozenset({S.RETIRED, S.STOPPING, S.BACKOFF, S.CRASH_LOOP}),
    S.BACKOFF: frozenset({S.STARTING, S.DRAINING, S.EXITED, S.RETIRED}),
    S.CRASH_LOOP: frozenset({S.STARTING, S.DRAINING, S.EXITED, S.RETIRED}),
    S.EXITED: frozenset({S.STARTING, S.DRAINING, S.RETIRED}),
    S.RETIRED: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


def check_transition(slot: str, old: SlotState, new: SlotState) -> None:
    if new not in LEGAL_TRANSITIONS[old]:
        raise IllegalTransition(f"slot {slot}: illegal state change {old} -> {new}")
