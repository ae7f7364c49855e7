"""What one dashboard refresh costs, in-process, with 64 workers that change like real ones.

Run as a script (``python -m tests.tui.render_harness [--refreshes N] [--profile]``) to print,
per refresh, in CPU time of the event loop's thread: reconciling (``refresh_dashboard()``) and
the frame that follows (painting the changed lines: the widgets' ``render_lines`` and the
compositor); then the Rich renders (``Console.render_lines`` calls), the layouts asked for
(``refresh(layout=True)`` calls) and the widgets painted. With ``--live SECONDS`` it runs the 1 s
refresh timer instead and prints the process's CPU use. The test suite uses :func:`measure` to
hold a refresh to no layout and no Rich render.

Only public API is instrumented (Rich's ``Console.render_lines``, Textual's ``Widget.render_lines``
and ``Widget.refresh``), so this works across Textual versions. It does not make the terminal's
output (a headless app skips that): bench/dashboard.py measures the real command in a terminal.

The snapshots come from :class:`LiveManager`: a 64-worker pool (one shared route, as in
``bench/dashboard.py``) plus the main worker, where every second each worker's CPU, rate,
counters, last-message age and uptime move, as they do under a steady trickle of messages.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from textual.widget import Widget

from engine.snapshot import BrokerInfo, ManagerSnapshot, RouteInfo, SlotState, WorkerInfo

from .fixtures import FakeManager, make_app

WORKERS = 64
ROUTE = "dash/{n}"
MiB = 1024 * 1024


@dataclass
class LiveManager(FakeManager):
    """A FakeManager whose every snapshot is one simulated second after the previous one."""

    workers: int = WORKERS  # each handles 0 to 3 messages a second: ~100/s over 64
    seed: int = 7
    clock: float = 600.0  # seconds since start at the first snapshot

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self._rng = rng
        self._handled = [rng.randrange(50_000, 60_000) for _ in range(self.workers)]
        self._rss = [int(rng.uniform(40, 50) * MiB) for _ in range(self.workers)]
        self._last = [rng.uniform(0, 1.5) for _ in range(self.workers)]
        self._spawned = [rng.uniform(0, 5) for _ in range(self.workers)]

    def snapshot(self) -> ManagerSnapshot:
        self.snapshot_calls += 1
        self.clock += 1.0
        rng = self._rng
        workers = []
        for i in range(self.workers):
            got = rng.choice((0, 1, 1, 2, 2, 3))
            self._handled[i] += got
            self._last[i] = rng.uniform(0, 0.9) if got else self._last[i] + 1.0
            if rng.random() < 0.2:
                self._rss[i] += rng.choice((-4096, 4096, 8192))
            workers.append(WorkerInfo(
                slot=f"{ROUTE}#{i}", route=ROUTE, index=i, client_id=f"c-{i}", state=SlotState.RUNNING,
                pid=50_000 + i, connected=True, cpu_percent=round(rng.uniform(0.0, 2.5), 1),
                rss_bytes=self._rss[i], received=self._handled[i], handled=self._handled[i],
                messages_per_second=got * rng.uniform(0.9, 1.1), last_message_age=self._last[i],
                uptime=self.clock - self._spawned[i],
            ))
        workers.append(WorkerInfo(
            slot="main", route="(non-shared routes)", index=0, client_id="c-main", state=SlotState.RUNNING,
            pid=49_999, connected=True, cpu_percent=0.0, rss_bytes=38 * MiB, uptime=self.clock, is_main=True,
        ))
        handled = sum(self._handled)
        rate = sum(w.messages_per_second for w in workers)
        routes = (RouteInfo(ROUTE, "dash/+", 1, True, self.workers, self.workers, rate, handled, 0,
                            serving_workers=self.workers),)
        return ManagerSnapshot(
            group="dashbench", broker=BrokerInfo("127.0.0.1:1883", "connected", kind="private mosquitto"),
            workers=tuple(workers), routes=routes, uptime=self.clock, started=True,
            messages_per_second=rate, handled=handled, failed=0,
        )


@dataclass
class Refresh:
    """One refresh: CPU seconds to reconcile and to paint the frame after it; what was rendered."""

    reconcile: float
    paint: float
    layouts: int
    renders: int
    painted: Counter[str]  # widget class -> times painted
    paint_by_widget: Counter[str]  # widget class -> seconds painting it


@contextmanager
def _instrumented() -> Iterator[dict[str, Any]]:
    """Count Console.render_lines calls, widget paints (timed) and layouts asked for."""
    seen: dict[str, Any] = {"renders": 0, "layouts": 0, "painted": Counter(), "by_widget": Counter()}
    render_lines = Console.render_lines
    widget_render_lines = Widget.render_lines
    widget_refresh = Widget.refresh

    def counted_render_lines(self: Console, *args: Any, **kwargs: Any) -> Any:
        seen["renders"] += 1
        return render_lines(self, *args, **kwargs)

    def counted_widget_render_lines(self: Widget, crop: Any) -> Any:
        name = type(self).__name__
        seen["painted"][name] += 1
        started = time.thread_time()
        try:
            return widget_render_lines(self, crop)
        finally:
            seen["by_widget"][name] += time.thread_time() - started

    def counted_refresh(self: Widget, *regions: Any, **options: Any) -> Any:
        if options.get("layout"):
            seen["layouts"] += 1
        return widget_refresh(self, *regions, **options)

    Console.render_lines = counted_render_lines  # type: ignore[method-assign]
    Widget.render_lines = counted_widget_render_lines  # type: ignore[method-assign]
    Widget.refresh = counted_refresh  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        Console.render_lines = render_lines  # type: ignore[method-assign]
        Widget.render_lines = widget_render_lines  # type: ignore[method-assign]
        Widget.refresh = widget_refresh  # type: ignore[method-assign]


async def measure(refreshes: int = 20, warmup: int = 5, size: tuple[int, int] = (160, 48),
                  profile: cProfile.Profile | None = None, manager: FakeManager | None = None) -> list[Refresh]:
    """Run the dashboard over a LiveManager; return what each measured refresh cost."""
    app = make_app(manager or LiveManager())
    results: list[Refresh] = []
    async with app.run_test(size=size) as pilot:
        for _ in range(warmup):
            await app.refresh_dashboard()
            await pilot.pause(0.05)
        with _instrumented() as seen:
            for _ in range(refreshes):
                before = dict(seen, painted=Counter(seen["painted"]), by_widget=Counter(seen["by_widget"]))
                if profile:
                    profile.enable()
                started = time.thread_time()
                await app.refresh_dashboard()
                reconciled = time.thread_time()
                await pilot.pause(0.05)  # the screen's update timer paints within a frame
                painted = time.thread_time()
                if profile:
                    profile.disable()
                results.append(Refresh(
                    reconcile=reconciled - started,
                    paint=painted - reconciled,
                    layouts=seen["layouts"] - before["layouts"],
                    renders=seen["renders"] - before["renders"],
                    painted=seen["painted"] - before["painted"],
                    paint_by_widget=seen["by_widget"] - before["by_widget"],
                ))
    return results


async def cpu_percent(seconds: float, size: tuple[int, int] = (160, 48), refresh: float = 1.0) -> float:
    """% of one core the dashboard uses over ``seconds`` of refreshes (no terminal output made)."""
    app = make_app(LiveManager(), refresh=refresh)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(3 * refresh)  # the first refreshes build every row
        with _instrumented() as seen:
            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.sleep(seconds)
            elapsed = time.perf_counter() - started
            used = time.process_time() - cpu
        painting = sum(seen["by_widget"].values())
        print(f"a second: painting widgets {painting / elapsed * 1000:.1f} ms, "
              f"{seen['layouts'] / elapsed:.1f} layouts asked for, {seen['renders'] / elapsed:.0f} Rich renders")
        return 100 * used / elapsed


def _ms(seconds: Iterable[float]) -> str:
    values = list(seconds)
    return f"{statistics.median(values) * 1000:.2f} ({min(values) * 1000:.2f}) ms"


def summary(results: list[Refresh]) -> str:
    painted: Counter[str] = Counter()
    by_widget: Counter[str] = Counter()
    for result in results:
        painted.update(result.painted)
        by_widget.update(result.paint_by_widget)
    n = len(results)
    return "\n".join([
        f"{n} refreshes, medians (fastest): reconcile {_ms(r.reconcile for r in results)}, "
        f"paint {_ms(r.paint for r in results)}, "
        f"Rich renders {statistics.median(r.renders for r in results):g}, "
        f"layouts asked for {statistics.median(r.layouts for r in results):g}",
        "widgets painted per refresh: "
        + ", ".join(f"{name} {count / n:g} times {by_widget[name] * 1000 / n:.2f} ms"
                    for name, count in painted.most_common()),
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refreshes", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the measured refreshes")
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--live", type=float, metavar="SECONDS",
                        help="instead: run with the 1 s refresh timer and print the process's CPU use")
    args = parser.parse_args()
    if args.live:
        print(f"{asyncio.run(cpu_percent(args.live, (args.width, args.height))):.1f} % of one core")
        return 0
    profile = cProfile.Profile() if args.profile else None
    results = asyncio.run(measure(args.refreshes, size=(args.width, args.height), profile=profile))
    print(summary(results))
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(45)
    return 0


if __name__ == "__main__":
    sys.exit(main())
