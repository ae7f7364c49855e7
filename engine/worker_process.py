"""``python -m engine.worker_process --slot NAME --fd N``: the process that serves one pool slot.

One worker = one OS process = one paho-mqtt client with a stable client id and a persistent
session. This module is the process plumbing only: the spec from the manager's socket (fd N),
the import path, dying with the manager, output to the log stream, loading the routes, running
the worker, the exit code. The worker itself is engine/worker/: ``link`` (the manager's socket,
engine/protocol.py), ``client_io`` (paho on the event loop), ``inflight`` (handling and
acknowledging), ``lifecycle`` (its phases, and what it guarantees in each).

Exit codes are :class:`engine.protocol.ExitCode`: 0 after a stop or a retire, the failure's code
after a refusal retrying cannot cure (routes, auth, TLS, config: reported first as a Fatal
message), 1 after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import faulthandler
import io
import logging
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable

from .protocol import ExitCode, Failure, Fatal, RoutesSource, WorkerSpec
from .router import Router
from .worker.lifecycle import Refusal, Worker, take_group_down
from .worker.link import LinkLogHandler, ManagerLink

log = logging.getLogger("routemq.worker")


def _run_from_command_line() -> None:
    """The spec (settings included) arrives as the first frame on the socket, never on the
    command line or in the environment, so secrets stay out of ``ps``."""
    args = sys.argv[1:]
    link = ManagerLink.from_fd(int(args[args.index("--fd") + 1]))
    spec = link.read_spec()
    if spec.sys_path:
        sys.path[:] = spec.sys_path  # the manager's import path, so its router modules import here too
    main(spec, link)


RouterLoader = Callable[[RoutesSource], tuple[Router, list[str]]]


def main(spec: WorkerSpec, link: ManagerLink, load: RouterLoader | None = None) -> None:
    """Serve ``spec``'s slot, talking to the manager over ``link``; ``load`` gives the routes
    (a zygote's preloaded ones), else they are imported here. Never returns."""
    die_with_parent()
    _route_standard_streams()
    _install_logging(link, spec.settings.log_level)
    code = ExitCode.CRASH
    try:
        code = _serve(spec, link, load or load_router)
    except Refusal as refusal:
        link.send(Fatal(refusal.failure, refusal.reason))
        code = refusal.failure.exit_code
    except BaseException:  # a crash must reach the manager's log before we go
        log.critical("worker crashed:\n%s", traceback.format_exc())
        code = ExitCode.CRASH
    finally:
        link.flush()
    if link.manager_gone:
        take_group_down()  # no manager reaps us: the exit code would go nowhere anyway
    sys.exit(code)


def _serve(spec: WorkerSpec, link: ManagerLink, load: RouterLoader) -> ExitCode:
    router, broken = load(spec.routes)  # a Refusal when they do not load
    try:
        worker = Worker(spec, router, link)
    except Refusal as refusal:
        if broken:  # the route is missing because its module is broken: say which and why
            raise Refusal(refusal.failure, f"{refusal.reason}; broken router modules: {'; '.join(broken)}") from None
        raise
    return asyncio.run(worker.run())


def load_router(source: RoutesSource) -> tuple[Router, list[str]]:
    """The routes, and the router modules that failed to load (a package loads what it can)."""
    try:
        if source.package is not None:
            from .router_registry import RouterRegistry

            registry = RouterRegistry(source.package, strict=source.strict)
            return registry.discover_and_load_routers(), [str(b) for b in registry.broken]
        router = pickle.loads(source.pickled or b"")
        if not isinstance(router, Router):
            raise TypeError(f"the spec holds a {type(router).__name__}, not a Router")
        return router, []
    except (Exception, SystemExit) as exc:  # any failure to load routes is reported the same way
        raise Refusal(Failure.ROUTES, f"cannot load routes: {exc}") from None


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask Linux for ``signum`` when our parent dies, so that we never outlive the manager (or
    the zygote we were forked from, which itself dies with the manager)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signum)


def _route_standard_streams() -> None:
    # Workers share the manager's terminal, where a dashboard may be drawing. Python-level
    # output (print() included) goes to the log stream; what is written to the descriptors
    # themselves (C extensions, a fatal error's traceback from faulthandler) goes to the pipe the
    # manager drains into the slot's log, so that a worker's last words before a segfault or an
    # os._exit() reach the operator.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    faulthandler.enable(file=_FAULTS, all_threads=True)
    sys.stdout = _LogWriter(logging.INFO)
    sys.stderr = _LogWriter(logging.WARNING)


_FAULTS = open(2, "w", closefd=False)  # noqa: SIM115 - the process's own stderr, for faulthandler


class _LogWriter(io.TextIOBase):
    """A text stream that turns each written line into a log record of ``routemq.worker.output``."""

    def __init__(self, level: int) -> None:
        self._level = level
        self._buffer = ""
        self._logger = logging.getLogger("routemq.worker.output")

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            if line:
                self._logger.log(self._level, "%s", line)
        return len(text)


def _install_logging(link: ManagerLink, level: str) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(LinkLogHandler(link))
    root.setLevel(level)
    logging.getLogger("paho").setLevel(logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.WARNING)


if __name__ == "__main__":
    _run_from_command_line()
