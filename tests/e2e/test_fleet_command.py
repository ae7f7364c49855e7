"""The fleet from the command line, on a real broker: three real `routemq-dash --no-ui` managers
of one group, seen and steered by `routemq-dash ctl`."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import COMMAND
from tests.support import wait_until

pytestmark = pytest.mark.e2e

KEY = "fleet-operators-key"


def ctl(project: Path, environment: dict[str, str], broker, group: str, *args: str,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`routemq-dash ctl ARGS` against ``broker`` and ``group``, with the operators' key."""
    command = [str(COMMAND), "ctl", "--broker", f"{broker.host}:{broker.port}", "--group", group, *args]
    return subprocess.run(command, cwd=project, env={**environment, "FLEET_CONTROL_KEY": KEY, **(env or {})},
                          capture_output=True, text=True, timeout=120)


def fleet(project, environment, broker, group) -> dict[str, dict]:
    result = ctl(project, environment, broker, group, "status", "--json")
    assert result.returncode == 0, result.stderr
    return {m["manager"]: m for m in json.loads(result.stdout)}


def test_three_headless_managers_are_seen_and_steered_one_at_a_time_by_ctl(
    broker, group_name, project, environment, run
):
    def manager(name: str, key: str | None) -> object:
        env = {"FLEET_STATUS_INTERVAL": "0.5", **({"FLEET_CONTROL_KEY": key} if key else {})}
        return run("--no-ui", "--routers", f"cmdroutes_{group_name}", "--broker", f"{broker.host}:{broker.port}",
                   "--group", group_name, "--manager-id", name, env=env)

    apps = {"edge-1": manager("edge-1", KEY), "edge-2": manager("edge-2", KEY), "edge-3": manager("edge-3", None)}
    seen = wait_until(
        lambda: (f := fleet(project, environment, broker, group_name)) and len(f) == 3
        and all(m["state"] == "online" and m["live_workers"] == 1 for m in f.values()) and f,
        timeout=30, what="three managers online with one worker each")
    assert set(seen) == set(apps) and {m["desired_workers"] for m in seen.values()} == {1}
    table = ctl(project, environment, broker, group_name, "status")
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:3] == ["MANAGER", "HOST", "STATE"]
    assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == ["edge-1", "edge-2", "edge-3"]

    # A signed scale changes exactly that manager's pool.
    scaled = ctl(project, environment, broker, group_name, "--manager", "edge-2", "scale", "cmd/{name}", "3")
    assert (scaled.returncode, scaled.stdout) == (0, "edge-2: ok\n"), scaled.stderr
    sizes = wait_until(
        lambda: (f := fleet(project, environment, broker, group_name))["edge-2"]["live_workers"] == 3 and f,
        what="edge-2 at three workers")
    assert [sizes[m]["desired_workers"] for m in ("edge-1", "edge-2", "edge-3")] == [1, 3, 1]
    wait_until(lambda: apps["edge-2"].saw("remote command"), what="edge-2 saying it carried out a remote command")
    assert not apps["edge-1"].saw("remote command")

    # To every online manager: the one without a key refuses, and says why; exit 1.
    everyone = ctl(project, environment, broker, group_name, "restart-dead")
    assert everyone.returncode == 1
    assert sorted(everyone.stdout.splitlines()) == [
        "edge-1: ok", "edge-2: ok",
        "edge-3: refused: remote control is disabled (FLEET_CONTROL_KEY is not set)"]

    # The wrong key is refused and changes nothing.
    wrong = ctl(project, environment, broker, group_name, "--manager", "edge-1", "scale", "cmd/{name}", "4",
                env={"FLEET_CONTROL_KEY": "not-the-key-of-the-operators"})
    assert (wrong.returncode, wrong.stdout) == (1, "edge-1: refused: bad signature\n")
    wait_until(lambda: apps["edge-1"].saw("refused: bad signature"), what="the refusal in edge-1's output")
    said = [line for a in apps.values() for line in a.lines + a.errors]
    assert not any("not-the-key-of-the-operators" in line or KEY in line for line in said), "no key in any output"
    # A manager's own check: no such route.
    no_route = ctl(project, environment, broker, group_name, "--manager", "edge-1", "scale", "nowhere/+", "2")
    assert no_route.returncode == 1 and no_route.stdout.startswith("edge-1: refused: scale: no shared route")
    assert [m["desired_workers"] for m in fleet(project, environment, broker, group_name).values()] == [1, 3, 1]

    # Nobody answers for a manager that does not exist: exit 1 after the timeout, saying so.
    ghost = ctl(project, environment, broker, group_name, "--manager", "ghost", "--timeout", "1", "restart-dead")
    assert (ghost.returncode, ghost.stdout) == (1, "ghost: no reply within 1 s (no status seen from it)\n")

    # Every other verb, on edge-1, each answered only once it is done.
    def on_edge_1(*words: str) -> None:
        result = ctl(project, environment, broker, group_name, "--manager", "edge-1", *words)
        assert (result.returncode, result.stdout) == (0, "edge-1: ok\n"), (words, result.stdout, result.stderr)

    before = apps["edge-1"].worker_pids()
    on_edge_1("reload")  # re-imports the package and replaces the worker: a new process
    wait_until(lambda: len(apps["edge-1"].worker_pids()) == 1 and not apps["edge-1"].worker_pids() & before,
               what="edge-1's worker replaced by the reload")
    on_edge_1("autoscale", "cmd/{name}", "1", "3")
    wait_until(lambda: apps["edge-1"].saw("autoscale"), what="edge-1 saying its pool is autoscaled")
    on_edge_1("autoscale", "cmd/{name}", "off")
    before = apps["edge-1"].worker_pids()
    on_edge_1("restart-worker", "cmd/{name}#1")
    wait_until(lambda: len(apps["edge-1"].worker_pids()) == 1 and not apps["edge-1"].worker_pids() & before,
               what="edge-1's worker restarted")
    on_edge_1("stop")
    assert fleet(project, environment, broker, group_name)["edge-1"]["live_workers"] == 0
    assert apps["edge-1"].worker_pids() == set() and apps["edge-1"].process.poll() is None, "stopped, still there"
    on_edge_1("start")
    wait_until(lambda: fleet(project, environment, broker, group_name)["edge-1"]["live_workers"] == 1,
               what="edge-1 serving again")

    # A manager stopped cleanly reads offline at once (no waiting for a will).
    assert apps["edge-3"].stop(signal.SIGTERM) == 0
    assert fleet(project, environment, broker, group_name)["edge-3"]["state"] == "offline"


@pytest.mark.parametrize(
    ("args", "culprit"),
    [
        (["bogus"], "unknown verb 'bogus'"),
        (["scale", "cmd/{name}"], "scale takes ROUTE COUNT"),
        (["scale", "cmd/{name}", "zero"], "COUNT must be a whole number"),
        (["--manager", "a/+", "stop"], "--manager 'a/+' is not valid"),
        (["--timeout", "-1", "stop"], "--timeout -1"),
    ],
)
def test_ctl_usage_errors_exit_2_with_one_line(broker, group_name, project, environment, args, culprit):
    result = ctl(project, environment, broker, group_name, *args)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and culprit in result.stderr, result.stderr


def test_ctl_without_a_key_cannot_sign_and_says_so(broker, group_name, project, environment):
    result = ctl(project, environment, broker, group_name, "stop", env={"FLEET_CONTROL_KEY": ""})
    assert result.returncode == 2 and "FLEET_CONTROL_KEY is not set" in result.stderr
