"""The routemq-dash command: arguments, configuration errors, and the manager always closed."""

from __future__ import annotations

import argparse
import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from engine.settings import VARIABLES, Settings
from tui import __version__, cli, observe
from tui.app import DashboardApp
from tui.no_engine import NoEngine

from .fixtures import FakeManager

SCRIPT = Path(sys.executable).with_name("routemq-dash")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No MQTT_* / WORKER_* settings from the machine, and no .env from the working directory."""
    for variable in VARIABLES:
        monkeypatch.delenv(variable.env, raising=False)
    monkeypatch.chdir(tmp_path)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("routemq-dash: error: ")
    return lines[0]


class TestArguments:
    def test_defaults(self):
        args = cli.build_parser().parse_args([])
        assert (args.routers, args.env_file, args.group, args.refresh) == ("routers", ".env", None, 1.0)

    def test_every_option(self):
        args = cli.build_parser().parse_args(
            ["--routers", "myapp.routes", "--env-file", "prod.env", "--group", "g1", "--refresh", "0.5"]
        )
        assert (args.routers, args.env_file, args.group, args.refresh) == ("myapp.routes", "prod.env", "g1", 0.5)

    @pytest.mark.parametrize("value", ["0", "-1", "soon"])
    def test_refresh_must_be_a_positive_number(self, value, capsys):
        with pytest.raises(SystemExit) as exited:
            cli.build_parser().parse_args(["--refresh", value])
        assert exited.value.code == 2
        assert "--refresh" in capsys.readouterr().err

    def test_version(self, capsys):
        with pytest.raises(SystemExit) as exited:
            cli.main(["--version"])
        assert exited.value.code == 0
        assert capsys.readouterr().out.strip() == f"routemq-dash {__version__}"


class TestAutoscaleOption:
    def test_patterns_and_ranges_are_parsed_and_repeatable(self):
        args = cli.build_parser().parse_args(["--autoscale", "sensors/+/temperature=1:8", "--autoscale", "a=b=2:3"])
        assert args.autoscale == [("sensors/+/temperature", 1, 8), ("a=b", 2, 3)]

    @pytest.mark.parametrize("value", ["sensors/+/temperature", "x=1", "x=1-8", "=1:2", "x=one:2", "x=1:-2"])
    def test_a_malformed_option_is_one_line_and_exit_2(self, value, capsys):
        with pytest.raises(SystemExit) as exited:
            cli.build_parser().parse_args(["--autoscale", value])
        assert exited.value.code == 2
        line = one_error_line(capsys)
        assert "--autoscale" in line and "PATTERN=MIN:MAX" in line

    def test_it_turns_autoscaling_on_for_the_route(self):
        args = cli.build_parser().parse_args(["--autoscale", "sensors/+/temperature=2:6"])
        with cli.build_manager(args) as manager:
            cli.apply_autoscale(manager, args.autoscale)
            route = next(r for r in manager.snapshot().routes if r.topic == "sensors/+/temperature")
            assert (route.autoscale_min, route.autoscale_max, route.desired_workers) == (2, 6, 2)

    @pytest.mark.parametrize(
        ("value", "says"),
        [
            ("no/such/+=1:3", "no shared route 'no/such/+'"),
            ("devices/{device_id}/commands/{command}=1:3", "no shared route"),  # served by the main worker
            ("sensors/+/temperature=3:2", "autoscale range 3-2 is not valid"),
            ("sensors/+/temperature=0:2", "autoscale range 0-2 is not valid"),
        ],
    )
    def test_a_route_that_cannot_autoscale_is_named_in_one_line(self, value, says):
        args = cli.build_parser().parse_args(["--autoscale", value])
        with cli.build_manager(args) as manager, pytest.raises(ValueError) as refused:
            cli.apply_autoscale(manager, args.autoscale)
        message = str(refused.value)
        assert message.startswith(f"--autoscale {value}: ") and says in message and "\n" not in message


class TestConfigurationErrors:
    def test_an_invalid_setting_is_one_line_and_exit_2(self, tmp_path, capsys):
        (tmp_path / "bad.env").write_text("MQTT_PORT=eighty\n")
        assert cli.main(["--env-file", "bad.env"]) == 2
        line = one_error_line(capsys)
        assert "MQTT_PORT='eighty'" in line and "bad.env" in line

    def test_an_invalid_group_is_one_line_and_exit_2(self, capsys):
        assert cli.main(["--group", "no spaces allowed"]) == 2
        assert "--group 'no spaces allowed' is not valid" in one_error_line(capsys)

    def test_an_invalid_manager_id_is_one_line_and_exit_2(self, capsys):
        assert cli.main(["--manager-id", "edge/a"]) == 2
        line = one_error_line(capsys)
        assert "--manager-id 'edge/a' is not valid" in line and "one topic level" in line

    def test_a_missing_router_package_is_one_line_and_exit_2(self, capsys):
        assert cli.main(["--routers", "no_such_routers_pkg"]) == 2
        assert "no_such_routers_pkg" in one_error_line(capsys)

    def test_a_broken_router_module_in_the_working_directory_is_one_line_and_exit_2(self, tmp_path, capsys):
        package = tmp_path / "brokenroutes"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "bad.py").write_text("from engine import Router\nrouter = Router(\n")
        try:
            assert cli.main(["--routers", "brokenroutes"]) == 2
        finally:
            sys.modules.pop("brokenroutes", None)
            sys.modules.pop("brokenroutes.bad", None)
        line = one_error_line(capsys)
        assert "brokenroutes" in line and "SyntaxError" in line

    def test_the_console_script_reports_configuration_errors_the_same_way(self, tmp_path):
        (tmp_path / "bad.env").write_text("WORKER_GRACEFUL_TIMEOUT=forever\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "WORKER_"))}
        done = subprocess.run([str(SCRIPT), "--env-file", "bad.env"], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=60)
        assert done.returncode == 2
        assert done.stderr.startswith("routemq-dash: error: WORKER_GRACEFUL_TIMEOUT='forever'")
        assert done.stderr.count("\n") == 1


class _Stream:
    """A standard stream that is, or is not, a terminal."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.written: list[str] = []

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.written.append(text)
        return len(text)

    def flush(self) -> None:
        pass


