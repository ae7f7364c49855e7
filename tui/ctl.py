"""``routemq-dash ctl``: one signed command to the managers of a group, over the broker.

Like supervisorctl, circusctl and ``celery control``, for a fleet of managers: ``status`` prints
every manager seen on the status topics; any other verb is signed with FLEET_CONTROL_KEY and sent
to one manager (``--manager``) or to every online one, and their replies are printed, one line
each. Exit 0 when every reply is ok, 1 when one is not or none came in time (or the broker cannot
be reached), 2 for a usage or configuration error. Needs no Textual.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from engine.fleet.control import LONG_REPLY_TIMEOUT, LONG_VERBS, REPLY_TIMEOUT, reply_timeout
from engine.fleet.observer import FleetObserver, ManagerStatus, RemoteControlOff, Reply
from engine.setting_values import SettingsError
from engine.settings import Settings, load_settings
from engine.text import printable

from .cli import OneLineParser
from .options import override, with_broker

PROG = "routemq-dash ctl"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# verb -> its arguments' names; the values are turned into the command's args by _args_of
USAGE = {
    "status": "",
    "scale": "ROUTE COUNT",
    "restart-dead": "",
    "restart-worker": "SLOT",
    "stop": "",
    "start": "",
    "reload": "",
    "autoscale": "ROUTE MIN MAX | ROUTE off",
}


class Usage(Exception):
    """A command line that cannot be sent: one line naming the culprit."""


def build_parser() -> argparse.ArgumentParser:
    verbs = "\n".join(f"  {verb} {args}".rstrip() for verb, args in USAGE.items())
    parser = OneLineParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Send one signed command to the managers of a share group over the broker, and print "
        "their replies; or print the fleet (status).",
        epilog=f"verbs:\n{verbs}\n\nExit status: 0 every reply ok, 1 a refusal or no reply in time, 2 usage. "
        "Commands are signed with FLEET_CONTROL_KEY (see .env.example).",
    )
    commands = ", ".join(v for v in USAGE if v != "status")
    parser.add_argument("verb", metavar="VERB", help=f"status, or a command: {commands}")
    parser.add_argument("args", metavar="ARGS", nargs="*", help="the verb's arguments")
    parser.add_argument("--manager", metavar="ID", default=None,
                        help="send to this manager only (default: every online manager of the group)")
    parser.add_argument("--group", metavar="NAME", default=None,
                        help="share group (default: MQTT_GROUP_NAME from the settings)")
    parser.add_argument("--broker", metavar="HOST[:PORT]", default=None,
                        help="broker instead of MQTT_BROKER/MQTT_PORT")
    parser.add_argument("--env-file", metavar="PATH", default=".env",
                        help="settings file read before the environment (default: %(default)s)")
    parser.add_argument("--timeout", metavar="SECONDS", type=float, default=None,
                        help=f"seconds to wait for replies (default {REPLY_TIMEOUT:g}; {LONG_REPLY_TIMEOUT:g} for "
                        f"{', '.join(sorted(LONG_VERBS))})")
    parser.add_argument("--json", action="store_true", help="status: print JSON instead of a table")
    return parser


def _args_of(verb: str, values: Sequence[str]) -> dict[str, Any]:
    """The command's ``args`` from the words after the verb; Usage naming what is wrong."""
    if verb not in USAGE:
        raise Usage(f"unknown verb {verb!r} (known: {', '.join(USAGE)})")
    wanted = USAGE[verb]
    if verb == "autoscale" and len(values) == 2 and values[1] == "off":
        return {"route": values[0], "min": None, "max": None}
    if len(values) != len(wanted.split(" | ")[0].split()):
        raise Usage(f"{verb} takes {wanted or 'no arguments'}, not {' '.join(values) or 'nothing'}")
    if verb == "scale":
        return {"route": values[0], "count": _count(verb, "COUNT", values[1])}
    if verb == "restart-worker":
        return {"slot": values[0]}
    if verb == "autoscale":
        return {"route": values[0], "min": _count(verb, "MIN", values[1]), "max": _count(verb, "MAX", values[2])}
    return {}


