"""A dying worker's last words reach the operator: what its handler logged, printed or wrote to
its descriptors just before ``os._exit()``, and the traceback of a segfault."""

from __future__ import annotations

import pytest

from engine import Router
from tests.e2e import hostile_handlers
from tests.support import Publisher, all_running, wait_until

pytestmark = pytest.mark.e2e


def _lines(manager, slot: str) -> list[str]:
    return [e.message for e in manager.events_since(0) if e.slot == slot and e.kind == "log"]


def _one_message_to(handler, pattern: str, broker, group_name, start, tag: str):
    """A pool of one worker for ``handler``, sent one message; the manager and the slot."""
    router = Router()
    router.on(pattern, handler, qos=1, shared=True)
    # It dies on purpose, once: set the message aside at the first death instead of looping.
    manager = start(router, broker, group_name, poison_deaths=1)
    wait_until(lambda: all_running(manager), what="the worker running")
    with Publisher(broker) as publisher:
        publisher.publish(pattern.replace("+", "x"), {"tag": tag})
    return manager, f"{pattern}#0"


def _exits(manager, slot: str) -> list[str]:
    return wait_until(lambda: [e.message for e in manager.events_since(0) if e.slot == slot and e.kind == "exited"],
                      what="the worker's exit")


def test_what_a_handler_said_before_os_exit_is_in_its_slots_log(broker, group_name, start):
    manager, slot = _one_message_to(hostile_handlers.last_words, "dying/+", broker, group_name, start, "T1")
    wanted = ["logged T1", "printed T1", "wrote T1 to fd 2", "wrote T1 to fd 1"]
    wait_until(lambda: all(any(w in line for line in _lines(manager, slot)) for w in wanted),
               timeout=30, what=f"the last words {wanted} in {_lines(manager, slot)}")
    assert "1 (crashed)" in _exits(manager, slot)[0]


def test_a_segfault_leaves_its_traceback_in_the_log_and_the_exit_cause(broker, group_name, start):
    manager, slot = _one_message_to(hostile_handlers.segfault, "faulting/+", broker, group_name, start, "T2")
    wait_until(lambda: any("Segmentation fault" in line for line in _lines(manager, slot)), timeout=30,
               what=f"faulthandler's report in {_lines(manager, slot)}")
    lines = _lines(manager, slot)
    assert any("about to crash T2" in line for line in lines)
    assert any("segfault" in line and "hostile_handlers.py" in line for line in lines), lines
    assert "SIGSEGV" in _exits(manager, slot)[0]


def test_the_worker_screen_keeps_the_last_words_and_the_route_counts_the_death_as_a_failure(
    broker, group_name, start
):
    manager, slot = _one_message_to(hostile_handlers.segfault, "faulting2/+", broker, group_name, start, "T3")
    wait_until(lambda: manager.snapshot().workers[0].restarts >= 1, timeout=30, what="the worker restarted")
    detail = manager.worker_detail(slot)
    assert detail is not None
    # Its log outlives the process that wrote it: the new worker's screen shows the old one's words.
    assert any("about to crash T3" in e.message for e in detail.logs)
    assert [e.kind for e in detail.lifecycle if e.kind in ("exited", "restarted")][:2] == ["exited", "restarted"]
    route = manager.route_detail("faulting2/+")
    assert route is not None and route.info.failed >= 1
    group = next(g for g in route.failures if g.exception.startswith("worker died"))
    assert "SIGSEGV" in group.exception and group.latest.topic == "faulting2/x" and group.latest.slot == slot
    assert b"T3" in group.latest.payload and "Segmentation fault" in group.latest.traceback


def test_a_flood_of_output_is_cut_to_the_budget_and_says_so(broker, group_name, start):
    router = Router()
    router.on("chatty/+", hostile_handlers.output_flood, qos=1, shared=True)
    manager = start(router, broker, group_name)
    slot = "chatty/+#0"
    with Publisher(broker) as publisher:
        publisher.publish("chatty/x", {"lines": 20_000})
        wait_until(lambda: manager.snapshot().routes[0].handled == 1, what="the flood written")
        # A later message shows the worker still serves, and brings the output budget's report.
        publisher.publish("chatty/x", {"lines": 1})
    def accounted() -> bool:
        lines = _lines(manager, slot)
        dropped = sum(int(m.split()[0]) for m in lines if "lines of output dropped" in m)
        return dropped > 0 and dropped + sum(1 for m in lines if m.startswith("flood line")) == 20_001

    # Reported at most once a second while the flood lasts, and at its end: every line shown or counted.
    wait_until(accounted, what="every line of the flood shown or counted as dropped")
    assert any("written faster than 200 lines/s" in m for m in _lines(manager, slot))
    assert manager.snapshot().workers[0].restarts == 0
