"""Autoscaling: a bursty trace against an autoscaled pool (1-8 workers) and a static pool of 8.

The trace, the same for both pools, is three phases of paced QoS 1 messages (``bench/publisher.py
--rate``, one process per phase): quiet (5 msg/s for 15 s), a burst (150 msg/s for 30 s: three
workers' worth, well within eight's) and quiet again (5 msg/s for 60 s), long enough for the
autoscaled pool to shrink back. The handler, ``bench.handlers.io_bound``, sleeps 20 ms per
message (I/O-like: about 50 msg/s per worker, no CPU) and appends the message's id and publish
time (the publisher's ``time_ns``) and when its handling started to a file per worker process.

- **worker-seconds**: the integral, from the first publish to the end of the trace (or to the
  last message handled, if later), of the number of the pool's slots that have a process (``pid``
  not None in ``manager.snapshot()``, sampled every 0.25 s; draining workers count). Goal: the
  autoscaled pool uses at most 0.6 of the static pool's.
- **longest wait**: the largest (handling start - publish time) over every message. Goal: at
  most 2x the static pool's.
- **lost**: messages published (each publisher exits 0 only when the broker acknowledged all)
  minus distinct ids handled, after waiting up to DRAIN_DEADLINE s for the stragglers. Goal: 0.

Static pool: the route with ``worker_count=8`` and no autoscale. Autoscaled: ``autoscale=(1, 8)``,
``worker_count=1``. Every setting is the default (target 0.7, up window 3 s, ...) except
``autoscale_down_window=20`` (default 60), so that a trace of a few minutes shows the pool
shrinking back. Each pool gets its own private Mosquitto, manager and share group. A trace takes
close to two minutes a pool, so the full benchmark runs it once per pool (about 3.5 minutes);
``--quick`` runs a shorter trace (5 s, 10 s, 30 s).

Why the autoscaled pool's longest wait is far above the static pool's: the autoscaler is
reactive and starts from one worker (at most 50 msg/s). When the burst starts, the need must show
in the workers' busy fraction (measured over the last ~3 s of heartbeats), last the 3 s up window,
and new workers must start and subscribe; meanwhile the one worker falls behind by ~100 messages a
second. And Mosquitto assigns each QoS 1 message of a shared subscription to one session when it is
published, so that backlog stays in the first worker's session after the others join (which also
keeps getting its round-robin share of new messages). In the run of 2026-12-04 (2 cores, quiet
machine) the first scale-up (1 -> 2) came 7.2 s after the burst began, up to 918 messages waited in
the first worker's session at once, and its longest wait was 18.7 s (the other workers' at most
3.6 s; the static pool's 7 ms), while the pool used 0.37 of the static pool's worker-seconds.
"""

from __future__ import annotations

import bisect
import contextlib
import re
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find ``bench``

from bench import common, handlers
from engine.router import Router
from engine.worker_manager import WorkerManager

TOPIC = "bench/autoscale"
QOS = 1
HANDLE_SECONDS = 0.02  # per message: ~50 msg/s per worker
MAX_WORKERS = 8
DOWN_WINDOW = 20.0  # autoscale_down_window for the benchmark (default 60 s)
SAMPLE_INTERVAL = 0.25
DRAIN_DEADLINE = 90.0  # seconds after the trace for every message to be handled
GOAL_WORKER_SECONDS = 0.6
GOAL_WAIT = 2.0
KINDS = ("static", "autoscaled")


@dataclass(frozen=True)
class Phase:
    name: str
    rate: float  # messages per second
    seconds: float

    @property
    def count(self) -> int:
        return round(self.rate * self.seconds)


def trace(quick: bool) -> list[Phase]:
    if quick:
        return [Phase("quiet", 5, 5), Phase("burst", 150, 10), Phase("after", 5, 30)]
    return [Phase("quiet", 5, 15), Phase("burst", 150, 30), Phase("after", 5, 60)]


# ---------------------------------------------------------------------------------------------
# One run: a pool, the trace, the records
# ---------------------------------------------------------------------------------------------


