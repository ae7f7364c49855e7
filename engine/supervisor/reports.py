"""Reports: what workers tell the manager beyond their state, filed where it is kept.

Log lines and descriptor output go to the event stream (and so to each slot's journal); counts
to the route totals; handler times and failures to the route histories, with a ``failure``
event each; deaths with messages in hand to the failures and the poison ledger; dead letters to
both. Nothing here decides a slot's state: the arbiter, as every slot's host, hands these over.
"""

from __future__ import annotations

import logging
import time

from ..details import FailureExample
from ..in_hand import InHand
from ..protocol import DeadLettered, Heartbeat, LogLine, describe_exit
from ..router import Router
from .event_log import EventLog
from .poison import PoisonLedger
from .pool import Pool
from .rates import RouteTotals
from .route_history import RouteHistories, example_of
from .slot import Slot

LAST_WORDS_SHOWN = 200  # lines of a dead worker's final output shown whatever its output budget


class Reports:
    def __init__(self, events: EventLog, router: Router, poison_deaths: int) -> None:
        self.events = events
        self.router = router  # replaced on reload
        self.totals = RouteTotals()
        self.histories = RouteHistories()
        self.poison = PoisonLedger(poison_deaths)

    def log_lines(self, slot: Slot, lines: tuple[LogLine, ...], dropped: int) -> None:
        for line in lines:
            self.events.emit("log", line.message, slot.key, line.level, logger=line.logger)
        if dropped:
            self.events.emit("log", f"{dropped} log lines dropped (worker logging too fast)", slot.key, logging.WARNING)

    def output_lines(self, slot: Slot, lines: list[str], now: float, last_words: bool = False) -> None:
        """What a worker wrote to its descriptors (C code, faulthandler, a dying interpreter),
        within its slot's line budget; a dead worker's ``last_words`` always show (their end)."""
        budget = slot.output_budget
        if last_words:
            kept = lines[-LAST_WORDS_SHOWN:]
            budget.dropped += len(lines) - len(kept)
        else:
            kept = lines[: budget.take(len(lines), now)]
        # Reported once the flood has passed, at its end, or once a second while it lasts.
        due = budget.reported_at is None or now - budget.reported_at >= 1.0
        if budget.dropped and (last_words or len(kept) == len(lines) or due):
            budget.reported_at = now
            self.events.emit("log", f"{budget.dropped} lines of output dropped (written faster than "
                             f"{budget.rate:g} lines/s)", slot.key, logging.WARNING)
            budget.dropped = 0
        for line in kept:
            self.events.emit("log", line, slot.key, logging.WARNING, logger="routemq.worker.output")

    def counted(self, pool: Pool, slot: Slot, before: Heartbeat | None, after: Heartbeat, now: float) -> None:
        """A heartbeat's counts, times and failures; ``now`` is the supervisor's clock (monotonic)."""
        self.totals.add(before, after)
        if after.timings or after.failures:
            self._timed_and_failed(pool, slot, after, now)

    def _timed_and_failed(self, pool: Pool, slot: Slot, beat: Heartbeat, now: float) -> None:
        """Handler times and failures, for the routes the slot's pool serves only: a worker
        naming other routes is not believed (nor kept in memory)."""
        served = {pool.route.topic} if pool.route is not None else {r.topic for r in self.router.unshared_routes}
        for times in beat.timings:
            if times.route in served:
                self.histories.of(times.route).add_times(times, now)
        received = time.time()  # shown as the example's time: ours, not what the worker says
        for failure in beat.failures:
            if failure.route not in served:
                continue
            self.totals.add_cause(failure.route, failure.exception, failure.count)
            example = example_of(failure, slot.key, received)
            self.histories.of(failure.route).failed(failure.exception, failure.count, example)
            more = f" ({failure.count - 1} more like it since the last report)" if failure.count > 1 else ""
            self.events.emit(
                "failure",
                f"handler {failure.handler} failed on topic {failure.topic[:200]!r}: {failure.exception}: "
                f"{failure.message}{more}\n{failure.traceback}",
                slot.key, logging.ERROR, exception=failure.exception, topic=failure.topic,
            )

    def died_holding(self, pool: Pool, slot: Slot, in_hand: list[InHand]) -> bool:
        """A worker died with handlers running: each such message counts as a failure of its
        route, and one that has now killed the slot's worker often enough is set aside."""
        cause = "worker killed by the supervisor" if slot.killed_for else f"worker died: {describe_exit(slot.exitcode)}"
        for hand in in_hand:
            found = self.router.match(hand.topic)
            route = found[0].topic if found is not None else (pool.route.topic if pool.route else None)
            if route is not None:
                self.totals.add_failure(route)
                self.totals.add_cause(route, cause, 1)
                example = FailureExample(time.time(), slot.key, hand.topic, hand.payload, hand.key.payload_length,
                                         slot.last_words or "(the worker wrote nothing before it died)")
                self.histories.of(route).failed(cause, 1, example)
        quarantined = self.poison.died_holding(slot.key, in_hand, slot.last_exit or "?")
        for _, suspect in quarantined:
            self.events.emit(
                "poison",
                f"a message on {suspect.topic!r} killed worker {slot.key} {suspect.deaths} times "
                f"(last exit {suspect.last_exit}): it is set aside to the dead-letter topic when it comes back",
                slot.key,
                logging.ERROR,
            )
        return bool(quarantined)

    def dead_lettered(self, slot: Slot, letters: tuple[DeadLettered, ...]) -> None:
        for letter in letters:
            self.poison.set_aside(slot.key, letter.key)
            self.totals.add_dead_letter(letter.route)
            topic = letter.key.topic.decode(errors="replace")
            self.events.emit("dead-letter", f"worker {slot.key} set aside a message on {topic!r} to the dead-letter "
                             "topic", slot.key, logging.WARNING)