class TestWithoutATerminal:
    """The dashboard needs a terminal on stdout (to be seen) and on stderr (where Textual draws)."""

    def run(self, monkeypatch: pytest.MonkeyPatch, *, stdout: bool, stderr: bool, argv: list[str] | None = None
            ) -> tuple[FakeManager, list[str]]:
        manager = FakeManager()
        ran: list[str] = []
        monkeypatch.setattr(cli.sys, "stdout", _Stream(stdout))
        monkeypatch.setattr(cli.sys, "stderr", _Stream(stderr))
        monkeypatch.setattr(cli, "_log_to_stderr", lambda json_lines: None)
        monkeypatch.setattr(cli, "build_manager", lambda *args: manager)
        monkeypatch.setattr(cli, "run_ui", lambda manager, args: ran.append("ui") or 0)
        monkeypatch.setattr(cli, "run_headless", lambda manager, args: ran.append("headless") or 0)
        # A broker given: nothing is started for the session.
        assert cli.main([*(argv or []), "--broker", "127.0.0.1:1883"]) == 0
        return manager, ran

    def announced(self, manager: FakeManager) -> list[str]:
        return [str(args[0]) for args in manager.called("announce")]

    def test_a_terminal_on_both_runs_the_dashboard(self, monkeypatch):
        manager, ran = self.run(monkeypatch, stdout=True, stderr=True)
        assert ran == ["ui"]
        assert not any("not a terminal" in line for line in self.announced(manager))

    def test_stderr_redirected_runs_headless_and_says_why_in_one_line(self, monkeypatch):
        manager, ran = self.run(monkeypatch, stdout=True, stderr=False)
        assert ran == ["headless"]
        why = [line for line in self.announced(manager) if "not a terminal" in line]
        assert why == ["stderr is not a terminal, and the dashboard draws on stderr: running without the "
                       "dashboard (as with --no-ui)"]

    def test_stdout_redirected_says_so_first(self, monkeypatch):
        manager, ran = self.run(monkeypatch, stdout=False, stderr=False)
        assert ran == ["headless"]
        assert [line for line in self.announced(manager) if "not a terminal" in line] == [
            "stdout is not a terminal: running without the dashboard (as with --no-ui)"]

    def test_no_ui_asked_for_needs_no_reason(self, monkeypatch):
        manager, ran = self.run(monkeypatch, stdout=True, stderr=False, argv=["--no-ui"])
        assert ran == ["headless"]
        assert not any("not a terminal" in line for line in self.announced(manager))

    def test_textual_still_draws_on_stderr(self):
        """Why stderr must be a terminal: if Textual's driver ever draws elsewhere, revisit why_headless()."""
        from textual.drivers.linux_driver import LinuxDriver

        assert "self._file = sys.__stderr__" in inspect.getsource(LinuxDriver.__init__)