class PoolSampler(threading.Thread):
    """Every SAMPLE_INTERVAL s: (wall time, slots with a process, desired size) of the route's pool."""

    def __init__(self, manager: WorkerManager) -> None:
        super().__init__(daemon=True)
        self.manager = manager
        self.samples: list[tuple[float, int, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            snapshot = self.manager.snapshot()
            alive = sum(1 for w in snapshot.workers if w.route == TOPIC and not w.is_main and w.pid is not None)
            desired = sum(r.desired_workers for r in snapshot.routes if r.topic == TOPIC)
            self.samples.append((time.time(), alive, desired))
            self.stopped.wait(SAMPLE_INTERVAL)

    def stop(self) -> None:
        self.stopped.set()
        self.join()


def router_for(kind: str) -> Router:
    router = Router()
    if kind == "autoscaled":
        router.on(TOPIC, handlers.io_bound, qos=QOS, shared=True, worker_count=1, autoscale=(1, MAX_WORKERS))
    else:
        router.on(TOPIC, handlers.io_bound, qos=QOS, shared=True, worker_count=MAX_WORKERS)
    return router


def read_records(out: Path) -> dict[int, list[tuple[str, int, int]]]:
    """Per worker pid: (id, publish ns, handling start ns) of every message it handled."""
    records: dict[int, list[tuple[str, int, int]]] = {}
    for path in out.iterdir():
        rows = records.setdefault(int(path.name), [])
        for line in path.read_text().splitlines():
            phase, sent, start, _ = line.split()
            rows.append((f"{phase}:{sent}", int(sent), int(start)))
    return records


def handled_ids(out: Path) -> int:
    return len({row[0] for rows in read_records(out).values() for row in rows})


def publish_trace(broker: Any, phases: list[Phase], out: Path, origin: float) -> list[dict[str, Any]]:
    """Each phase's publisher, one after the other; when each ran (seconds from ``origin``)."""
    ran = []
    for phase in phases:
        began = time.time()
        fields = {"ph": phase.name, "s": HANDLE_SECONDS, "out": str(out)}
        publisher = common.start_publisher(broker, TOPIC, phase.count, QOS, fields, rate=phase.rate)
        try:
            common.finish_publisher(publisher, timeout=phase.seconds + 60)
        finally:
            common.terminate(publisher)
        ran.append({"phase": phase.name, "from": began - origin, "to": time.time() - origin, "messages": phase.count})
    return ran


def one_run(kind: str, phases: list[Phase], workdir: Path) -> dict[str, Any]:
    """The trace against one pool of ``kind``; the raw measurements."""
    out = workdir / f"{kind}-{uuid.uuid4().hex[:8]}"
    out.mkdir()
    published = sum(p.count for p in phases)
    group = common.unique_group("autoscale")
    with (
        common.private_broker() as broker,
        common.running_manager(router_for(kind), broker, group, autoscale_down_window=DOWN_WINDOW) as manager,
    ):
        sampler = PoolSampler(manager)
        sampler.start()
        origin = time.time()
        try:
            ran = publish_trace(broker, phases, out, origin)
            trace_end = time.time()
            with contextlib.suppress(TimeoutError):  # what is still missing then is reported as lost
                common.wait_until(lambda: handled_ids(out) >= published, DRAIN_DEADLINE, "every message", 0.5)
        finally:
            sampler.stop()
        events = [
            {"at": e.time - origin, "message": e.message}
            for e in manager.events_since(0)
            if e.kind == "autoscale" and e.time >= origin
        ]
    return analyse(kind, published, read_records(out), sampler.samples, ran, origin, trace_end, events)


# ---------------------------------------------------------------------------------------------
# From records to figures
# ---------------------------------------------------------------------------------------------


def worker_seconds(samples: list[tuple[float, int, int]], start: float, end: float) -> float:
    """The integral of the live-slot count over [start, end], each sample holding until the next."""
    total = 0.0
    for (at, alive, _), (following, _, _) in zip(samples, [*samples[1:], (end, 0, 0)], strict=True):
        lo, hi = max(at, start), min(following, end)
        if hi > lo:
            total += alive * (hi - lo)
    return total


def peak_backlog(rows: list[tuple[str, int, int]]) -> int:
    """The most messages of one worker's session published but not yet being handled at once."""
    starts = sorted(start for _, _, start in rows)
    peak = 0
    for i, (_, sent, _) in enumerate(sorted(rows, key=lambda r: r[1])):
        # Published up to and including this one, minus those whose handling had started by then.
        peak = max(peak, i + 1 - bisect.bisect_right(starts, sent))
    return peak


def analyse(
    kind: str,
    published: int,
    records: dict[int, list[tuple[str, int, int]]],
    samples: list[tuple[float, int, int]],
    ran: list[dict[str, Any]],
    origin: float,
    trace_end: float,
    events: list[dict[str, Any]],
) -> dict[str, Any]:
    first: dict[str, tuple[int, int]] = {}  # id -> (publish, first handling start): a redelivery counts once
    for rows in records.values():
        for key, sent, start in rows:
            if key not in first or start < first[key][1]:
                first[key] = (sent, start)
    waits = sorted((start - sent) / 1e9 for sent, start in first.values())
    last_start = max((start for _, start in first.values()), default=0) / 1e9
    end = max(trace_end, last_start + HANDLE_SECONDS)
    burst_end = origin + next(r["to"] for r in ran if r["phase"] == "burst")
    back = next((at for at, alive, _ in samples if at > burst_end and alive == 1), None)
    workers = {
        pid: {
            "handled": len(rows),
            "longest_wait": max((start - sent) / 1e9 for _, sent, start in rows),
            "peak_backlog": peak_backlog(rows),
            "handled_after_burst": sum(1 for _, _, start in rows if start / 1e9 > burst_end),
        }
        for pid, rows in records.items()
        if rows
    }
    return {
        "kind": kind,
        "published": published,
        "handled": len(first),
        "lost": published - len(first),
        "redelivered": sum(len(rows) for rows in records.values()) - len(first),
        "worker_seconds": worker_seconds(samples, origin, end),
        "window": end - origin,
        "longest_wait": waits[-1] if waits else None,
        "p99_wait": waits[min(len(waits) - 1, int(0.99 * len(waits)))] if waits else None,
        "median_wait": waits[len(waits) // 2] if waits else None,
        "max_pool": max((alive for _, alive, _ in samples), default=0),
        "max_desired": max((desired for _, _, desired in samples), default=0),
        "back_to_one_after_burst": None if back is None else back - burst_end,
        "back_to_one_at": None if back is None else back - origin,
        "phases": ran,
        "workers": workers,
        "events": events,
        "pool_samples": [(round(at - origin, 2), alive, desired) for at, alive, desired in samples],
    }


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def explanation(run: dict[str, Any]) -> str:
    """The paragraph that says where the autoscaled pool's longest wait comes from, in numbers."""
    burst = next(r for r in run["phases"] if r["phase"] == "burst")
    ups = [e for e in run["events"] if e["at"] >= burst["from"] and _grew(e["message"])]
    first_up = f"{ups[0]['at'] - burst['from']:.1f} s" if ups else "never"
    worst_pid, worst = max(run["workers"].items(), key=lambda item: item[1]["longest_wait"])
    others = [w["longest_wait"] for pid, w in run["workers"].items() if pid != worst_pid]
    other = f"at most {max(others):.2f} s" if others else "none (there was no other worker)"
    return (
        "Why the autoscaled pool waits longer: it starts from 1 worker (about 50 msg/s) and scales reactively; "
        "the need must show in the workers' busy fraction, last the up window (3 s) and the new workers must "
        f"start, so the first scale-up came {first_up} after the burst began. Meanwhile Mosquitto assigns each "
        "QoS 1 message of a shared subscription to one session when it is published, so the backlog that built "
        f"up in one worker's session (at most {worst['peak_backlog']} messages waiting there at once) stayed "
        "with that worker after others joined, while it kept receiving its share of new messages: its longest "
        f"wait was {worst['longest_wait']:.2f} s, the other workers' {other}; "
        f"{worst['handled_after_burst']} of its messages were handled after the burst ended."
    )


def _grew(message: str) -> bool:
    """Whether an autoscale event's message says the pool grew (``autoscale <route> 1 -> 2: ...``)."""
    found = re.search(r" (\d+) -> (\d+): ", message)
    return found is not None and int(found[2]) > int(found[1])


def event_lines(run: dict[str, Any]) -> list[str]:
    marks = ", ".join(f"{r['phase']} {r['from']:.1f}-{r['to']:.1f} s" for r in run["phases"])
    lines = [f"trace: {marks} (seconds from the first publish)"]
    lines += [f"+{e['at']:.1f} s: {e['message']}" for e in run["events"]] or ["(no autoscale events)"]
    return lines


def _duration(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def back_note(auto: dict[str, Any], static: dict[str, Any]) -> str:
    """When the autoscaled pool was back to 1 worker, and the worker-seconds ratio up to then (the
    rest of the trace, at 1 worker against 8, only lowers the ratio)."""
    if auto["back_to_one_at"] is None:
        return "the autoscaled pool was not back to 1 worker by the end of the run"
    until = auto["back_to_one_at"]
    used = [worker_seconds(run["pool_samples"], 0.0, until) for run in (auto, static)]
    return (
        f"autoscaled pool back to 1 worker {auto['back_to_one_after_burst']:.1f} s after the burst ended "
        f"(+{until:.1f} s); worker-seconds up to then: {used[0]:.0f} autoscaled, {used[1]:.0f} static, "
        f"ratio {used[0] / used[1]:.2f}"
    )


def run(quick: bool) -> dict[str, Any]:
    phases = trace(quick)
    runs = 1  # a trace takes ~2 minutes per pool; one run per pool keeps the benchmark near 5 minutes
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="bench-autoscale-") as tmp:
        for _ in range(runs):
            for kind in KINDS:
                results[kind].append(one_run(kind, phases, Path(tmp)))

    def values(kind: str, key: str) -> list[float]:
        return [r[key] for r in results[kind]]

    static_label = f"static pool of {MAX_WORKERS}"
    figures = [
        common.figure(
            f"worker-seconds, autoscaled pool (1-{MAX_WORKERS})", "worker-s", values("autoscaled", "worker_seconds"),
            baseline=values("static", "worker_seconds"), baseline_label=static_label,
            goal=("ratio", "<=", GOAL_WORKER_SECONDS),
        ),
        common.figure(
            "longest wait (publish to handling start), autoscaled", "s", values("autoscaled", "longest_wait"),
            baseline=values("static", "longest_wait"), baseline_label=static_label, goal=("ratio", "<=", GOAL_WAIT),
        ),
        common.figure(
            "p99 wait, autoscaled", "s", values("autoscaled", "p99_wait"),
            baseline=values("static", "p99_wait"), baseline_label=static_label,
        ),
        common.figure(
            "messages lost, autoscaled", "messages", values("autoscaled", "lost"),
            baseline=values("static", "lost"), baseline_label=static_label, goal=("value", "<=", 0),
        ),
        common.figure(
            "largest pool reached, autoscaled", "workers", values("autoscaled", "max_pool"),
            baseline=values("static", "max_pool"), baseline_label=static_label,
        ),
    ]  # fmt: skip
    auto, static = results["autoscaled"][-1], results["static"][-1]
    shape = ", ".join(f"{p.name} {p.rate:g} msg/s for {p.seconds:g} s" for p in phases)
    notes = [
        f"trace (the same for both pools, QoS {QOS}): {shape}; {auto['published']} messages; handler: "
        f"sleep {HANDLE_SECONDS * 1000:g} ms (about {1 / HANDLE_SECONDS:.0f} msg/s per worker); {runs} run per pool",
        f"settings: defaults (target 0.7, tolerance 0.1, up window 3 s) except autoscale_down_window="
        f"{DOWN_WINDOW:g} s (default 60) so the pool shrinks back within the trace",
        f"worker-seconds over {auto['window']:.0f} s (autoscaled) and {static['window']:.0f} s (static): from the "
        "first publish to the end of the trace or the last message handled, whichever came later",
        back_note(auto, static),
        f"static pool: {static['lost']} lost; redelivered (handled twice): autoscaled {auto['redelivered']}, "
        f"static {static['redelivered']}; median wait: autoscaled {_duration(auto['median_wait'])}, "
        f"static {_duration(static['median_wait'])}",
    ]
    return common.report(
        "autoscale",
        f"Autoscaling (bursty trace: autoscaled 1-{MAX_WORKERS} workers vs a static pool of {MAX_WORKERS})",
        quick,
        figures,
        notes=notes,
        explanation=explanation(auto),
        details=[{"title": "What the autoscaler did (autoscaled run)", "items": event_lines(auto)}],
        runs=results,
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    result: dict[str, Any] = {}

    def keep(quick: bool) -> dict[str, Any]:
        result.update(run(quick))
        return result

    code = common.cli(__doc__ or "", keep, argv)
    if "--json" not in args and result:  # the human output: the explanation and the events too
        print(f"  {result['explanation']}")
        for detail in result["details"]:
            print(f"  {detail['title']}:")
            print("\n".join(f"    {item}" for item in detail["items"]))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
