"""A snapshot as JSON and back (what a fleet status carries), and what a hostile one gets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.fleet.snapshot_json import MAX_STRING, from_json, to_json
from engine.snapshot import BrokerInfo, ManagerSnapshot, RouteInfo, SlotState, WorkerInfo

SNAPSHOT = ManagerSnapshot(
    group="g",
    broker=BrokerInfo("mqtt:1883", "connected", "", "external"),
    workers=(
        WorkerInfo("a/+#0", "a/+", 0, "routemq-edge-a-g-a-0", SlotState.RUNNING, pid=41, connected=True,
                   cpu_percent=12.5, rss_bytes=48 << 20, received=10, handled=9, failed=1, busy=0.5,
                   heartbeat_age=0.4, last_exit="SIGKILL (likely OOM or killed)", uptime=61.0),
        WorkerInfo("main", "(non-shared routes)", 0, "routemq-edge-a-g-main", SlotState.CRASH_LOOP, is_main=True,
                   detail="died 5 times within 60 s"),
    ),
    routes=(RouteInfo("a/+", "a/+", 1, True, 2, 1, 12.5, 900, 3, handler_p99=0.012, serving_workers=1,
                      autoscale_min=1, autoscale_max=4),),
    uptime=61.0, started=True, messages_per_second=12.5, handled=900, failed=3, taken_at=1234.5,
)


def through_the_wire(data: Any) -> Any:
    return json.loads(json.dumps(data))


def test_a_snapshot_goes_through_json_unchanged_with_states_as_strings():
    data = through_the_wire(to_json(SNAPSHOT))
    assert data["workers"][1]["state"] == "crash-loop" and "taken_at" not in data
    assert from_json(data) == SNAPSHOT  # taken_at does not take part in equality


def test_fields_it_does_not_know_are_ignored_and_missing_optional_ones_default():
    data = through_the_wire(to_json(SNAPSHOT))
    data["from_a_newer_manager"] = {"x": 1}
    data["workers"][0]["gpu_percent"] = 3
    del data["workers"][0]["busy"]
    assert from_json(data).workers[0].busy is None


def edit(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = through_the_wire(to_json(SNAPSHOT))
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


HOSTILE = {
    "not an object": (("workers",), "nope"),
    "a worker not an object": (("workers", 0), [1, 2]),
    "an unknown state": (("workers", 0, "state"), "zombie"),
    "a pid as text": (("workers", 0, "pid"), "41"),
    "a count as a bool": (("workers", 0, "handled"), True),
    "an astronomical count": (("workers", 0, "handled"), 10**400),
    "a NaN rate": (("workers", 0, "messages_per_second"), float("nan")),
    "an infinite age": (("workers", 0, "heartbeat_age"), float("inf")),
    "a null slot": (("workers", 0, "slot"), None),
    "a missing slot": (("workers", 0, "slot"), KeyError),
    "a broker as text": (("broker",), "up"),
    "routes an object": (("routes",), {"a": 1}),
    "a shared flag as 1": (("routes", 0, "shared"), 1),
}


@pytest.mark.parametrize(("path", "value"), HOSTILE.values(), ids=list(HOSTILE))
def test_a_hostile_snapshot_is_refused_naming_the_field(path, value):
    data = edit(path, value)
    with pytest.raises(ValueError, match=r"^snapshot"):
        from_json(data)


def test_long_texts_are_cut_and_too_many_workers_refused():
    data = edit(("workers", 0, "detail"), "x" * (MAX_STRING * 5))
    assert len(from_json(data).workers[0].detail) == MAX_STRING
    data = through_the_wire(to_json(SNAPSHOT))
    data["workers"] = data["workers"] * 5000
    with pytest.raises(ValueError, match=r"snapshot\.workers: not a list of at most"):
        from_json(data)
    with pytest.raises(ValueError, match="snapshot: not an object"):
        from_json([])
