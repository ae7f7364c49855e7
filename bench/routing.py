"""Routing benchmark: does dispatch cost stay flat as the number of routes grows?

Run ``python bench/routing.py`` (add ``--json`` for machine-readable output, ``--quick`` for a
short run). For routers of 1, 100, 1 000 and 10 000 routes (a mix of literals, ``{param}``,
``+`` and ``#``, plus a few broad wildcard routes that force the trie to consider alternatives)
it measures, as the median of several repeats, the mean time of:

- ``dispatch``: ``await router.dispatch(topic, payload, client)`` with a trivial sync handler and
  no middleware, always the same probe topic so every size does the same work;
- ``dispatch_mixed``: the same, cycling over topics that hit routes all over the router;
- ``lookup``: the bare trie lookup of the probe topic;
- ``baseline``: awaiting a trivial coroutine that calls the handler in the same loop, i.e. what a
  dispatch costs when routing were free. ``overhead = dispatch - baseline``.

Every loop runs inside one coroutine, so ``asyncio.run`` is paid once per measurement, not per
call. Goal (from the issue): dispatch(10 000 routes) / dispatch(1 route) < 1.2 and overhead < 3 µs.

``dispatch_mixed`` grows at 10 000 routes although the work per topic does not: cycling over
10 000 distinct topics through a 50 000-node trie no longer fits the CPU caches. Cycling over 100
topics of the 10 000-route router costs what the 100-route router costs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.router import Router  # after making the repository importable

SIZES = (1, 100, 1_000, 10_000)
PROBE_PATTERN = "app/0/devices/{device_id}/status"
PROBE_TOPIC = "app/0/devices/dev-42/status"
RATIO_GOAL = 1.2
OVERHEAD_GOAL_US = 3.0

# Route kinds and a topic that each one matches; ``{i}`` makes every route distinct.
KINDS: tuple[tuple[str, str], ...] = (
    ("app/{i}/config/get", "app/{i}/config/get"),  # literal
    ("app/{i}/devices/{{device_id}}/status", "app/{i}/devices/dev-7/status"),  # one parameter
    ("app/{i}/sensors/+/temperature", "app/{i}/sensors/s-3/temperature"),  # plus
    ("fleet/{i}/{{vehicle}}/{{metric}}", "fleet/{i}/truck-9/speed"),  # two parameters
    ("app/{i}/logs/#", "app/{i}/logs/error/disk"),  # hash
)
# Broad routes present in every router but the smallest: they match the probe topic too, so the
# trie has to prefer the more specific probe route over them.
BROAD = ("app/+/devices/{device_id}/status", "app/#", "+/health", "fleet/#")


def handler(**_: object) -> None:
    """The trivial sync handler every route uses."""
    return None


def build_router(size: int) -> tuple[Router, list[str]]:
    """A router with exactly ``size`` routes and topics that hit routes all over it."""
    router = Router()
    router.on(PROBE_PATTERN, handler)
    topics = [PROBE_TOPIC]
    if size > 1:
        for pattern in BROAD[: max(0, min(len(BROAD), size - 1))]:
            router.on(pattern, handler)
    i = 1
    while len(router.routes) < size:
        pattern, topic = KINDS[i % len(KINDS)]
        router.on(pattern.format(i=i), handler)
        topics.append(topic.format(i=i))
        i += 1
    assert len(router.routes) == size, (len(router.routes), size)
    random.Random(size).shuffle(topics)
    return router, topics


async def _time_dispatch(router: Router, topics: list[str], calls: int) -> float:
    dispatch = router.dispatch
    count = len(topics)
    start = time.perf_counter()
    for n in range(calls):
        await dispatch(topics[n % count], b"{}", None)
    return (time.perf_counter() - start) / calls


async def _time_baseline(topics: list[str], calls: int) -> float:
    async def no_routing(topic: str, payload: bytes, client: object) -> None:
        return handler(payload=payload, client=client)

    count = len(topics)
    start = time.perf_counter()
    for n in range(calls):
        await no_routing(topics[n % count], b"{}", None)
    return (time.perf_counter() - start) / calls


def _time_lookup(router: Router, topic: str, calls: int) -> float:
    lookup = router._trie.lookup  # the bare trie, without parameter capture or the handler call
    start = time.perf_counter()
    for _ in range(calls):
        lookup(topic)
    return (time.perf_counter() - start) / calls


def run(repeats: int, calls: int) -> dict[str, object]:
    routers = {size: build_router(size) for size in SIZES}
    for size, (router, _) in routers.items():
        assert asyncio.run(router.dispatch(PROBE_TOPIC, b"{}", None)) is None
        found = router.match(PROBE_TOPIC)
        assert found is not None and found[0].topic == PROBE_PATTERN, size
    samples: dict[int, dict[str, list[float]]] = {
        size: {"dispatch": [], "mixed": [], "lookup": [], "baseline": []} for size in SIZES
    }
    # Repeats are interleaved across sizes so that drift in the machine's speed hits every size
    # alike, and the collector is off while timing (as timeit does): a full collection walking
    # the 10 000-route router would otherwise land in one size's numbers at random.
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            for size, (router, topics) in routers.items():
                sample = samples[size]
                sample["dispatch"].append(asyncio.run(_time_dispatch(router, [PROBE_TOPIC], calls)))
                sample["mixed"].append(asyncio.run(_time_dispatch(router, topics, calls)))
                sample["baseline"].append(asyncio.run(_time_baseline([PROBE_TOPIC], calls)))
                sample["lookup"].append(_time_lookup(router, PROBE_TOPIC, calls))
    finally:
        if gc_was_enabled:
            gc.enable()
    results: dict[str, dict[str, float]] = {}
    for size in SIZES:
        median = {name: statistics.median(values) * 1e6 for name, values in samples[size].items()}
        results[str(size)] = {
            "routes": size,
            "dispatch_us": median["dispatch"],
            "dispatch_mixed_us": median["mixed"],
            "lookup_us": median["lookup"],
            "baseline_us": median["baseline"],
            "overhead_us": median["dispatch"] - median["baseline"],
        }
    first, last = results[str(SIZES[0])], results[str(SIZES[-1])]
    ratio = last["dispatch_us"] / first["dispatch_us"]
    lookup_ratio = last["lookup_us"] / first["lookup_us"]
    worst_overhead = max(r["overhead_us"] for r in results.values())
    return {
        "benchmark": "routing",
        "python": sys.version.split()[0],
        "repeats": repeats,
        "calls_per_repeat": calls,
        "sizes": results,
        "ratio_dispatch_10000_to_1": ratio,
        "ratio_lookup_10000_to_1": lookup_ratio,
        "max_overhead_us": worst_overhead,
        "goal": {"ratio_below": RATIO_GOAL, "overhead_below_us": OVERHEAD_GOAL_US},
        "goal_met": ratio < RATIO_GOAL and worst_overhead < OVERHEAD_GOAL_US,
    }


def print_table(report: dict[str, object]) -> None:
    sizes: dict[str, dict[str, float]] = report["sizes"]  # type: ignore[assignment]
    print(f"routing benchmark (python {report['python']}, median of {report['repeats']} x "
          f"{report['calls_per_repeat']} calls)")
    header = (
        f"{'routes':>8} {'dispatch µs':>12} {'mixed µs':>10} {'lookup µs':>10} "
        f"{'baseline µs':>12} {'overhead µs':>12}"
    )
    print(header)
    print("-" * len(header))
    for row in sizes.values():
        print(
            f"{row['routes']:>8,} {row['dispatch_us']:>12.3f} {row['dispatch_mixed_us']:>10.3f} "
            f"{row['lookup_us']:>10.3f} {row['baseline_us']:>12.3f} {row['overhead_us']:>12.3f}"
        )
    print()
    print(f"dispatch 10 000 : 1 = {report['ratio_dispatch_10000_to_1']:.3f}   (goal < {RATIO_GOAL})")
    print(f"lookup   10 000 : 1 = {report['ratio_lookup_10000_to_1']:.3f}")
    print(f"worst dispatch overhead = {report['max_overhead_us']:.3f} µs   (goal < {OVERHEAD_GOAL_US} µs)")
    print("goal met" if report["goal_met"] else "GOAL MISSED")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats (a smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per measurement (median taken)")
    parser.add_argument("--calls", type=int, default=None, help="calls per repeat")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 15)
    calls = args.calls or (2_000 if args.quick else 20_000)
    report = run(repeats, calls)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
