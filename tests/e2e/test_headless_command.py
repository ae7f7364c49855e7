"""The real `routemq-dash --no-ui` command on a real Mosquitto: serve, signals, exit codes, metrics."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from engine.broker import free_port
from tests.support import Publisher, http_get, process_gone, wait_until

pytestmark = pytest.mark.e2e


def test_serves_scales_reloads_and_stops_cleanly(broker, group_name, project, run):
    metrics_port = free_port()
    app = run("--routers", f"cmdroutes_{group_name}", "--broker", f"{broker.host}:{broker.port}",
              "--group", group_name, "--metrics-port", str(metrics_port))
    wait_until(lambda: app.saw("status: 1/1 workers serving") and app.saw("connected"), what="one worker serving")
    assert app.saw("stdout is not a terminal"), "headless is implied without a terminal, and said"
    _, body = wait_until(lambda: (r := http_get(f"http://127.0.0.1:{metrics_port}/healthz"))[0] == 200 and r,
                         what="healthy")
    assert body.strip() == "ok"

    out = project / "records"
    with Publisher(broker) as pub:
        for i in range(20):
            pub.publish(f"cmd/n{i}", {"id": str(i), "out": str(out)})
    wait_until(lambda: out.exists() and len(out.read_text().splitlines()) == 20, what="20 messages handled")
    counted = 'routemq_route_messages_handled_total{filter="cmd/+",route="cmd/{name}",shared="true"} 20.0'
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    wait_until(lambda: counted in http_get(metrics)[1], what="20 counted in /metrics")

    app.process.send_signal(signal.SIGTTIN)
    wait_until(lambda: app.saw("status: 2/2 workers serving"), what="a second worker after SIGTTIN")
    app.process.send_signal(signal.SIGTTOU)
    wait_until(lambda: app.saw("scaled from 2 to 1"), what="back to one after SIGTTOU")

    before = app.worker_pids()
    app.process.send_signal(signal.SIGHUP)
    wait_until(lambda: app.saw("reload finished"), what="the reload")
    wait_until(lambda: len(app.worker_pids()) == 1 and not app.worker_pids() & before,
               what="the worker replaced by a new process")

    children = app.worker_pids()
    assert app.stop(signal.SIGTERM) == 0
    assert app.saw("all workers stopped")
    # A stop that went as asked ends on information, not on a warning about the workers it stopped.
    assert " INFO " in app.lines[-1] and "status: 0/1 workers serving" in app.lines[-1], app.lines[-3:]
    assert all(process_gone(pid) for pid in children)
    assert app.errors == [], app.errors


def test_the_status_lines_show_a_broker_outage_while_it_lasts(make_broker, group_name, run):
    server = make_broker(persistence=True)
    app = run("--no-ui", "--routers", f"cmdroutes_{group_name}", "--broker", f"{server.host}:{server.port}",
              "--group", group_name)
    wait_until(lambda: app.saw("status: 1/1 workers serving") and app.saw("connected"), what="serving")
    server.kill()
    outage = wait_until(lambda: next((line for line in app.lines if "status:" in line and "unreachable" in line),
                                     None), what="a status line showing the outage")
    # The worker lives on, reconnecting, but does not serve: the count agrees with /healthz.
    assert "WARNING" in outage and "status: 0/1 workers serving (1 live)" in outage, outage
    shown = len(app.lines)
    server.start()
    wait_until(lambda: any("status:" in line and line.endswith("connected") for line in app.lines[shown:]),
               what="a status line showing the broker back")
    assert app.stop(signal.SIGTERM) == 0


def test_sigint_stops_gracefully_with_json_lines(broker, group_name, run):
    app = run("--no-ui", "--routers", f"cmdroutes_{group_name}", "--broker", f"{broker.host}:{broker.port}",
              "--group", group_name, "--log-format", "json")
    wait_until(lambda: any(r.get("kind") == "status" and r.get("live") == 1 for r in app.json_lines()),
               what="a JSON status line with one live worker")
    assert app.stop(signal.SIGINT) == 0
    kinds = [r["kind"] for r in app.json_lines()]
    assert "stopped" in kinds
    assert not app.saw("stdout is not a terminal"), "--no-ui was explicit"


@pytest.mark.parametrize(
    ("args", "env", "culprit"),
    [
        (["--workers", "many"], {}, "argument --workers: expected a whole number of workers, not 'many'"),
        ([], {"MQTT_PORT": "eighty"}, "MQTT_PORT='eighty' (from the environment) is not valid"),
        (["--routers", "no_such_package_here"], {}, "router package 'no_such_package_here' not found"),
        (["--broker", "host:99999"], {}, "argument --broker"),
        (["--broker", "embedded"], {"MQTT_PROTOCOL": "5"}, "MQTT_PROTOCOL=3.1.1"),
    ],
    ids=["bad-option", "bad-setting", "missing-package", "bad-broker", "embedded-with-mqtt5"],
)
def test_bad_configuration_exits_2_with_one_line(broker, run, args, env, culprit):
    app = run("--no-ui", "--broker", f"{broker.host}:{broker.port}", *args, env=env)
    assert app.wait() == 2
    assert len(app.errors) == 1, app.errors
    assert app.errors[0].startswith("routemq-dash: error: ") and culprit in app.errors[0]


def test_a_broken_router_module_exits_2_naming_file_and_line(broker, group_name, project, run):
    (project / f"cmdroutes_{group_name}" / "broken.py").write_text("from engine import Router\n\nrouter = Router(\n")
    app = run("--no-ui", "--routers", f"cmdroutes_{group_name}", "--broker", f"{broker.host}:{broker.port}")
    assert app.wait() == 2
    assert len(app.errors) == 1 and f"cmdroutes_{group_name}/broken.py:3" in app.errors[0]


def test_first_run_without_a_broker_starts_a_private_mosquitto_and_stops_it(group_name, run):
    # No MQTT_BROKER and nothing listening on the port: the command brings its own broker.
    port = free_port()
    app = run("--no-ui", "--demo", "40", "--group", group_name, env={"MQTT_PORT": str(port)})
    wait_until(lambda: app.saw("started a private mosquitto"), what="the private broker announced")
    wait_until(lambda: any("status:" in line and " 0 handled" not in line for line in app.lines),
               timeout=30, what="demo traffic handled")
    broker_pids = [p for p in app.worker_pids() if b"mosquitto" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(broker_pids) == 1
    assert app.stop(signal.SIGTERM) == 0
    assert process_gone(broker_pids[0])


def test_first_run_with_the_embedded_broker_serves_the_demo(group_name, run):
    # The example routers (routers/) import from the repository, which is on PYTHONPATH.
    app = run("--no-ui", "--broker", "embedded", "--demo", "40", "--group", group_name)
    wait_until(lambda: app.saw("embedded rumqttd"), what="the embedded broker announced")
    wait_until(lambda: any("handled" in line and " 0 handled" not in line for line in app.lines if "status:" in line),
               timeout=30, what="demo traffic handled")
    assert app.stop(signal.SIGTERM) == 0
    assert app.saw("all workers stopped")


STALLING_ROUTES = """
from engine import Router
from tests.e2e.hostile_handlers import record, stop_mid_frame