class TestLifecycle:
    def test_build_manager_gives_the_engine_the_routers_group_and_settings(self, monkeypatch):
        built = {}

        def fake_manager(router, group_name, router_directory, *, settings, broker_kind):
            built.update(router=router, group=group_name, directory=router_directory, settings=settings)
            return FakeManager()

        monkeypatch.setattr(cli, "WorkerManager", fake_manager)
        monkeypatch.setenv("MQTT_PORT", "18830")
        cli.build_manager(cli.build_parser().parse_args(["--group", "edge-7", "--manager-id", "edge-7b"]))
        assert {route.topic for route in built["router"].routes} == {
            "sensors/+/temperature", "sensors/{sensor_id}/humidity", "devices/{device_id}/commands/{command}",
        }
        assert built["group"] == "edge-7" == built["settings"].group_name
        assert built["settings"].manager_name == "edge-7b"
        assert built["directory"] == "routers"
        assert built["settings"].port == 18830

    def test_the_manager_is_closed_after_a_normal_stop(self, monkeypatch):
        manager = FakeManager()
        monkeypatch.setattr(cli, "build_manager", lambda *args: manager)
        monkeypatch.setattr(cli, "run_ui", lambda manager, args: 0)
        monkeypatch.setattr(cli, "run_headless", lambda manager, args: 0)
        assert cli.main([]) == 0
        assert manager.called("close") == [()]

    def test_the_manager_is_closed_when_the_ui_fails(self, monkeypatch):
        manager = FakeManager()

        def crash(manager: FakeManager, args: argparse.Namespace) -> int:
            raise KeyboardInterrupt

        monkeypatch.setattr(cli, "build_manager", lambda *args: manager)
        monkeypatch.setattr(cli, "run_ui", crash)
        monkeypatch.setattr(cli, "run_headless", crash)
        with pytest.raises(KeyboardInterrupt):
            cli.main([])
        assert manager.called("close") == [()]


class _Observer:
    """FleetObserver as run_ui and run_observer use it: made, started, closed."""

    made: ClassVar[list[_Observer]] = []

    def __init__(self, settings: Settings, group: str) -> None:
        self.settings, self.group = settings, group
        self.started = self.closed = False
        self.made.append(self)

    def start(self) -> _Observer:
        self.started = True
        return self

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def observers(monkeypatch: pytest.MonkeyPatch) -> list[_Observer]:
    """FleetObserver replaced by _Observer: the observers made."""
    _Observer.made = []
    monkeypatch.setattr("engine.fleet.observer.FleetObserver", _Observer)
    return _Observer.made


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[DashboardApp]:
    """DashboardApp.run replaced by a note of the app it would have run."""
    apps: list[DashboardApp] = []
    monkeypatch.setattr(DashboardApp, "run", lambda self, *args, **kwargs: apps.append(self))
    return apps


