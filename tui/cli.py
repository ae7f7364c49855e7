"""``routemq-dash``: load settings and routers, build the WorkerManager, run the dashboard.

main() is three steps, each its own function so that later options (--no-ui, --broker,
--demo, --metrics-port) slot in: build_parser(), build_manager(args), run_ui(manager, args).
Whatever happens, the manager is closed on the way out, so no worker outlives us.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from engine import RouterLoadError, RouterRegistry, SettingsError, WorkerManager, load_settings
from engine.settings import VARIABLES, Settings, configure_logging

from . import __version__

PROG = "routemq-dash"
EXIT_OK = 0
EXIT_CONFIG = 2  # what argparse uses for bad arguments, too


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run a supervised pool of MQTT workers for the routes of a router package, "
        "and watch and steer it from a terminal dashboard.",
    )
    parser.add_argument("--routers", metavar="PKG", default="routers",
                        help="package whose modules define `router` objects (default: %(default)s)")
    parser.add_argument("--env-file", metavar="PATH", default=".env",
                        help="settings file read before the environment; the environment wins (default: %(default)s)")
    parser.add_argument("--group", metavar="NAME", default=None,
                        help="MQTT share group (default: MQTT_GROUP_NAME from the settings)")
    parser.add_argument("--refresh", metavar="SECONDS", type=_positive_seconds, default=1.0,
                        help="seconds between dashboard refreshes (default: %(default)g)")
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


def load_configuration(args: argparse.Namespace) -> Settings:
    """The settings from --env-file and the environment, with --group applied and validated."""
    settings = load_settings(args.env_file)
    if args.group is not None:
        parse_group = next(v.parse for v in VARIABLES if v.field == "group_name")
        try:
            settings = settings.replace(group_name=parse_group(args.group))
        except ValueError as exc:
            raise SettingsError(f"--group {args.group!r} is not valid: {exc}") from None
    return settings


def build_manager(args: argparse.Namespace) -> WorkerManager:
    """Settings, routers, manager. Raises SettingsError or RouterLoadError on bad configuration."""
    settings = load_configuration(args)
    configure_logging(settings.log_level)
    # A console script's sys.path starts at its own directory, not the one the user is in;
    # router packages live in the user's project, as with `python -m`.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    router = RouterRegistry(args.routers).discover_and_load_routers()
    return WorkerManager(router, settings.group_name, router_directory=args.routers, settings=settings)


def run_ui(manager: WorkerManager, args: argparse.Namespace) -> int:
    """Run the dashboard until the operator quits; its exit code."""
    from .app import DashboardApp  # imported here: textual is only needed for the UI

    app = DashboardApp(
        manager,
        refresh=args.refresh,
        start=True,
        theme=os.environ.get("TEXTUAL_THEME"),  # the user's choice wins over our default
        handle_signals=True,
    )
    app.run()
    return app.return_code or EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        manager = build_manager(args)
    except (SettingsError, RouterLoadError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return run_ui(manager, args)
    finally:
        manager.close()


if __name__ == "__main__":
    sys.exit(main())
