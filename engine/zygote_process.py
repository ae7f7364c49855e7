"""``python -m engine.zygote_process --spec FD --control FD``: the warm parent workers fork from.

It imports what every worker needs (the engine's worker side, asyncio, paho) and the routes,
freezes the garbage collector's view of them (so that forked workers share those pages instead
of copying them as the collector touches them), and then does only three things, on its one
thread: fork a worker when the manager asks, report each worker's exit, reap it when the
manager says it is done with it (until then the worker's pid cannot be reused, so the manager's
signals to it and its process group always reach the right processes). gunicorn's
``preload_app`` and Python's forkserver with preloading, with the manager kept out of it: the
manager has threads, and forking a threaded process is not safe.

It dies with the manager (SIGKILL by ``PR_SET_PDEATHSIG``), and its workers die with it (SIGTERM:
they finish what they hold first). The protocol is engine/zygote_protocol.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import pickle
import selectors
import signal
import socket
import sys
import traceback
from typing import Any

# The title is written over our command line only, cut to its length: the environment stays
# where /proc/<pid>/environ (and anyone auditing it) reads it.
os.environ["SPT_NOENV"] = "1"
import setproctitle

from . import worker_process
from .protocol import ExitCode, RoutesSource
from .router import Router
from .worker.lifecycle import Refusal
from .worker.link import ManagerLink
from .zygote_protocol import PACKET, ZygoteSpec, encode

MAX_FDS = 3


class Preloaded:
    """The routes as the zygote loaded them (or why it could not), for every worker it forks."""

    def __init__(self, source: RoutesSource, router: Router | None, broken: list[str], refusal: Refusal | None):
        self.source, self.router, self.broken, self.refusal = source, router, broken, refusal

    def load(self, source: RoutesSource) -> tuple[Router, list[str]]:
        if source != self.source:  # not what we preloaded: the worker loads its own
            return worker_process.load_router(source)
        if self.refusal is not None:
            raise self.refusal
        assert self.router is not None
        return self.router, self.broken


class Zygote:
    def __init__(self, spec: ZygoteSpec, control: socket.socket) -> None:
        self.spec = spec
        self.control = control
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ, None)
        self.children: dict[int, int] = {}  # pid -> pidfd, until released
        self.preloaded: Preloaded | None = None

    def preload(self) -> str | None:
        """Import the routes; a problem to report, or None."""
        if not self.spec.preload_routes:
            return None
        try:
            router, broken = worker_process.load_router(self.spec.routes)
            self.preloaded = Preloaded(self.spec.routes, router, broken, None)
        except Refusal as refusal:
            self.preloaded = Preloaded(self.spec.routes, None, [], refusal)
            return refusal.reason
        if _threads() > 1:
            # Some router module starts a thread when imported: forking now would copy a process
            # in the middle of whatever that thread does. Say so; the manager starts a zygote
            # that leaves the routes to each worker.
            return "threads"
        return None

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.data is None:
                    if not self._command():
                        return
                else:
                    self._exited(key.data)

    def _command(self) -> bool:
        try:
            packet, fds, _, _ = socket.recv_fds(self.control, PACKET, MAX_FDS)
        except OSError:
            return False
        if not packet:
            for fd in fds:
                os.close(fd)
            return False  # the manager is gone, or retired us
        message: dict[str, Any] = json.loads(packet)
        if "fork" in message:
            self._fork(message["fork"], fds, bool(message.get("table")))
        elif "release" in message:
            self._release(int(message["release"]))
        for fd in fds:
            os.close(fd)
        return True

    def _fork(self, number: int, fds: list[int], table: bool) -> None:
        if len(fds) != (3 if table else 2):
            self._send({"fork_failed": number, "error": f"expected {3 if table else 2} descriptors, got {len(fds)}"})
            return
        zygote = os.getpid()
        try:
            pid = os.fork()
        except OSError as exc:
            self._send({"fork_failed": number, "error": f"fork: {exc}"})
            return
        if pid == 0:
            try:
                self._become_worker(zygote, fds[0], fds[1], fds[2] if table else None)
            except SystemExit:
                # The worker's own sys.exit(): it leaves the way a spawned worker does, through
                # the interpreter's exit (atexit handlers, non-daemon threads joined, files
                # flushed), unwinding the zygote's frames on the way, which hold nothing.
                raise
            except BaseException:  # never back into the zygote's loop
                traceback.print_exc()
            raise SystemExit(ExitCode.CRASH)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:  # out of descriptors, say: a child nobody could watch must not live
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self._send({"fork_failed": number, "error": f"pidfd_open: {exc}"})
            return
        self.children[pid] = pidfd
        self.selector.register(pidfd, selectors.EVENT_READ, pid)
        socket.send_fds(self.control, [encode({"forked": number, "pid": pid})], [pidfd])

    def _become_worker(self, zygote: int, sock_fd: int, output_fd: int, table_fd: int | None) -> None:
        os.setsid()  # its own session and process group, as a spawned worker has
        worker_process.die_with_parent()
        if os.getppid() != zygote:
            raise SystemExit(ExitCode.CRASH)  # the zygote died between the fork and the line above
        # Nothing of the zygote's stays open in the worker: not the manager's control socket (its
        # end of file must mean the zygote is gone), not the other workers' pidfds.
        self.selector.close()
        self.control.close()
        for fd in self.children.values():
            os.close(fd)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        link = ManagerLink.from_fd(sock_fd)
        spec = link.read_spec()
        # Seen as a worker, not as one more zygote: in ps and top (all forks would otherwise
        # show the zygote's command line) and by handler code that reads its arguments.
        sys.argv = [worker_process.__file__, "--slot", spec.slot, "--fd", str(sock_fd)]
        setproctitle.setproctitle(f"engine.worker_process --slot {spec.slot} (forked by zygote {zygote})")
        if table_fd is not None:  # its number here, which the manager could not know
            spec = dataclasses.replace(spec, in_hand_fd=table_fd)
        preloaded = self.preloaded
        worker_process.main(spec, link, preloaded.load if preloaded is not None else None)  # sys.exit()s

    def _exited(self, pid: int) -> None:
        pidfd = self.children[pid]
        self.selector.unregister(pidfd)
        # Read its status without reaping it: the pid stays ours until the manager releases it.
        info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            self.selector.register(pidfd, selectors.EVENT_READ, pid)
            return
        code = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        self._send({"exited": pid, "code": code})

    def _release(self, pid: int) -> None:
        pidfd = self.children.pop(pid, None)
        if pidfd is None:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        os.close(pidfd)

    def _send(self, message: dict[str, Any]) -> None:
        self.control.send(encode(message))


def _warm() -> None:
    """What every worker would otherwise import or build for itself after the fork (found by
    comparing a worker's ``sys.modules`` with the zygote's): done once here, shared by all."""
    import asyncio
    import concurrent.futures.thread  # noqa: F401 - the executor a worker connects in
    import encodings.idna  # noqa: F401 - a broker's host name, encoded to connect
    import queue  # noqa: F401

    "localhost".encode("idna")
    loop = asyncio.new_event_loop()
    loop.close()


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _read_spec(fd: int) -> ZygoteSpec:
    size = os.fstat(fd).st_size
    data = b""
    while len(data) < size:
        chunk = os.pread(fd, size - len(data), len(data))
        if not chunk:
            break
        data += chunk
    spec = pickle.loads(data)  # the manager's own bytes
    if not isinstance(spec, ZygoteSpec):
        raise TypeError(f"the spec is a {type(spec).__name__}, not a ZygoteSpec")
    return spec


NO_PRELOAD = "--no-preload-routes"
THREADS = "importing the routes started a thread: each worker imports them itself"


def main() -> None:
    args = sys.argv[1:]
    spec_fd, control_fd = int(args[args.index("--spec") + 1]), int(args[args.index("--control") + 1])
    spec = _read_spec(spec_fd)
    worker_process.die_with_parent(signal.SIGKILL)
    if os.getppid() != spec.manager_pid:
        sys.exit(ExitCode.CRASH)  # the manager died before we could ask to die with it
    if spec.sys_path:
        sys.path[:] = spec.sys_path
    if NO_PRELOAD in args:
        spec = dataclasses.replace(spec, preload_routes=False)
    zygote = Zygote(spec, socket.socket(fileno=control_fd))
    _warm()
    problem = zygote.preload()
    if problem == "threads":
        # Start again as a process that never imported them; forks asked for meanwhile wait in
        # the control socket, which the new program inherits.
        os.set_inheritable(spec_fd, True)
        os.set_inheritable(control_fd, True)
        os.execv(sys.executable, [sys.executable, "-m", "engine.zygote_process", *args, NO_PRELOAD])
    os.close(spec_fd)
    os.set_inheritable(control_fd, False)
    # What is loaded now stays as it is in every worker: out of the collector's sight, its pages
    # are shared with the zygote instead of copied the first time a collection walks them.
    gc.collect()
    gc.freeze()
    if NO_PRELOAD in args:
        problem = THREADS
    zygote._send({"ready": os.getpid(), "preloaded": zygote.preloaded is not None, "problem": problem})
    zygote.serve()


if __name__ == "__main__":
    main()