class TestObserve:
    """`routemq-dash --observe`: the fleet screen alone, nothing started but the observer's connection."""

    @pytest.fixture(autouse=True)
    def nothing_started(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def never(*args: object, **kwargs: object) -> None:
            raise AssertionError("--observe must start no broker, router or manager")

        monkeypatch.setattr(cli, "choose_broker", never)
        monkeypatch.setattr(cli, "build_manager", never)
        monkeypatch.setattr(cli, "run_session", never)

    def terminal(self, monkeypatch: pytest.MonkeyPatch, tty: bool = True) -> _Stream:
        stderr = _Stream(tty)
        monkeypatch.setattr(cli.sys, "stdout", _Stream(tty))
        monkeypatch.setattr(cli.sys, "stderr", stderr)
        return stderr

    def observed(self, monkeypatch: pytest.MonkeyPatch, *argv: str) -> Settings:
        self.terminal(monkeypatch)
        seen: list[Settings] = []
        monkeypatch.setattr(observe, "run_observer", lambda settings, args: seen.append(settings) or 0)
        assert cli.main(["--observe", *argv]) == 0
        return seen[0]

    @pytest.mark.parametrize(("argv", "tty"), [([], False), (["--no-ui"], True)])
    def test_without_a_terminal_it_is_one_line_and_exit_2(self, monkeypatch, argv, tty):
        stderr = self.terminal(monkeypatch, tty)
        assert cli.main(["--observe", *argv]) == 2
        assert "".join(stderr.written) == (
            "routemq-dash: error: --observe needs a terminal; use `routemq-dash ctl status` to print the fleet\n")

    def test_the_broker_is_used_as_given_with_the_group(self, monkeypatch):
        settings = self.observed(monkeypatch, "--broker", "mqtt.example:8883", "--group", "prod")
        assert (settings.broker, settings.port, settings.group_name) == ("mqtt.example", 8883, "prod")

    def test_without_a_broker_it_uses_the_settings_never_a_broker_of_its_own(self, monkeypatch):
        assert self.observed(monkeypatch).broker_address == Settings().broker_address
        monkeypatch.setenv("MQTT_BROKER", "prod-mqtt")
        assert self.observed(monkeypatch).broker == "prod-mqtt"

    @pytest.mark.parametrize(
        ("argv", "culprit"),
        [
            (["--demo"], "--demo"),
            (["--workers", "2"], "--workers"),
            (["--metrics-port", "9100"], "--metrics-port"),
            (["--autoscale", "a/+=1:2"], "--autoscale"),
            (["--broker", "embedded"], "--broker embedded"),
            (["--group", "no spaces"], "--group 'no spaces'"),
        ],
    )
    def test_what_would_start_something_or_is_invalid_is_one_line_and_exit_2(self, monkeypatch, argv, culprit):
        stderr = self.terminal(monkeypatch)
        assert cli.main(["--observe", *argv]) == 2
        written = "".join(stderr.written)
        assert written.startswith("routemq-dash: error: ") and culprit in written and written.count("\n") == 1

    def test_it_runs_the_app_observing_with_an_observer_it_closes(self, observers, ran):
        settings = Settings(broker="mqtt.example", group_name="prod")
        args = cli.build_parser().parse_args(["--observe", "--refresh", "2"])
        assert observe.run_observer(settings, args) == 0
        [observer], [app] = observers, ran
        assert (observer.settings, observer.group, observer.started, observer.closed) == (settings, "prod", True, True)
        assert app.observe and app.fleet is observer and app.refresh_interval == 2
        assert isinstance(app.manager, NoEngine) and not app.start_on_mount


def test_the_dashboard_watches_the_fleet_of_its_managers_group_and_closes_it(observers, ran):
    manager = FakeManager()
    assert cli.run_ui(manager, cli.build_parser().parse_args([])) == 0  # type: ignore[arg-type]
    [observer], [app] = observers, ran
    assert (observer.settings, observer.group, observer.started, observer.closed) == (
        manager.settings, manager.group_name, True, True)
    assert app.fleet is observer and not app.observe