def _count(verb: str, name: str, text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise Usage(f"{verb}: {name} must be a whole number from 1 to 10000, not {text!r}")
    return int(text)


def _settings(args: argparse.Namespace) -> Settings:
    settings = override(load_settings(args.env_file), "group", "group_name", args.group)
    settings = with_broker(override(settings, "manager", "manager_id", args.manager), args.broker)
    if args.timeout is not None and not 0 < args.timeout <= 3600:
        raise Usage(f"--timeout {args.timeout:g}: expected seconds above 0 and up to 3600")
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        command_args = _args_of(args.verb, args.args)
        settings = _settings(args)
    except (Usage, SettingsError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.verb != "status" and settings.fleet_control_key is None:
        print(f"{PROG}: error: FLEET_CONTROL_KEY is not set: commands cannot be signed", file=sys.stderr)
        return EXIT_USAGE
    timeout = args.timeout or reply_timeout(args.verb)
    observer = FleetObserver(settings, settings.group_name).start()
    try:
        if not observer.wait_synced(min(timeout, 10.0)):
            problem = observer.connect_problem or f"no answer from the broker at {settings.broker_address}"
            print(f"{PROG}: error: {problem}", file=sys.stderr)
            return EXIT_FAILED
        if args.verb == "status":
            return _status(observer.managers(), args.json)
        return _command(observer, args.manager, args.verb, command_args, timeout)
    finally:
        observer.close()


def _status(managers: Sequence[ManagerStatus], as_json: bool) -> int:
    if as_json:
        print(json.dumps([status_json(m) for m in managers], indent=2))
    else:
        print(status_table(managers), end="")
    return EXIT_OK


def status_json(m: ManagerStatus) -> dict[str, Any]:
    return {
        "manager": m.manager, "host": m.host, "state": m.state, "pid": m.pid, "version": m.version,
        "live_workers": m.live_workers, "desired_workers": m.desired_workers,
        "messages_per_second": round(m.messages_per_second, 3), "failed": m.failed, "broker": m.broker_state,
        "age": round(m.age, 3), "problem": m.problem,
    }


def status_table(managers: Sequence[ManagerStatus]) -> str:
    """The fleet as a plain text table (every text made printable: a status is anyone's)."""
    header = ("MANAGER", "HOST", "STATE", "WORKERS", "MSG/S", "FAILED", "BROKER", "AGE")
    rows: list[tuple[str, ...]] = [header, *(
        (m.manager, m.host, m.state, f"{m.live_workers}/{m.desired_workers}", f"{m.messages_per_second:.1f}",
         str(m.failed), m.broker_state or "-", f"{m.age:.0f}s")
        for m in managers
    )]
    rows = [tuple(_line(cell)[:48] for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    problems = [f"{_line(m.manager)}: {_line(m.problem)}" for m in managers if m.problem]
    if not managers:
        lines.append("(no manager of this group has published a status)")
    return "\n".join(lines + problems) + "\n"


def _line(text: str) -> str:
    """``text`` on one line, made printable: a status or a reply is anyone's, and a line break in
    it must not make a row of its own."""
    return printable(text).replace("\n", "\\n").replace("\r", "\\r")


def _command(observer: FleetObserver, manager: str | None, verb: str, args: dict[str, Any], timeout: float) -> int:
    if manager is not None:
        targets = [manager]
    else:
        targets = [m.manager for m in observer.managers() if m.state == "online"]
        if not targets:
            print(f"{PROG}: no online manager in group {observer.group!r}", file=sys.stderr)
            return EXIT_FAILED
    try:
        futures = {target: observer.send(target, verb, args) for target in targets}
    except RemoteControlOff as exc:  # checked in main; kept for a key removed in between
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    deadline = time.monotonic() + timeout
    all_ok = True
    for target, future in futures.items():
        reply = _wait(future, deadline)
        if reply is None:
            last = observer.manager(target)
            hint = f" (its last status says {last.state})" if last is not None else " (no status seen from it)"
            print(f"{_line(target)}: no reply within {timeout:g} s{hint}")
            all_ok = False
        elif reply.ok:
            print(f"{_line(target)}: ok")
        else:
            print(f"{_line(target)}: refused: {_line(reply.error or '')}")
            all_ok = False
    return EXIT_OK if all_ok else EXIT_FAILED


def _wait(future: Future[Reply], deadline: float) -> Reply | None:
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        future.cancel()  # the observer forgets it
        return None