router = Router()
router.on("stall/+", stop_mid_frame, qos=1, shared=True)
router.on("steady/+", record, qos=1, shared=True)
"""


def test_a_worker_stopped_mid_message_neither_freezes_metrics_nor_delays_sigterm(
    broker, group_name, project, run, tmp_path
):
    (project / f"cmdroutes_{group_name}" / "jobs.py").write_text(STALLING_ROUTES)
    metrics_port = free_port()
    app = run("--no-ui", "--routers", f"cmdroutes_{group_name}", "--broker", f"{broker.host}:{broker.port}",
              "--group", group_name, "--metrics-port", str(metrics_port),
              env={"WORKER_GRACEFUL_TIMEOUT": "2", "WORKER_HANG_TIMEOUT": "600"})
    wait_until(lambda: len(app.worker_pids()) == 2, what="two workers")
    wait_until(lambda: http_get(f"http://127.0.0.1:{metrics_port}/healthz")[0] == 200, what="healthy")
    out = tmp_path / "out"
    with Publisher(broker) as publisher:
        publisher.publish("stall/1", {"out": str(out)})
    wait_until(lambda: out.exists() and len(out.read_text().split()) == 2, what="the worker stopping itself")
    stopped = int(out.read_text().split()[1])
    wait_until(lambda: "T (stopped)" in Path(f"/proc/{stopped}/status").read_text(), what="it stopped")
    # Another pool's worker dies meanwhile: /metrics shows it replaced (the supervisor is not stuck).
    steady = next(pid for pid in app.worker_pids() if pid != stopped)
    os.kill(steady, signal.SIGKILL)
    restarted = 'routemq_worker_restarts_total{route="steady/+",slot="steady/+#0"} 1.0'
    wait_until(lambda: restarted in http_get(f"http://127.0.0.1:{metrics_port}/metrics")[1],
               what="/metrics showing the restart")
    # SIGTERM: the stopped worker cannot finish; it is killed at the graceful timeout.
    assert app.stop(signal.SIGTERM) == 0
    assert process_gone(stopped)
    assert app.worker_pids() == set()
