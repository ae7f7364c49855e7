"""Faults: the broker dies under load, the manager dies, handlers hang, leak or crash at import.

Each test injects one fault into real processes on a real Mosquitto and checks what the README
promises about it.
"""

from __future__ import annotations

import io
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from engine import Router, RouterRegistry, WorkerManager
from engine.headless import HeadlessRunner
from engine.snapshot import SlotState, WorkerInfo
from tests.conftest import LOAD_LIMITS
from tests.e2e import helpers
from tests.e2e.helpers import LoadPublisher, duplicates, handled_ids, read_records
from tests.support import ManagerProcess, Publisher, all_running, process_gone, settings_for, wait_until

RECORD = "tests.e2e.helpers:record"

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ROUTE = "jobs/{name}"


def jobs_router(worker_count: int = 1) -> Router:
    router = Router()
    router.on(ROUTE, helpers.record, qos=1, shared=True, worker_count=worker_count)
    return router


def worker(manager: WorkerManager, slot: str) -> WorkerInfo:
    return next(w for w in manager.snapshot().workers if w.slot == slot)


# ----------------------------------------------------------------------------------------------
# The manager dies
# ----------------------------------------------------------------------------------------------

def test_no_worker_outlives_a_manager_killed_under_load(broker, group_name, tmp_path):
    manager = ManagerProcess(broker, group_name, workers=3, handler=RECORD, topic="jobs/{name}")
    out = tmp_path / "records"
    try:
        assert len(manager.worker_pids) == 4 and not any(map(process_gone, manager.worker_pids))
        with LoadPublisher(broker, "jobs/", out, rate=300, duration=6, workdir=tmp_path):
            wait_until(lambda: len({pid for pid, _ in read_records(out)}) == 3, what="every shared worker busy")
            manager.kill()
            killed_at = time.monotonic()
            wait_until(lambda: all(map(process_gone, manager.worker_pids)), timeout=5,
                       what="every worker gone within 5 s of the manager's death")
        print(f"\nworkers gone {time.monotonic() - killed_at:.2f} s after the manager was killed")
    finally:
        manager.close()


def test_a_worker_stuck_in_a_handler_does_not_outlive_a_killed_manager(broker, group_name, tmp_path):
    """A handler that never returns must not keep its worker alive once the manager is gone
    (nobody is left to SIGKILL it at the graceful timeout), with the default settings."""
    manager = ManagerProcess(broker, group_name, workers=1, handler=RECORD, topic="jobs/{name}")
    hold = tmp_path / "holding"
    try:
        with Publisher(broker) as pub:
            pub.publish("jobs/x", {"id": "stuck", "hold": str(hold)})
        wait_until(hold.exists, what="the handler to take the message and block")
        stuck = int(hold.read_text())
        assert stuck in manager.worker_pids
        manager.kill()
        killed_at = time.monotonic()
        wait_until(lambda: all(map(process_gone, manager.worker_pids)), timeout=5,
                   what=f"every worker gone within 5 s of the manager's death (pid {stuck} holds a message)")
        print(f"\nthe stuck worker was gone {time.monotonic() - killed_at:.2f} s after the manager was killed")
    finally:
        manager.close()


# ----------------------------------------------------------------------------------------------
# The broker dies
# ----------------------------------------------------------------------------------------------

# Two ways Mosquitto (2.0) itself loses messages when it is killed and restarted, which this test
# must rule out so that a loss it sees can only be ours:
#
# 1. It writes its state to mosquitto.db only on shutdown, on SIGUSR1 and on autosave.
#    `autosave_interval N` saves every N seconds (default 1800: a SIGKILL loses up to half an
#    hour); with `autosave_on_changes true` N counts changes instead (subscription changes,
#    retained and queued messages), so `1` saves after every change, the most durable setting it
#    has. Even so, the save runs at the end of the main-loop iteration that queued a message, and
#    the PUBACK goes out during that iteration: a SIGKILL in between loses a message its
#    publisher saw acknowledged. So the test stops the publisher until every message is
#    acknowledged, forces a save (SIGUSR1), waits until the database on disk is newer than the
#    last acknowledgement, and only then kills the broker: everything it accepted is on disk.
# 2. It restores sessions and their queued messages from its database, but not their shared
#    subscriptions ($share/...): until a worker subscribes again, a message published after the
#    restart matches no subscriber and is dropped (checked by hand with a persistent session, a
#    graceful stop and a restart). So the publisher stays paused during the outage and resumes
#    once every worker has resubscribed, which is also what the test measures.
#
# To make the kill bite, the publisher bursts a backlog just before it: the workers' sessions
# hold messages the broker must hand over after the restart.
DURABLE_BROKER = LOAD_LIMITS + "autosave_on_changes true\nautosave_interval 1\nlog_type subscribe\n"


