"""WorkerManager against a real Mosquitto and real worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from engine import Router, RouterRegistry, WorkerManager
from engine.broker import PrivateMosquitto
from engine.settings import Secret
from engine.snapshot import SlotState, WorkerInfo
from engine.worker_manager import ManagerConflict
from tests.engine import workload
from tests.support import (
    ManagerProcess,
    Publisher,
    all_running,
    handled_ids,
    process_gone,
    read_records,
    settings_for,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]


def worker(manager: WorkerManager, slot: str) -> WorkerInfo:
    return next(w for w in manager.snapshot().workers if w.slot == slot)


def one_route_router(qos: int = 1, worker_count: int = 1, handler: object = workload.record_param) -> Router:
    router = Router()
    router.on("jobs/{name}", handler, qos=qos, shared=True, worker_count=worker_count)
    return router


# ----------------------------------------------------------------------------------------------
# Pools
# ----------------------------------------------------------------------------------------------


def test_each_shared_route_gets_its_own_pool_and_main_serves_the_rest(broker, group_name, start, tmp_path):
    router = Router()
    router.on("a/{name}", workload.record_param, qos=1, shared=True, worker_count=2)
    router.on("b/+", workload.record, qos=1, shared=True, worker_count=1)
    router.on("c/#", workload.record, qos=1)
    manager = start(router, broker, group_name)

    slots = sorted(w.slot for w in manager.snapshot().workers)
    assert slots == ["a/{name}#0", "a/{name}#1", "b/+#0", "main"]
    assert manager.get_worker_count() == 3  # the main worker is not counted
    info = {r["topic"]: r for r in manager.get_shared_routes_info()}
    assert info["a/{name}"]["mqtt_topic"] == "a/+" and info["a/{name}"]["worker_count"] == 2
    assert info["b/+"]["qos"] == 1

    out = tmp_path / "records"
    with Publisher(broker) as pub:
        for i in range(40):
            pub.publish(f"a/n{i}", {"id": f"a{i}", "out": str(out)})
        for i in range(10):
            pub.publish("b/x", {"id": f"b{i}", "out": str(out)})
        for i in range(5):
            pub.publish(f"c/y/{i}", {"id": f"c{i}", "out": str(out)})
    wait_until(lambda: len(read_records(out)) >= 55, what="55 messages handled")

    pids = {w.slot: w.pid for w in manager.snapshot().workers}
    by_pid: dict[int, set[str]] = {}
    for pid, ident, _ in read_records(out):
        by_pid.setdefault(pid, set()).add(ident[0])
    a_pids = {pids["a/{name}#0"], pids["a/{name}#1"]}
    assert set(by_pid) <= a_pids | {pids["b/+#0"], pids["main"]}
    assert all(by_pid.get(pid) == {"a"} for pid in a_pids), "both a-workers share a's messages, and only them"
    assert by_pid[pids["b/+#0"]] == {"b"}
    assert by_pid[pids["main"]] == {"c"}
    assert Counter(ident for _, ident, _ in read_records(out)).most_common(1)[0][1] == 1, "no duplicates"
    totals = wait_until(
        lambda: (t := {r.topic: r.handled for r in manager.snapshot().routes}) == {"a/{name}": 40, "b/+": 10, "c/#": 5}
        and t,
        what="per-route totals, the main worker's counted per route",
    )
    assert manager.snapshot().handled == sum(totals.values())


def test_start_workers_with_a_number_adds_workers_in_proportion(broker, group_name, managers):
    router = Router()
    router.on("p/+", workload.record, shared=True, worker_count=2)
    router.on("q/+", workload.record, shared=True, worker_count=1)
    manager = WorkerManager(router, group_name, settings=settings_for(broker, group_name))
    managers.append(manager)

    manager.start_workers(6)  # each empty pool gets one, the other 4 split 2:1 by largest remainder
    assert {r["topic"]: r["worker_count"] for r in manager.get_shared_routes_info()} == {"p/+": 4, "q/+": 2}
    manager.start_workers(3)
    assert {r["topic"]: r["worker_count"] for r in manager.get_shared_routes_info()} == {"p/+": 6, "q/+": 3}
    wait_until(lambda: manager.get_worker_count() == 9, what="9 live workers")
    with pytest.raises(ValueError, match="no worker"):
        WorkerManager(router, group_name + "x", settings=settings_for(broker, group_name + "x")).start_workers(1)


def test_no_shared_routes_means_no_shared_worker(broker, group_name, start):
    router = Router()
    router.on("only/+", workload.record, qos=1)
    manager = start(router, broker, group_name)
    assert manager.get_worker_count() == 0
    assert manager.workers == []
    assert [w.slot for w in manager.snapshot().workers] == ["main"]


# ----------------------------------------------------------------------------------------------
# Death, restart, crash loops, hangs
# ----------------------------------------------------------------------------------------------


def test_killed_worker_is_restarted_in_its_slot(broker, group_name, start):
    manager = start(one_route_router(worker_count=2), broker, group_name)
    victim = worker(manager, "jobs/{name}#1")
    os.kill(victim.pid, signal.SIGKILL)

    replaced = wait_until(
        lambda: (w := worker(manager, victim.slot)).state is SlotState.RUNNING and w.pid != victim.pid and w,
        what="a replacement in the same slot",
    )
    assert replaced.restarts == 1
    assert replaced.client_id == victim.client_id
    assert replaced.last_exit == "SIGKILL (likely OOM or killed)"
    assert worker(manager, "jobs/{name}#0").pid == worker(manager, "jobs/{name}#0").pid
    kinds = [e.kind for e in manager.events_since(0) if e.slot == victim.slot]
    assert "exited" in kinds and "restarted" in kinds


def test_restart_worker_replaces_one_worker_gracefully(broker, group_name, start, tmp_path):
    manager = start(one_route_router(worker_count=2), broker, group_name)
    before = {w.slot: w.pid for w in manager.snapshot().workers}
    manager.restart_worker("jobs/{name}#0")
    restarted = wait_until(
        lambda: (w := worker(manager, "jobs/{name}#0")).state is SlotState.RUNNING and w.pid != before[w.slot] and w,
        what="slot #0 running a new process",
    )
    assert restarted.last_exit == "0", "it stopped gracefully"
    assert restarted.restarts == 1
    assert worker(manager, "jobs/{name}#1").pid == before["jobs/{name}#1"], "the other worker was left alone"
    with pytest.raises(ValueError, match="no worker slot 'nope'"):
        manager.restart_worker("nope")


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_worker_killed_mid_message_gets_the_message_again(broker, group_name, start, tmp_path, protocol):
    manager = start(one_route_router(qos=1), broker, group_name, protocol=protocol)
    out, hold = tmp_path / "records", tmp_path / "holding"
    with Publisher(broker) as pub:
        pub.publish("jobs/x", {"id": "m1", "out": str(out), "hold": str(hold)})
    wait_until(hold.exists, what="the handler to take the message")
    holder = int(hold.read_text())
    os.kill(holder, signal.SIGKILL)

    wait_until(lambda: handled_ids(out) == {"m1"}, what="the message handled after the restart")
    (pid, _, _), = read_records(out)
    assert pid != holder
    assert worker(manager, "jobs/{name}#0").restarts == 1


def test_poison_message_puts_the_slot_in_crash_loop_until_restarted_by_hand(broker, group_name, start, tmp_path):
    # Poison-message quarantine off: the crash-loop machinery itself is under test here
    # (tests/e2e/test_poison.py has the quarantine).
    manager = start(one_route_router(qos=1), broker, group_name, restart_backoff=0.05, crash_loop_restarts=3,
                    poison_deaths=0)
    with Publisher(broker) as pub:
        pub.publish("jobs/x", {"id": "poison", "crash": True})

    looping = wait_until(lambda: (w := worker(manager, "jobs/{name}#0")).state is SlotState.CRASH_LOOP and w,
                         what="crash-loop")
    assert looping.last_exit.startswith("13")
    assert "died 3 times" in looping.detail
    assert any(e.kind == "crash-loop" for e in manager.events_since(0))
    # Not restarted while crash-looping: several supervisor ticks later it is still waiting.
    seen = manager.snapshot().taken_at
    wait_until(lambda: manager.snapshot().taken_at > seen + 1.0, what="a second of supervision")
    assert worker(manager, "jobs/{name}#0").state is SlotState.CRASH_LOOP
    assert worker(manager, "jobs/{name}#0").restarts == looping.restarts

    assert manager.restart_dead_workers() == 1
    assert worker(manager, "jobs/{name}#0").state in (SlotState.STARTING, SlotState.RUNNING, SlotState.BACKOFF)


def test_a_crash_looping_slot_leaves_its_share_group_so_live_workers_take_its_share(
    broker, group_name, start, tmp_path
):
    manager = start(one_route_router(qos=1, worker_count=2), broker, group_name, restart_backoff=0.05,
                    crash_loop_restarts=2, poison_deaths=0)
    with Publisher(broker) as pub:
        pub.publish("jobs/x", {"id": "poison", "crash": True})
        wait_until(lambda: any("left the share group" in e.message for e in manager.events_since(0)),
                   what="the crash-looping slot to leave its share group")
        out = tmp_path / "records"
        for i in range(20):
            pub.publish(f"jobs/n{i}", {"id": str(i), "out": str(out)})
    wait_until(lambda: len(handled_ids(out)) == 20, what="all 20 handled by the live worker")
    states = sorted(w.state for w in manager.snapshot().workers)
    assert states == [SlotState.CRASH_LOOP, SlotState.RUNNING]


@pytest.mark.parametrize(
    ("handler", "symptom"),
    [(workload.record_param, "no heartbeat"), (workload.record_async, "a handler has run")],
    ids=["sync-handler-blocks-the-worker", "async-handler-never-returns"],
)
def test_hung_handler_is_detected_killed_and_its_message_handled_again(broker, group_name, start, tmp_path,
                                                                       handler, symptom):
    manager = start(one_route_router(qos=1, handler=handler), broker, group_name, hang_timeout=1.0)
    out, hold = tmp_path / "records", tmp_path / "holding"
    with Publisher(broker) as pub:
        pub.publish("jobs/x", {"id": "slow", "out": str(out), "hold": str(hold)})
    wait_until(lambda: handled_ids(out) == {"slow"}, what="the message handled by the replacement")
    hung = [e for e in manager.events_since(0) if e.kind == "hung"]
    assert hung and symptom in hung[0].message
    assert "hung" in worker(manager, "jobs/{name}#0").last_exit


def test_handler_exception_is_counted_logged_and_the_worker_carries_on(broker, group_name, start, tmp_path):
    manager = start(one_route_router(qos=1), broker, group_name)
    pid = worker(manager, "jobs/{name}#0").pid
    out = tmp_path / "records"
    with Publisher(broker) as pub:
        pub.publish("jobs/x", {"id": "bad", "raise": True})
        pub.publish("jobs/x", b"\xff\xfe not json, not utf-8")
        pub.publish("jobs/x", {"id": "good", "out": str(out)})
    wait_until(lambda: worker(manager, "jobs/{name}#0").failed == 1 and handled_ids(out) == {"good"},
               what="one failure and the next message handled")
    assert worker(manager, "jobs/{name}#0").pid == pid
    # Reported with the next heartbeat: the message, the exception, the topic and the traceback as values.
    failures = wait_until(lambda: [e for e in manager.events_since(0) if e.kind == "failure"],
                          what="the failure reported")
    assert "handler failure for message bad" in failures[0].message and "Traceback" in failures[0].message
    assert failures[0].exception == "RuntimeError" and failures[0].topic == "jobs/x"
    assert failures[0].traceback is not None and "record_param" in failures[0].traceback
    assert failures[0].slot == "jobs/{name}#0"


# ----------------------------------------------------------------------------------------------
# Stopping and scaling without losing messages
# ----------------------------------------------------------------------------------------------


def test_stop_finishes_in_flight_messages_and_the_rest_wait_for_the_next_start(broker, group_name, start, tmp_path):
    manager = start(one_route_router(qos=1), broker, group_name, worker_concurrency=1)
    out = tmp_path / "records"
    with Publisher(broker) as pub:
        for i in range(6):
            pub.publish("jobs/x", {"id": f"m{i}", "out": str(out), "sleep": 0.3, "started": str(tmp_path / "s")})
        wait_until((tmp_path / "s.m1").exists, what="the second message in hand")
        manager.stop_workers()

    stopped = worker(manager, "jobs/{name}#0")
    assert stopped.state is SlotState.EXITED and stopped.last_exit == "0"
    assert manager.get_worker_count() == 0
    assert "m1" in handled_ids(out), "the message in hand was finished"
    assert len(handled_ids(out)) < 6, "the others were left for later"

    manager.start_workers()
    wait_until(lambda: handled_ids(out) == {f"m{i}" for i in range(6)}, what="all six handled after restart")


def test_restarting_with_fewer_workers_drains_the_sessions_left_behind(broker, group_name, start, managers,
                                                                         tmp_path):
    first = start(one_route_router(qos=1, worker_count=3), broker, group_name)
    first.stop_workers()
    first.close()
    out = tmp_path / "records"
    with Publisher(broker) as pub:  # queued by the broker in the three stopped sessions
        for i in range(30):
            pub.publish(f"jobs/n{i}", {"id": str(i), "out": str(out)})

    second = start(one_route_router(qos=1, worker_count=1), broker, group_name)
    wait_until(lambda: handled_ids(out) == {str(i) for i in range(30)}, what="all 30 handled")
    wait_until(lambda: len(second.snapshot().workers) == 1, what="the two leftover sessions drained")
    assert [e for e in second.events_since(0) if "left from an earlier run" in e.message]


def test_scale_down_and_up_under_load_loses_no_message(broker, group_name, start, tmp_path):
    manager = start(one_route_router(qos=1, worker_count=3), broker, group_name)
    out = tmp_path / "records"
    total = 1500
    published = threading.Event()

    def publish_steadily() -> None:
        with Publisher(broker) as pub:
            for i in range(total):
                pub.publish(f"jobs/n{i % 7}", {"id": str(i), "out": str(out)}, wait=False)
                time.sleep(1 / 400)
            pub.client.publish("jobs/last", "{}", qos=1).wait_for_publish(10)
        published.set()

    thread = threading.Thread(target=publish_steadily)
    thread.start()
    wait_until(lambda: len(read_records(out)) > 200, what="load to be flowing")
    manager.scale_route("jobs/{name}", 1)
    assert manager.snapshot().routes[0].desired_workers == 1
    wait_until(lambda: len(manager.snapshot().workers) == 1, what="two workers drained and retired")
    manager.scale_route("jobs/{name}", 2)
    thread.join()
    wait_until(lambda: handled_ids(out) >= {str(i) for i in range(total)}, timeout=30, what="every message handled")
    retired = [e for e in manager.events_since(0) if e.kind == "retired"]
    assert len(retired) == 2 and all("drained" in e.message for e in retired)


RELOADABLE_ROUTES = """
import os
from engine import Router

