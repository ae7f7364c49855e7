"""Dashboard cost with 64 workers: the dashboard process's own CPU, and the time of one refresh.

- CPU: the real ``routemq-dash`` command, in a pseudo-terminal of 160x48 at the default refresh
  (1 s), over a window while 64 workers serve a steady trickle of messages. The measured process
  holds the dashboard and the manager's supervisor; the workers are other processes. Baseline:
  the same command with ``--no-ui`` (the manager alone), so the ratio is what the screen costs.
- Refresh: ``DashboardApp.refresh_dashboard()`` (poll the engine, reconcile both tables, header,
  graph, log) timed in-process against the real engine with 64 workers; baseline: 1 worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find ``bench``

import psutil

from bench import common
from engine import RouterRegistry
from engine.broker import PrivateMosquitto

WORKERS = 64
COMMAND = Path(sys.executable).with_name("routemq-dash")
ROUTES = """
from engine import Router

router = Router()


def ignore(n, payload, client):
    pass


router.on("dash/{n}", ignore, qos=1, shared=True, worker_count={workers})
"""


@contextlib.contextmanager
def _router_package(workers: int) -> Iterator[tuple[Path, str]]:
    with tempfile.TemporaryDirectory(prefix="dashbench-") as directory:
        name = f"dashroutes{workers}"
        (Path(directory) / name).mkdir()
        (Path(directory) / name / "__init__.py").write_text("")
        (Path(directory) / name / "routes.py").write_text(ROUTES.replace("{workers}", str(workers)))
        yield Path(directory), name


@contextlib.contextmanager
def _trickle(broker: PrivateMosquitto, rate: float) -> Iterator[None]:
    """A publisher process sending to the benchmark route for as long as the block lasts."""
    process = common.start_publisher(broker, "dash/x", count=10**9, qos=1, fields={}, rate=rate)
    try:
        yield
    finally:
        common.terminate(process)


def _command_cpu(broker: PrivateMosquitto, headless: bool, seconds: float, workers: int) -> float:
    """% of one core used by the routemq-dash process over ``seconds`` once all workers run."""
    with _router_package(workers) as (cwd, package):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "WORKER_"))}
        env.update(PYTHONPATH=str(common.ROOT), LOG_LEVEL="WARNING", TERM="xterm-256color")
        args = [str(COMMAND), "--routers", package, "--broker", f"{broker.host}:{broker.port}",
                "--group", common.unique_group("dash")]  # fmt: skip
        if headless:
            args.append("--no-ui")
        primary, secondary = pty.openpty()
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 48, 160, 0, 0))
        process = subprocess.Popen(
            args, cwd=cwd, env=env, stdin=secondary, stdout=secondary, stderr=secondary, start_new_session=True
        )
        os.close(secondary)
        drain = threading.Thread(target=_drain, args=(primary,), daemon=True)
        drain.start()
        try:
            measured = psutil.Process(process.pid)
            common.wait_until(lambda: _workers_running(process.pid) >= workers, 180, f"{workers} workers")
            # The command starts the workers first and only then imports Textual, parses the CSS
            # and lays out the screen: let all of that pass before the window opens.
            time.sleep(10)
            before = measured.cpu_times()
            start = time.monotonic()
            time.sleep(seconds)
            after = measured.cpu_times()
            elapsed = time.monotonic() - start
            return 100.0 * ((after.user - before.user) + (after.system - before.system)) / elapsed
        finally:
            process.send_signal(2)  # SIGINT: the same graceful way out as q / Ctrl+C
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            os.close(primary)


def _drain(fd: int) -> None:
    """Read the terminal's output so that the dashboard never blocks writing to it."""
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass


def _workers_running(pid: int) -> int:
    try:
        # Forked workers are the zygote's children: the command's grandchildren. Their title
        # names them (engine.worker_process), as a spawned worker's command line does.
        children = psutil.Process(pid).children(recursive=True)
        return sum(1 for child in children if "engine.worker_process" in " ".join(child.cmdline()))
    except psutil.Error:
        return 0


def _refresh_times(broker: PrivateMosquitto, workers: int, refreshes: int) -> list[float]:
    """Seconds per refresh_dashboard(), against a real manager with ``workers`` workers."""
    group = common.unique_group("dashref")
    with _router_package(workers) as (directory, package), _on_path(directory):
        router = RouterRegistry(package).discover_and_load_routers()
        return _timed_refreshes(router, broker, group, refreshes)


@contextlib.contextmanager
def _on_path(directory: Path) -> Iterator[None]:
    sys.path.insert(0, str(directory))
    try:
        yield
    finally:
        sys.path.remove(str(directory))


def _timed_refreshes(router: Any, broker: PrivateMosquitto, group: str, refreshes: int) -> list[float]:
    from tui.app import DashboardApp

    with common.running_manager(router, broker, group, timeout=180) as manager:
        app = DashboardApp(manager, refresh=None, start=False)
        times: list[float] = []

        async def measure() -> None:
            async with app.run_test(size=(160, 48)) as pilot:
                await app.refresh_dashboard()  # the first render builds every row
                await pilot.pause()
                for _ in range(refreshes):
                    started = time.perf_counter()
                    await app.refresh_dashboard()
                    times.append(time.perf_counter() - started)

        asyncio.run(measure())
        return times


def run(quick: bool) -> dict[str, Any]:
    seconds = 5.0 if quick else 20.0
    runs = 1 if quick else 3
    with common.private_broker() as broker, _trickle(broker, rate=100.0):
        ui = [_command_cpu(broker, headless=False, seconds=seconds, workers=WORKERS) for _ in range(runs)]
        bare = [_command_cpu(broker, headless=True, seconds=seconds, workers=WORKERS) for _ in range(runs)]
        refresh64 = _refresh_times(broker, WORKERS, 10 if quick else 40)
        refresh1 = _refresh_times(broker, 1, 10 if quick else 40)
    figures = [
        common.figure(
            f"dashboard process CPU, {WORKERS} workers, refresh 1 s, 160x48",
            "% of one core",
            ui,
            baseline=bare,
            baseline_label="same command with --no-ui",
            goal=("value", "<", 5.0),
            note=f"{seconds:g} s window per run, 100 msg/s flowing",
        ),
        common.figure(
            f"one refresh with {WORKERS} workers",
            "ms",
            [t * 1000 for t in refresh64],
            baseline=[t * 1000 for t in refresh1],
            baseline_label="one refresh with 1 worker",
            goal=("value", "<", 20.0),
        ),
    ]
    return common.report("dashboard", "Dashboard cost", quick, figures)


if __name__ == "__main__":
    sys.exit(common.cli(__doc__, run))