@pytest.mark.chaos
def test_a_broker_killed_under_load_is_shown_as_down_and_ridden_out_without_loss(make_broker, group_name, start,
                                                                                 tmp_path):
    server = make_broker(persistence=True, extra_config=DURABLE_BROKER)
    manager = start(jobs_router(worker_count=3), server, group_name)
    before = {w.slot: w for w in manager.snapshot().workers}
    out, database = tmp_path / "records", server.workdir / "mosquitto.db"
    with LoadPublisher(server, "jobs/", out, rate=300, duration=6, workdir=tmp_path) as load:
        wait_until(lambda: len(read_records(out)) >= 600, what="the load to flow for a while")
        paused = load.burst(600, sleep=0.01)  # ~2 s of work for the pool
        all_acknowledged_at = time.time_ns()
        os.kill(server.pid, signal.SIGUSR1)
        wait_until(lambda: database.exists() and database.stat().st_mtime_ns > all_acknowledged_at,
                   what="the broker to save every acknowledged message")
        server.kill()
        killed_at = time.monotonic()
        backlog = paused["acked"] - len(handled_ids(out))
        assert backlog > 0, "the kill should leave acknowledged messages in the workers' sessions"

        wait_until(lambda: manager.snapshot().broker.state != "connected", timeout=5, what="the outage to show")
        during = []
        while time.monotonic() < killed_at + 5.0:  # the broker stays down 5 s; watch the status meanwhile
            during.append(manager.snapshot())
            time.sleep(0.1)
        log_size = server.log_path.stat().st_size
        server.start()
        back_at = time.monotonic()

        resubscribed: dict[str, float] = {}

        def every_worker_resubscribed() -> bool:
            with open(server.log_path, "rb") as log:
                log.seek(log_size)
                since_restart = log.read().decode(errors="replace")
            for slot, info in before.items():
                subscribe_line = f" {info.client_id} 1 $share/{group_name}/jobs/+"
                if slot not in resubscribed and subscribe_line in since_restart and worker(manager, slot).connected:
                    resubscribed[slot] = time.monotonic() - back_at
            return len(resubscribed) == len(before)

        wait_until(every_worker_resubscribed, timeout=10,
                   what="every worker reconnected and resubscribed within 10 s of the broker's return")
        load.resume()
        result = load.result()

    # The headless runner's status lines for the snapshots taken during the outage, and after.
    status = io.StringIO()
    runner = HeadlessRunner(manager, out=status)
    for snapshot in during:
        runner._print_status(snapshot)
    runner._print_status(manager.snapshot())
    *outage_lines, recovered_line = status.getvalue().splitlines()
    os.close(runner._wake_r)
    os.close(runner._wake_w)
    assert {s.broker.state for s in during} == {"unreachable"}
    assert len(outage_lines) >= 10
    assert all(f"broker {server.address} unreachable" in line and "WARNING" in line for line in outage_lines)
    assert f"broker {server.address} connected" in recovered_line and "INFO" in recovered_line

    wait_until(lambda: set(result.acked) <= handled_ids(out), timeout=30, what="every acknowledged message handled")
    assert len(result.acked) == result.published
    after = {w.slot: w for w in manager.snapshot().workers}
    assert {s: w.pid for s, w in after.items()} == {s: w.pid for s, w in before.items()}, "no worker died"
    dups = duplicates(out)
    print(f"\nbroker outage: {result.published} published ({result.rate:.0f} msg/s steady + a burst), all handled;"
          f" {backlog} were waiting in the workers' sessions at the kill; {len(dups)} handled twice;"
          f" resubscribed {', '.join(f'{t:.2f}' for t in sorted(resubscribed.values()))} s after the broker's return")