VERSION = {version!r}
router = Router()


def handle(name, payload, client):
    with open(payload["out"], "a") as out:
        out.write(f"{{os.getpid()}} {{payload['id']}} {{VERSION}}\\n")


router.on("jobs/{{name}}", handle, qos=1, shared=True, worker_count=2)
"""


def test_reload_replaces_the_pools_with_new_code_without_losing_messages(broker, group_name, managers, tmp_path,
                                                                         monkeypatch):
    package = f"reloadable_{group_name}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "jobs.py").write_text(RELOADABLE_ROUTES.format(version="v1"))
    monkeypatch.syspath_prepend(str(tmp_path))
    router = RouterRegistry(package).discover_and_load_routers()
    manager = WorkerManager(router, group_name, router_directory=package, settings=settings_for(broker, group_name))
    managers.append(manager)
    manager.start_workers()
    wait_until(lambda: all_running(manager), what="v1 workers running")
    old_pids = {w.pid for w in manager.snapshot().workers}

    out = tmp_path / "records"
    total = 900
    flowing = threading.Event()

    def publish_steadily() -> None:
        with Publisher(broker) as pub:
            for i in range(total):
                pub.publish(f"jobs/n{i % 5}", {"id": str(i), "out": str(out)}, wait=False)
                if i == 100:
                    flowing.set()
                time.sleep(1 / 300)

    thread = threading.Thread(target=publish_steadily)
    thread.start()
    flowing.wait(10)
    (tmp_path / package / "jobs.py").write_text(RELOADABLE_ROUTES.format(version="v2"))
    manager.reload_routes(RouterRegistry(package).discover_and_load_routers(fresh=True))
    thread.join()

    wait_until(lambda: handled_ids(out) >= {str(i) for i in range(total)}, timeout=30, what="every message handled")
    wait_until(lambda: len(manager.snapshot().workers) == 2, what="the old workers retired")
    assert not {w.pid for w in manager.snapshot().workers} & old_pids
    versions = {pid: version for pid, _, version in read_records(out)}
    assert {versions[w.pid] for w in manager.snapshot().workers if w.pid in versions} <= {"v2"}
    assert "v1" in versions.values() and "v2" in versions.values()
    assert any(e.message == "reload finished" for e in manager.events_since(0))


# ----------------------------------------------------------------------------------------------
# Processes: nothing left behind
# ----------------------------------------------------------------------------------------------

def test_workers_exit_by_themselves_when_the_manager_is_killed(broker, group_name):
    manager = ManagerProcess(broker, group_name, workers=2, handler="tests.engine.workload:record", topic="orphans/+")
    try:
        pids = manager.worker_pids
        assert len(pids) == 3 and all(not process_gone(pid) for pid in pids)
        manager.kill()
        wait_until(lambda: all(process_gone(pid) for pid in pids), timeout=5, what="every worker gone")
    finally:
        manager.close()


def test_stop_workers_leaves_no_process(broker, group_name, start):
    manager = start(one_route_router(worker_count=3), broker, group_name)
    pids = [w.pid for w in manager.snapshot().workers]
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    assert set(pids) <= children
    manager.stop_workers()
    assert all(process_gone(pid) for pid in pids)
    assert not set(pids) & {p.pid for p in psutil.Process().children(recursive=True)}, "reaped, no zombies"


def test_two_managers_with_the_same_settings_are_refused(broker, group_name, start, managers):
    start(one_route_router(), broker, group_name)
    twin = WorkerManager(one_route_router(), group_name, settings=settings_for(broker, group_name))
    managers.append(twin)
    with pytest.raises(ManagerConflict, match=group_name):
        twin.start_workers()


def test_two_managers_of_one_group_on_one_host_run_side_by_side_with_two_manager_ids(
    broker, group_name, start, tmp_path
):
    # Containers or tests on one host: MANAGER_ID names each, in its workers' client ids too.
    first = start(one_route_router(qos=1), broker, group_name, manager_id="edge-a")
    second = start(one_route_router(qos=1), broker, group_name, manager_id="edge-b")
    ids = [w.client_id for m in (first, second) for w in m.snapshot().workers]
    assert "-edge-a-" in ids[0] and "-edge-b-" in ids[1] and len(set(ids)) == 2
    out = tmp_path / "records"
    with Publisher(broker) as pub:
        for i in range(20):
            pub.publish("jobs/x", {"id": f"m{i}", "out": str(out)})
    # One share group: every message handled once, by one manager or the other.
    wait_until(lambda: handled_ids(out) == {f"m{i}" for i in range(20)}, what="20 messages handled")
    wait_until(lambda: sum(m.snapshot().handled for m in (first, second)) == 20, what="both managers' counts")


def test_a_handler_that_cannot_reach_a_worker_is_refused_at_start(broker, group_name, managers):
    router = Router()
    router.on("lambda/+", lambda payload, client: None, shared=True)
    manager = WorkerManager(router, group_name, settings=settings_for(broker, group_name))
    managers.append(manager)
    with pytest.raises(ValueError, match=r"route 'lambda/\+'.*module level"):
        manager.start_workers()


def test_reference_health_monitor_example_runs_unchanged(broker, group_name, start):
    manager = start(one_route_router(worker_count=2), broker, group_name)

    # From RouteMQ's Worker Manager API reference ("Health Monitoring"), body unchanged.
    def get_worker_health(worker_manager):
        workers = worker_manager.workers
        health_status = {
            "total_workers": len(workers),
            "active_workers": worker_manager.get_worker_count(),
            "workers": [],
        }
        for i, worker in enumerate(workers):
            worker_info = {
                "worker_id": i,
                "pid": worker.pid,
                "is_alive": worker.is_alive(),
                "exit_code": worker.exitcode,
            }
            if worker.is_alive():
                try:
                    process = psutil.Process(worker.pid)
                    worker_info.update({
                        "cpu_percent": process.cpu_percent(),
                        "memory_mb": process.memory_info().rss / 1024 / 1024,
                        "create_time": process.create_time(),
                        "status": process.status(),
                    })
                except psutil.NoSuchProcess:
                    worker_info["status"] = "not_found"
            health_status["workers"].append(worker_info)
        return health_status

    health = get_worker_health(manager)
    assert health["total_workers"] == 2 and health["active_workers"] == 2
    assert all(w["is_alive"] and w["exit_code"] is None and w["memory_mb"] > 1 for w in health["workers"])
    manager.stop_workers()
    health = get_worker_health(manager)
    assert health["active_workers"] == 0
    assert [w["exit_code"] for w in health["workers"]] == [0, 0]


# ----------------------------------------------------------------------------------------------
# The broker: outages, credentials, TLS
# ----------------------------------------------------------------------------------------------


def test_workers_reconnect_and_serve_after_the_broker_restarts(make_broker, group_name, start, tmp_path):
    server = make_broker(persistence=True)
    manager = start(one_route_router(qos=1, worker_count=2), server, group_name)
    server.kill()
    wait_until(lambda: manager.snapshot().broker.state != "connected", what="the outage to show")
    assert not any(w.connected for w in manager.snapshot().workers)
    server.start()
    wait_until(lambda: all(w.connected for w in manager.snapshot().workers), timeout=10,
               what="every worker reconnected within 10 s")
    out = tmp_path / "records"
    with Publisher(server) as pub:
        for i in range(10):
            pub.publish("jobs/x", {"id": str(i), "out": str(out)})
    wait_until(lambda: len(handled_ids(out)) == 10, what="messages served after the outage")


def _password_broker(make_broker, tmp_path: Path, user: str, password: str) -> PrivateMosquitto:
    passwords = tmp_path / "passwords"
    passwords.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True)
    os.chmod(passwords, 0o600)
    listener = "listener {port} {host}\nallow_anonymous false\npassword_file " + str(passwords) + "\n"
    return make_broker(listener_config=listener)


def test_bad_credentials_are_reported_not_retried_silently(make_broker, group_name, managers, tmp_path):
    server = _password_broker(make_broker, tmp_path, "worker", "right-password")
    settings = settings_for(server, group_name, username="worker", password=Secret("wrong-pw-42"),
                            restart_backoff=0.05, crash_loop_restarts=3)
    manager = WorkerManager(one_route_router(), group_name, settings=settings)
    managers.append(manager)
    manager.start_workers()
    looping = wait_until(lambda: (w := worker(manager, "jobs/{name}#0")).state is SlotState.CRASH_LOOP and w,
                         what="the auth failure to crash-loop")
    assert "bad credentials" in looping.last_exit
    assert manager.snapshot().broker.state == "auth failed"
    everything = repr(manager.snapshot()) + "".join(e.message for e in manager.events_since(0))
    assert "wrong-pw-42" not in everything


def test_credentials_stay_out_of_command_lines_and_environments(make_broker, group_name, start, tmp_path,
                                                                 monkeypatch):
    server = _password_broker(make_broker, tmp_path, "worker", "s3cret-Pa55")
    monkeypatch.setenv("MQTT_PASSWORD", "s3cret-Pa55")  # as a user would set it for load_settings()
    manager = start(one_route_router(), server, group_name, username="worker", password=Secret("s3cret-Pa55"))
    for info in manager.snapshot().workers:
        process = psutil.Process(info.pid)
        assert "s3cret-Pa55" not in " ".join(process.cmdline())
        assert "s3cret-Pa55" not in " ".join(f"{k}={v}" for k, v in process.environ().items())
    assert "s3cret-Pa55" not in repr(manager.snapshot()) + repr(manager.settings)


def _tls_broker(make_broker, tmp_path: Path):
    import trustme

    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    server_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    server_cert.private_key_pem.write_to_path(str(key_file))
    listener = "listener {port} {host}\nallow_anonymous true\n" + (
        f"cafile {ca_file}\ncertfile {cert_file}\nkeyfile {key_file}\n"
    )
    return make_broker(listener_config=listener), ca_file


def test_tls_with_a_ca_made_by_the_test(make_broker, group_name, start, tmp_path):
    server, ca_file = _tls_broker(make_broker, tmp_path)
    manager = start(one_route_router(qos=1), server, group_name, tls=True, tls_ca_certs=str(ca_file))
    assert manager.snapshot().broker.state == "connected"


def test_tls_with_an_unknown_ca_is_reported(make_broker, group_name, managers, tmp_path):
    import trustme

    server, _ = _tls_broker(make_broker, tmp_path)
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    settings = settings_for(server, group_name, tls=True, tls_ca_certs=str(stranger), restart_backoff=0.05)
    manager = WorkerManager(one_route_router(), group_name, settings=settings)
    managers.append(manager)
    manager.start_workers()
    wait_until(lambda: manager.snapshot().broker.state == "tls error", what="the TLS failure to show")
    exited = wait_until(lambda: worker(manager, "jobs/{name}#0").last_exit, what="the worker to exit")
    assert "TLS" in exited and "certificate" in exited
