"""``routemq-dash --observe``: the fleet screen alone (an operator's laptop watching production).

Nothing is started but the observer's own connection to the broker: no worker, no manager and,
unlike a first run of the dashboard, never a broker. Leaving stops nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys

from engine.setting_values import SettingsError
from engine.settings import Settings, configure_logging

from .cli import EXIT_CONFIG, EXIT_RUNTIME, PROG, load_configuration, run_app, why_headless
from .options import with_broker

log = logging.getLogger("routemq.cli")

OBSERVE_NEEDS_A_TERMINAL = "--observe needs a terminal; use `routemq-dash ctl status` to print the fleet"
# Options that start something, which an observer never does.
_NOT_OBSERVING = (("workers", "--workers"), ("autoscale", "--autoscale"), ("demo", "--demo"),
                  ("metrics_port", "--metrics-port"))


def observer_settings(args: argparse.Namespace) -> Settings:
    """The settings of --observe: --env-file and the environment, --group, and --broker used as given.

    Never choose_broker(): its first-run fallback starts a private broker, and an observer of
    production must not watch one of its own. SettingsError naming the option otherwise.
    """
    for option, flag in _NOT_OBSERVING:
        if getattr(args, option) not in (None, []):
            raise SettingsError(f"--observe starts no worker: {flag} does not go with it")
    if args.broker == "embedded":
        raise SettingsError("--observe watches an existing broker: --broker embedded would start one")
    return with_broker(load_configuration(args), args.broker)


def main(args: argparse.Namespace) -> int:
    """``routemq-dash --observe``: the fleet screen until the operator leaves; nothing started but
    the observer's own connection to the broker."""
    if args.no_ui or why_headless(args) is not None:  # the fleet screen is all it shows
        print(f"{PROG}: error: {OBSERVE_NEEDS_A_TERMINAL}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        settings = observer_settings(args)
    except SettingsError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_level)
    try:
        return run_observer(settings, args)
    except Exception as exc:  # a failure at run time, as for the dashboard
        log.exception("unexpected failure")
        print(f"{PROG}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_RUNTIME


def run_observer(settings: Settings, args: argparse.Namespace) -> int:
    """Run the fleet screen alone until the operator leaves; its exit code."""
    from .no_engine import NoEngine

    return run_app(NoEngine(settings), settings, settings.group_name, args, observe=True)