# ----------------------------------------------------------------------------------------------
# Handlers that hang, leak or have had enough
# ----------------------------------------------------------------------------------------------


def test_a_hung_handler_is_detected_and_its_worker_replaced_while_the_pool_serves_on(broker, group_name, start,
                                                                                      tmp_path):
    manager = start(jobs_router(worker_count=2), broker, group_name, hang_timeout=1.0)
    out, hold = tmp_path / "records", tmp_path / "holding"
    with Publisher(broker) as pub:
        pub.publish("jobs/x", {"id": "hangs", "out": str(out), "hold": str(hold)})
        wait_until(hold.exists, what="a handler to hang")
        hung_pid = int(hold.read_text())
        hung_slot = next(w.slot for w in manager.snapshot().workers if w.pid == hung_pid)
        for i in range(40):
            pub.publish(f"jobs/n{i}", {"id": str(i), "out": str(out)})
    replaced = wait_until(
        lambda: (w := worker(manager, hung_slot)).state is SlotState.RUNNING and w.pid != hung_pid and w,
        what="the hung worker replaced in its slot",
    )
    wait_until(lambda: handled_ids(out) == {"hangs", *map(str, range(40))},
               what="every message handled, the hung one again by the replacement")
    hung = [e for e in manager.events_since(0) if e.kind == "hung"]
    assert [e.slot for e in hung] == [hung_slot] and "no heartbeat" in hung[0].message
    assert replaced.restarts == 1 and "hung" in replaced.last_exit
    assert process_gone(hung_pid)
    (holder_pid,) = {pid for pid, ident in read_records(out) if ident == "hangs"}
    assert holder_pid == replaced.pid, "the slot's session gave the unacknowledged message to its new worker"


def test_a_worker_leaking_memory_is_recycled_gracefully_after_finishing_its_messages(broker, group_name, start,
                                                                                      tmp_path):
    limit_mb = 120
    manager = start(jobs_router(), broker, group_name, max_memory_mb=limit_mb)
    slot = f"{ROUTE}#0"
    first = wait_until(lambda: (w := worker(manager, slot)).rss_bytes and w, what="a first memory sample")
    assert first.rss_bytes < limit_mb * 1024 * 1024, "the limit must leave room for a fresh worker"
    out = tmp_path / "records"
    with Publisher(broker) as pub:
        # Ten messages, each keeping 25 MB and taking 0.3 s: the worker takes them all in hand at
        # once and crosses the limit after four or five, well before it has finished them.
        for i in range(10):
            pub.publish("jobs/x", {"id": f"leak{i}", "out": str(out), "grow_mb": 25, "sleep": 0.3})
        recycled = wait_until(lambda: [e for e in manager.events_since(0) if e.kind == "recycled"],
                              what="the leaking worker recycled")
        done_when_recycled = len(handled_ids(out))
        replaced = wait_until(lambda: (w := worker(manager, slot)).pid != first.pid
                              and w.state is SlotState.RUNNING and w, what="a fresh worker in the slot")
        for i in range(5):
            pub.publish("jobs/x", {"id": f"after{i}", "out": str(out)})
    wait_until(lambda: len(handled_ids(out)) == 15, what="every message handled")
    assert recycled[0].slot == slot and f"WORKER_MAX_MEMORY_MB={limit_mb}" in recycled[0].message
    by_pid = {ident: pid for pid, ident in read_records(out)}
    assert done_when_recycled < 10, "the worker still held messages when it was told to recycle"
    assert {by_pid[f"leak{i}"] for i in range(10)} == {first.pid}, "and it finished them before it went"
    assert {by_pid[f"after{i}"] for i in range(5)} == {replaced.pid}
    assert replaced.last_exit == "0", "recycled gracefully (SIGTERM, finish, exit 0), not killed"
    assert replaced.restarts == 1 and not [e for e in manager.events_since(0) if e.kind in ("hung", "killed")]
    assert replaced.rss_bytes is None or replaced.rss_bytes < limit_mb * 1024 * 1024
    print(f"\nmemory recycling: {recycled[0].message}, with {10 - done_when_recycled} of its 10 messages"
          " still in hand; it finished them and exited 0")


