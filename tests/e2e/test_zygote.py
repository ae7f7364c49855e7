"""Workers forked from a zygote (WORKER_START_METHOD=zygote, the default), against a real broker.

What must hold as it did with a fresh interpreter per worker: exact exit codes, no orphans even
when the manager is SIGKILLed, secrets out of command lines and environments; and what is new:
the zygote's death is shown and repaired, a reload brings a new zygote with the new code and
retires the old one, a router module that starts a thread or hangs at import neither breaks the
workers nor freezes the manager, and ``spawn`` keeps the old path.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from engine import Router, WorkerManager
from engine.router_registry import RouterRegistry
from engine.setting_values import Secret
from engine.snapshot import SlotState
from tests.engine import workload
from tests.support import ManagerProcess, Publisher, all_running, process_gone, settings_for, wait_until

ZYGOTE_ROUTES = """
import threading, time
from engine import Router

{extra}

def handle(name, payload, client):
    with open(payload["out"], "a") as out:
        out.write("{version}\\n")

router = Router()
router.on("zy/{{name}}", handle, qos=1, shared=True, worker_count=2)
"""


def routes(workers: int = 2) -> Router:
    router = Router()
    router.on("zy/+", workload.record, qos=1, shared=True, worker_count=workers)
    return router


def parents(manager: WorkerManager) -> set[int]:
    return {psutil.Process(w.pid).ppid() for w in manager.snapshot().workers if w.pid is not None}


def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, version: str, extra: str = "") -> str:
    (tmp_path / name).mkdir(exist_ok=True)
    (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / name / "jobs.py").write_text(ZYGOTE_ROUTES.format(version=version, extra=extra))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_workers_are_forked_from_one_zygote_which_holds_no_secret(broker, group_name, start, monkeypatch):
    monkeypatch.setenv("MQTT_PASSWORD", "s3cret-Pa55")
    monkeypatch.setenv("FLEET_CONTROL_KEY", "fleet-key-0123456789")
    manager = start(routes(3), broker, group_name, password=Secret("s3cret-Pa55"), username="u")
    snapshot = manager.snapshot()
    assert snapshot.start_method == "zygote"
    assert snapshot.zygote_pid is not None
    assert parents(manager) == {snapshot.zygote_pid}
    zygote = psutil.Process(snapshot.zygote_pid)
    assert zygote.ppid() == os.getpid()
    for process in [zygote, *(psutil.Process(w.pid) for w in snapshot.workers)]:
        seen = " ".join(process.cmdline()) + " ".join(f"{k}={v}" for k, v in process.environ().items())
        assert "s3cret-Pa55" not in seen
        assert "fleet-key-0123456789" not in seen


def test_exit_codes_come_through_the_zygote_exactly(broker, group_name, start, tmp_path):
    manager = start(routes(1), broker, group_name, restart_backoff=5.0, restart_backoff_max=5.0)
    with Publisher(broker) as pub:
        pub.publish("zy/a", {"id": "1", "crash": True})
    worker = wait_until(lambda: (w := manager.snapshot().workers[0]).state is SlotState.BACKOFF and w,
                        what="the worker to exit")
    assert worker.last_exit is not None and worker.last_exit.startswith("13")
    assert manager.workers[0].exitcode == 13

    manager.restart_dead_workers()
    pid = wait_until(lambda: (w := manager.snapshot().workers[0]).state is SlotState.RUNNING and w.pid)
    os.kill(pid, signal.SIGKILL)
    worker = wait_until(lambda: (w := manager.snapshot().workers[0]).state is SlotState.BACKOFF and w,
                        what="the killed worker to be reaped")
    assert worker.last_exit is not None and worker.last_exit.startswith("SIGKILL")
    assert manager.workers[0].exitcode == -signal.SIGKILL


def test_a_zygote_that_dies_is_replaced_and_shown_and_its_workers_restart(broker, group_name, start):
    manager = start(routes(2), broker, group_name)
    before = manager.snapshot()
    old_zygote, old_workers = before.zygote_pid, {w.pid for w in before.workers}
    assert old_zygote is not None
    os.kill(old_zygote, signal.SIGKILL)
    wait_until(lambda: manager.snapshot().zygote_restarts == 1, what="the zygote's death counted")
    wait_until(lambda: all_running(manager) and not {w.pid for w in manager.snapshot().workers} & old_workers,
               what="new workers running")
    after = manager.snapshot()
    assert after.zygote_pid not in (None, old_zygote)
    assert parents(manager) == {after.zygote_pid}
    assert all(process_gone(pid) for pid in old_workers if pid is not None)
    said = [e.message for e in manager.events_since(0)]
    assert any(f"zygote (pid {old_zygote}) died: SIGKILL" in m for m in said)
    assert any("went down with its zygote; restarting it now" in m for m in said)
    # Not a death of the workers' own: nothing counted towards crash-loop, nothing in backoff.
    assert all(w.state is SlotState.RUNNING for w in after.workers)


def test_manager_sigkill_takes_the_zygote_and_every_worker(broker, group_name):
    manager = ManagerProcess(broker, group_name, 2, "tests.engine.workload:record", "zy/+")
    try:
        zygotes = {psutil.Process(pid).ppid() for pid in manager.worker_pids}
        assert len(zygotes) == 1 and manager.process.pid not in zygotes
        manager.kill()
        for pid in [*zygotes, *manager.worker_pids]:
            wait_until(lambda pid=pid: process_gone(pid), 15, f"process {pid} to go with its manager")
    finally:
        manager.close()


def test_reload_starts_a_zygote_with_the_new_code_and_retires_the_old(broker, group_name, managers, tmp_path,
                                                                      monkeypatch):
    name = package(tmp_path, monkeypatch, f"zyreload_{group_name}", "v1")
    manager = WorkerManager(RouterRegistry(name).discover_and_load_routers(), group_name, router_directory=name,
                            settings=settings_for(broker, group_name))
    managers.append(manager)
    manager.start_workers()
    wait_until(lambda: all_running(manager), what="v1 workers")
    old_zygote = manager.snapshot().zygote_pid
    (tmp_path / name / "jobs.py").write_text(ZYGOTE_ROUTES.format(version="v2", extra=""))
    manager.reload()
    wait_until(lambda: all_running(manager) and manager.snapshot().zygote_pid != old_zygote, what="v2 workers")
    wait_until(lambda: process_gone(old_zygote), what="the old zygote retired")
    assert parents(manager) == {manager.snapshot().zygote_pid}
    out = tmp_path / "out"
    with Publisher(broker) as pub:
        for i in range(10):
            pub.publish(f"zy/n{i}", {"out": str(out)})
    wait_until(lambda: out.exists() and len(out.read_text().split()) == 10, what="10 messages handled")
    assert set(out.read_text().split()) == {"v2"}


def test_routes_that_start_a_thread_at_import_are_left_to_each_worker(broker, group_name, managers, tmp_path,
                                                                      monkeypatch):
    extra = "threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()"
    name = package(tmp_path, monkeypatch, f"zythread_{group_name}", "v1", extra)
    manager = WorkerManager(RouterRegistry(name).discover_and_load_routers(), group_name, router_directory=name,
                            settings=settings_for(broker, group_name))
    managers.append(manager)
    manager.start_workers()
    wait_until(lambda: all_running(manager), what="workers running")
    said = [e.message for e in manager.events_since(0)]
    assert any("importing the routes started a thread: each worker imports them itself" in m for m in said)
    zygote = psutil.Process(manager.snapshot().zygote_pid)
    assert zygote.num_threads() == 1  # started again without the routes
    out = tmp_path / "out"
    with Publisher(broker) as pub:
        pub.publish("zy/a", {"out": str(out)})
    wait_until(lambda: out.exists() and out.read_text() == "v1\n", what="the message handled")


def test_a_router_module_that_hangs_at_import_freezes_nothing(broker, group_name, managers, tmp_path, monkeypatch):
    name = package(tmp_path, monkeypatch, f"zyhang_{group_name}", "v1")
    router = RouterRegistry(name).discover_and_load_routers()
    (tmp_path / name / "jobs.py").write_text(ZYGOTE_ROUTES.format(version="v1", extra="time.sleep(3600)"))
    manager = WorkerManager(router, group_name, router_directory=name,
                            settings=settings_for(broker, group_name, hang_timeout=2.0))
    managers.append(manager)
    manager.start_workers()
    # The supervisor goes on: snapshots, events, and the zygote that never got ready is killed.
    wait_until(lambda: any("not ready after 2 s: killing it" in e.message for e in manager.events_since(0)),
               what="the hung zygote killed")
    wait_until(lambda: manager.snapshot().zygote_restarts >= 1, what="the killed zygote counted")
    assert all(w.state is not SlotState.RUNNING for w in manager.snapshot().workers)
    manager.stop_workers()


def test_spawn_keeps_a_fresh_interpreter_per_worker(broker, group_name, start):
    manager = start(routes(2), broker, group_name, worker_start_method="spawn")
    snapshot = manager.snapshot()
    assert snapshot.start_method == "spawn" and snapshot.zygote_pid is None
    assert parents(manager) == {os.getpid()}
    for worker in snapshot.workers:
        assert "engine.worker_process" in " ".join(psutil.Process(worker.pid).cmdline())


def test_zygotes_that_keep_dying_give_way_to_spawn(broker, group_name, start):
    manager = start(routes(1), broker, group_name)
    for death in range(1, 6):
        zygote = wait_until(lambda: all_running(manager) and manager.snapshot().zygote_pid, what="a zygote")
        os.kill(zygote, signal.SIGKILL)
        wait_until(lambda death=death: manager.snapshot().zygote_restarts == death, what=f"zygote death {death}")
    wait_until(lambda: all_running(manager), what="the worker running again")
    snapshot = manager.snapshot()
    assert snapshot.start_method == "spawn" and snapshot.zygote_pid is None
    assert parents(manager) == {os.getpid()}
    assert any("workers start as fresh interpreters from now on" in e.message for e in manager.events_since(0))


AT_EXIT_ROUTES = """
import atexit, os, subprocess
from engine import Router

