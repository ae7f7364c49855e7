"""``routemq-dash``: settings, broker, routers and manager; then the dashboard or the headless runner
(``--observe``: the fleet screen alone, nothing started).

Exit codes: 0 after a normal stop; 2 for a usage or configuration error, reported as one line on
stderr naming the culprit (the variable, the package, the file and line, the option); 1 for a
failure at run time (a broker that cannot be started, an unexpected error). Whatever happens,
everything started here is stopped on the way out: demo traffic, the metrics server, every
worker, and a broker started for the session.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from engine import RouterLoadError, RouterRegistry, SettingsError, WorkerManager, load_settings
from engine.broker import BrokerChoice, BrokerStartError, broker_configured, choose_broker, parse_broker_option
from engine.settings import Settings, configure_logging
from engine.worker_manager import ManagerConflict

from . import __version__
from .engine_port import EnginePort
from .options import override

PROG = "routemq-dash"
EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2  # what argparse uses for bad arguments, too
DEFAULT_DEMO_RATE = 20.0

log = logging.getLogger("routemq.cli")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line naming the culprit, as for every configuration error (not argparse's two)."""
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Run a supervised pool of MQTT workers for the routes of a router package, "
        "and watch and steer it from a terminal dashboard (or headless with --no-ui).",
        epilog="Headless signals: SIGTERM/SIGINT stop gracefully, SIGTTIN/SIGTTOU add/remove one worker "
        "in every shared pool, SIGHUP reloads the router modules. Settings: see .env.example.",
    )
    parser.add_argument(
        "--no-ui",
        action="store_true",
        help="run headless: event and status lines instead of the dashboard (implied when stdout or stderr is "
        "not a terminal)",
    )
    parser.add_argument(
        "--observe",
        action="store_true",
        help="watch the fleet of the share group (every manager's status on the broker, steered with "
        "FLEET_CONTROL_KEY) without starting any worker, broker or manager; needs a terminal",
    )
    parser.add_argument(
        "--routers",
        metavar="PKG",
        default="routers",
        help="package whose modules define `router` objects (default: %(default)s)",
    )
    parser.add_argument(
        "--group", metavar="NAME", default=None, help="MQTT share group (default: MQTT_GROUP_NAME from the settings)"
    )
    parser.add_argument(
        "--manager-id", metavar="ID", default=None,
        help="name of this manager in its workers' client ids and in the fleet (default: MANAGER_ID, else the "
        "host name); two managers of one group on one host need two",
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        type=_whole_number,
        default=None,
        help="start N shared workers in all, split over the shared routes in proportion to "
        "their worker_count (default: each route's worker_count)",
    )
    parser.add_argument(
        "--autoscale",
        metavar="PATTERN=MIN:MAX",
        type=_autoscale_option,
        action="append",
        default=[],
        help="size the pool of the shared route PATTERN on measured load, from MIN to MAX workers "
        "(repeatable; see AUTOSCALE_* in .env.example)",
    )
    parser.add_argument(
        "--env-file",
        metavar="PATH",
        default=".env",
        help="settings file read before the environment; the environment wins (default: %(default)s)",
    )
    parser.add_argument(
        "--broker",
        metavar="HOST[:PORT]|embedded",
        type=_broker_option,
        default=None,
        help="broker to use instead of MQTT_BROKER/MQTT_PORT; 'embedded' runs rumqttd in-process "
        "for this session. Without either, a first run uses localhost:1883 if something "
        "answers there, else starts a private mosquitto (or the embedded broker)",
    )
    parser.add_argument(
        "--demo",
        metavar="RATE",
        nargs="?",
        type=_rate,
        const=DEFAULT_DEMO_RATE,
        default=None,
        help=f"publish synthetic traffic to the example routers at RATE messages/s (default {DEFAULT_DEMO_RATE:g})",
    )
    parser.add_argument(
        "--refresh",
        metavar="SECONDS",
        type=_positive_seconds,
        default=1.0,
        help="seconds between dashboard refreshes (default: %(default)g)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="headless output: text lines or JSON lines (default: %(default)s)",
    )
    parser.add_argument(
        "--metrics-port",
        metavar="PORT",
        type=_port,
        default=None,
        help="serve Prometheus /metrics and /healthz on this port",
    )
    parser.add_argument(
        "--metrics-host", metavar="HOST", default="127.0.0.1", help="address for --metrics-port (default: %(default)s)"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not 0.05 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds from 0.05 to 3600, not {text}")
    return value


def _whole_number(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of workers, not {text!r}")
    return int(text)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected messages per second, not {text!r}") from None
    if not 0 < value <= 100_000:
        raise argparse.ArgumentTypeError(f"expected a rate above 0 and up to 100000 messages/s, not {text}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, not {text!r}")
    return int(text)


def _autoscale_option(text: str) -> tuple[str, int, int]:
    pattern, equals, limits = text.rpartition("=")
    low, colon, high = limits.partition(":")
    if not (equals and pattern and colon and low.isdigit() and high.isdigit()):
        raise argparse.ArgumentTypeError(f"expected PATTERN=MIN:MAX (say sensors/+/temperature=1:8), not {text!r}")
    return pattern, int(low), int(high)


def apply_autoscale(manager: WorkerManager, options: Sequence[tuple[str, int, int]]) -> None:
    """--autoscale: ValueError naming the option when a pattern is no shared route or a range is bad."""
    for pattern, low, high in options:
        try:
            manager.set_autoscale(pattern, low, high)
        except ValueError as exc:
            raise ValueError(f"--autoscale {pattern}={low}:{high}: {exc}") from None


def _broker_option(text: str) -> str:
    if text != "embedded":
        try:
            parse_broker_option(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--broker {text!r}: ")) from None
    return text


# ---------------------------------------------------------------------------------------------
# Building the session
# ---------------------------------------------------------------------------------------------


def load_configuration(args: argparse.Namespace) -> Settings:
    """The settings from --env-file and the environment, with --group and --manager-id applied
    and validated as their variables are."""
    settings = override(load_settings(args.env_file), "group", "group_name", args.group)
    return override(settings, "manager-id", "manager_id", args.manager_id)


def build_manager(
    args: argparse.Namespace, settings: Settings | None = None, broker_kind: str = "external"
) -> WorkerManager:
    """Routers and manager. Raises SettingsError or RouterLoadError on bad configuration."""
    settings = settings if settings is not None else load_configuration(args)
    configure_logging(settings.log_level)
    # A console script's sys.path starts at its own directory, not the one the user is in;
    # router packages live in the user's project, as with `python -m`.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    router = RouterRegistry(args.routers).discover_and_load_routers()
    return WorkerManager(
        router, settings.group_name, router_directory=args.routers, settings=settings, broker_kind=broker_kind
    )


def run_ui(manager: WorkerManager, args: argparse.Namespace) -> int:
    """Run the dashboard until the operator quits; its exit code."""
    return run_app(manager, manager.settings, manager.group_name, args)


def run_app(engine: EnginePort, settings: Settings, group: str, args: argparse.Namespace, observe: bool = False) -> int:
    """The app over ``engine``, with the fleet of ``group`` on the settings' broker (F; the only
    screen when observing), until the operator quits; its exit code."""
    from engine.fleet.observer import FleetObserver

    from .app import DashboardApp  # imported here: textual is only needed for the UI

    fleet = FleetObserver(settings, group).start()
    try:
        app = DashboardApp(
            engine,
            fleet=fleet,
            observe=observe,
            refresh=args.refresh,
            start=False,  # main() started the workers, so that a conflict is an error before the screen opens
            theme=os.environ.get("TEXTUAL_THEME"),  # the user's choice wins over our default
            handle_signals=True,
            freeze_gc=True,
        )
        app.run()
        return app.return_code or EXIT_OK
    finally:
        fleet.close()


def run_headless(manager: WorkerManager, args: argparse.Namespace) -> int:
    from engine.headless import HeadlessRunner

    runner = HeadlessRunner(
        manager,
        log_format=args.log_format,
        level=logging.getLevelName(manager.settings.log_level),
    )
    return runner.run(start=False)


def _log_to_stderr(json_lines: bool) -> None:
    """Headless: library and engine log records that are not engine events go to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(lambda record: not hasattr(record, "event"))  # events are printed by the runner
    if json_lines:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": self.formatTime(record),
                "level": record.levelname.lower(),
                "kind": "log",
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


def why_headless(args: argparse.Namespace) -> str | None:
    """Why the dashboard cannot run although --no-ui was not given (one line to announce), or None.

    stdout that is not a terminal (a pipe, a file, a service) has no screen. Nor has stderr that
    is not one: Textual's driver draws on ``sys.__stderr__`` (textual/drivers/linux_driver.py,
    ``self._file = sys.__stderr__``), so ``routemq-dash 2>/tmp/x`` would write the whole screen
    into the file and leave the terminal blank. Either way the command runs headless, as with
    --no-ui, and says why: its status lines go to stdout, its log records to stderr.
    """
    if args.no_ui:
        return None
    if not sys.stdout.isatty():
        return "stdout is not a terminal: running without the dashboard (as with --no-ui)"
    if not sys.stderr.isatty():
        return ("stderr is not a terminal, and the dashboard draws on stderr: running without the dashboard "
                "(as with --no-ui)")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["ctl"]:
        from .ctl import main as ctl_main  # `routemq-dash ctl ...`: the fleet's command line

        return ctl_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.observe:
        from .observe import main as observe_main  # the fleet screen alone

        return observe_main(args)
    return run_session(args)


def run_session(args: argparse.Namespace) -> int:
    """Broker, routers, manager and what goes with them; then the dashboard or the headless runner."""
    no_screen = why_headless(args)
    headless = args.no_ui or no_screen is not None
    if headless:
        _log_to_stderr(args.log_format == "json")
    with contextlib.ExitStack() as cleanup:
        try:
            settings = load_configuration(args)
            choice: BrokerChoice = choose_broker(settings, args.broker, broker_configured(args.env_file))
            cleanup.callback(choice.stop)
            manager = build_manager(args, choice.settings, choice.kind)
            cleanup.callback(manager.close)
            manager.announce(choice.note)
            if no_screen is not None:
                manager.announce(no_screen)
            if args.metrics_port is not None:
                from engine.metrics import MetricsServer

                try:
                    metrics = MetricsServer(manager, args.metrics_port, args.metrics_host).start()
                except OSError as exc:
                    raise SettingsError(f"--metrics-port {args.metrics_port}: cannot listen there: {exc}") from None
                cleanup.callback(metrics.stop)
                manager.announce(f"serving /metrics and /healthz on http://{metrics.address}")
            if args.demo is not None:
                from engine.demo import DemoTraffic

                demo = DemoTraffic(choice.settings, args.demo).start()
                cleanup.callback(demo.stop)
                manager.announce(f"demo traffic: {args.demo:g} messages/s to the example routes")
            apply_autoscale(manager, args.autoscale)
            manager.start_workers(args.workers)
        except (SettingsError, RouterLoadError, ManagerConflict, ValueError) as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        except BrokerStartError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return EXIT_RUNTIME
        try:
            return run_headless(manager, args) if headless else run_ui(manager, args)
        except Exception as exc:  # anything else is a failure at run time; the cleanup still runs
            log.exception("unexpected failure")
            print(f"{PROG}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_RUNTIME
    return EXIT_OK  # not reached: every path above returns


if __name__ == "__main__":
    sys.exit(main())