def test_workers_recycle_after_max_messages_at_jittered_counts_without_losing_any(broker, group_name, start,
                                                                                  tmp_path):
    manager = start(jobs_router(worker_count=3), broker, group_name, max_messages=10, max_messages_jitter=40)
    out = tmp_path / "records"
    with LoadPublisher(broker, "jobs/", out, rate=30, duration=8, workdir=tmp_path) as load:
        result = load.result()
    wait_until(lambda: set(result.acked) <= handled_ids(out), what="every message handled")
    recycled = [e for e in manager.events_since(0) if e.kind == "recycled"]
    assert len(recycled) >= 3
    wait_until(lambda: all_running(manager), what="the pool back to three running workers")
    live = {w.pid for w in manager.snapshot().workers}
    per_process = Counter(pid for pid, _ in read_records(out))
    counts = sorted(n for pid, n in per_process.items() if pid not in live)  # processes that were recycled
    assert len(counts) == len(recycled)
    assert min(counts) >= 10, "no worker recycles before WORKER_MAX_MESSAGES"
    assert len(set(counts)) > 1, "with jitter, workers recycle at different counts"
    print(f"\nmax-messages recycling: {len(recycled)} recycles after {counts} messages")


# ----------------------------------------------------------------------------------------------
# A worker that crashes at import
# ----------------------------------------------------------------------------------------------

CRASHING_ROUTES = """
import os
from engine import Router
from tests.e2e import helpers

if os.environ.get({variable!r}):
    raise RuntimeError("this router module breaks in the workers")

router = Router()
router.on("crashy/+", helpers.record, qos=1, shared=True)
"""


def test_a_worker_crashing_at_import_reaches_crash_loop_with_backoff_not_a_restart_storm(
    broker, group_name, managers, tmp_path, monkeypatch
):
    package = f"crashing_{group_name}"
    variable = f"E2E_BREAK_{group_name.upper()}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "routes.py").write_text(CRASHING_ROUTES.format(variable=variable))
    monkeypatch.syspath_prepend(str(tmp_path))
    router = RouterRegistry(package).discover_and_load_routers()  # loads fine here, in the manager
    # The README's defaults: 0.5 s doubling, 5 deaths within 60 s make a crash-loop.
    settings = settings_for(broker, group_name, restart_backoff=0.5, restart_backoff_max=30.0,
                            crash_loop_restarts=5, crash_loop_window=60.0)
    manager = WorkerManager(router, group_name, router_directory=package, settings=settings)
    managers.append(manager)
    monkeypatch.setenv(variable, "1")  # workers inherit the environment: there the module raises
    manager.start_workers()
    slot = "crashy/+#0"

    looping = wait_until(lambda: (w := worker(manager, slot)).state is SlotState.CRASH_LOOP and w, timeout=30,
                         what="the slot in crash-loop")
    looped_at = manager.snapshot().taken_at
    wait_until(lambda: manager.snapshot().taken_at > looped_at + 2.0, what="two more seconds of supervision")
    events = [e for e in manager.events_since(0) if e.slot == slot]
    starts = [e for e in events if e.kind in ("spawned", "restarted")]
    deaths = [e for e in events if e.kind == "exited"]
    assert len(starts) == 5, "1 start + 4 restarts: the 5th death within 60 s is a crash-loop"
    assert worker(manager, slot).state is SlotState.CRASH_LOOP and worker(manager, slot).restarts == 4
    delays = [float(e.message.rsplit("restarting in ", 1)[1].split(" s")[0]) for e in deaths]
    assert delays == [0.5, 1.0, 2.0, 4.0], "the delay doubles from WORKER_RESTART_BACKOFF"
    for death, restart, delay in zip(deaths, starts[1:], delays, strict=True):
        assert restart.time - death.time >= delay - 0.01, "no restart before its backoff delay"
    assert "routes.py" in looping.last_exit and "breaks in the workers" in looping.last_exit
    span = starts[-1].time - starts[0].time
    per_minute = (len(starts) - 1) / span * 60
    print(f"\nimport crash: {len(starts)} starts in {span:.1f} s ({per_minute:.0f} restarts/min while backing off),"
          f" then crash-loop and no start for 2 s; last exit: {looping.last_exit}")