# A helper started at import: in the zygote, which must not leave it behind.
helper = subprocess.Popen(["sleep", "3600"])
with open({helpers!r}, "a") as out:
    out.write(f"{{helper.pid}}\\n")

def handle(name, payload, client):
    def said_goodbye(path=payload["out"]):
        with open(path, "a") as out:
            out.write(f"{{os.getpid()}}\\n")
    atexit.register(said_goodbye)

router = Router()
router.on("zy/{{name}}", handle, qos=1, shared=True, worker_count=1)
"""


def test_a_forked_worker_exits_as_a_spawned_one_and_import_time_helpers_go_with_the_zygote(
    broker, group_name, managers, tmp_path, monkeypatch
):
    helpers_file, out = tmp_path / "helpers", tmp_path / "goodbyes"
    name = f"zyexit_{group_name}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / name / "jobs.py").write_text(AT_EXIT_ROUTES.format(helpers=str(helpers_file)))
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = WorkerManager(RouterRegistry(name).discover_and_load_routers(), group_name, router_directory=name,
                            settings=settings_for(broker, group_name))
    managers.append(manager)
    manager.start_workers()
    wait_until(lambda: all_running(manager), what="the worker running")
    pid = manager.snapshot().workers[0].pid
    with Publisher(broker) as pub:
        pub.publish("zy/a", {"out": str(out)})
    wait_until(lambda: manager.snapshot().handled == 1, what="the message handled")
    manager.close()
    # Its atexit handler ran: it left through the interpreter's exit, not os._exit().
    assert out.read_text().split() == [str(pid)]
    # The helpers the routes' import started (one in this test's own import, one in the zygote's)
    # are gone with the zygote, except ours.
    helpers = [int(p) for p in helpers_file.read_text().split()]
    assert len(helpers) == 2
    ours = helpers[0]
    try:
        wait_until(lambda: process_gone(helpers[1]), what="the zygote's helper to go with it")
    finally:
        os.kill(ours, signal.SIGKILL)
        os.waitpid(ours, 0)

