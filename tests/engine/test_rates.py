"""Message rates are measured from one heartbeat to the next, so they do not flicker.

Heartbeats and samples both come once a second; a rate taken between samples would see the
counts of none or of two heartbeats in a window and swing between 0 and double.
"""

from __future__ import annotations

from engine.protocol import Heartbeat
from engine.supervisor.rates import MAX_CAUSES, OTHER_CAUSE, RATE_WINDOW_MIN, LineBudget, RateMeter, RouteTotals


def heartbeat(slot: RateMeter, at: float, handled: int, failed: int = 0, route: str = "jobs/{name}") -> None:
    slot.heartbeat(Heartbeat(handled=handled, failed=failed, by_route={route: (handled, failed)}), at)


def new_slot() -> RateMeter:
    return RateMeter()


def test_the_rate_is_the_count_between_two_heartbeats_over_the_time_between_them():
    slot = new_slot()
    heartbeat(slot, 10.0, handled=100)
    assert slot.rate == 0.0  # one heartbeat is not a window
    heartbeat(slot, 11.0, handled=120, failed=5)
    assert slot.rate == 25.0
    assert slot.route_rates == {"jobs/{name}": 25.0}


def test_an_early_heartbeat_does_not_close_a_window():
    slot = new_slot()
    heartbeat(slot, 10.0, handled=0)
    heartbeat(slot, 11.0, handled=10)
    early = 11.0 + RATE_WINDOW_MIN / 4  # sent at once on an event (subscribed, say)
    heartbeat(slot, early, handled=11)
    assert slot.rate == 10.0  # not 1 message over a quarter of a window
    heartbeat(slot, 12.0, handled=30)
    assert slot.rate == 20.0  # the window runs from the last full heartbeat


def test_steady_traffic_gives_a_steady_rate_whatever_the_phase_of_the_heartbeats():
    slot = new_slot()
    rates = []
    # 50 msg/s; heartbeats arrive about once a second with some jitter either way.
    times = [0.0, 1.02, 1.97, 3.05, 3.98, 5.01, 6.03, 6.97]
    for at in times:
        heartbeat(slot, at, handled=round(50 * at))
        rates.append(slot.rate)
    assert all(45 <= rate <= 55 for rate in rates[1:]), rates  # counts are whole: not exactly 50


def test_the_line_budget_lets_a_burst_through_then_its_rate_and_counts_the_rest():
    budget = LineBudget(rate=10.0, burst=100.0)
    assert budget.take(150, now=0.0) == 100 and budget.dropped == 50
    assert budget.take(50, now=1.0) == 10 and budget.dropped == 90
    assert budget.take(5, now=100.0) == 5, "refilled, never above the burst"
    assert budget.take(1000, now=100.0) == 95


def test_failure_causes_only_go_up_and_past_the_cap_count_as_other():
    totals = RouteTotals()
    for n in range(MAX_CAUSES + 5):
        totals.add_cause("r", f"Error{n}", 2)
    totals.add_cause("r", "Error0", 1)
    causes = totals.causes("r")
    assert len(causes) == MAX_CAUSES + 1 and causes[OTHER_CAUSE] == 10 and causes["Error0"] == 3
    assert totals.causes("elsewhere") == {}
