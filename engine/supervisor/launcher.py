"""Launcher: how workers start (``WORKER_START_METHOD``), and the zygotes they fork from.

``zygote`` (the default): one zygote per version of the routes. The current one forks every new
worker; a reload makes the next launch start a zygote with the new code, and the old one is
retired once its last worker is released. A zygote that dies is shown (an event, the snapshot's
restart count) and replaced at the next launch, which comes at once: its workers die with it
and restart without backoff. If zygotes keep dying (``ZYGOTE_DEATHS`` within
``ZYGOTE_WINDOW`` seconds), the launcher falls back to ``spawn`` and says so. ``spawn``: a fresh
interpreter per worker (spawned_process.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..protocol import WorkerSpec
from .child_process import ChildProcess
from .forked_process import ForkedProcess
from .spawned_process import SpawnedProcess
from .watch import Watch
from .zygote import Zygote

ZYGOTE_DEATHS = 5
ZYGOTE_WINDOW = 60.0

Event = Callable[[str, str, int], None]


@dataclass(frozen=True)
class LauncherInfo:
    method: str  # what is in use: "zygote" or "spawn" (also after a fallback)
    zygote_pid: int | None
    zygote_restarts: int


class Launcher:
    def __init__(self, method: str, watch: Watch, event: Event, now: Callable[[], float]) -> None:
        self.method = method
        self.watch = watch
        self.event = event
        self.now = now
        self.current: Zygote | None = None
        self.zygotes: list[Zygote] = []
        self.restarts = 0
        self._deaths: deque[float] = deque()
        if method == "zygote" and not pidfds_work():
            # A zygote's children are not ours to wait for: without pidfds (an old kernel, a
            # seccomp profile that refuses pidfd_open) their exits could not be followed.
            self.method = "spawn"
            event("zygote", "pidfd_open is not available here: workers start as fresh interpreters "
                  "(WORKER_START_METHOD=spawn)", logging.WARNING)

    def launch(self, spec: WorkerSpec, in_hand_entries: int) -> ChildProcess:
        if self.method == "spawn":
            return SpawnedProcess.launch(spec, in_hand_entries)
        return self._zygote_for(spec).fork(spec, in_hand_entries)

    def new_code(self) -> None:
        """The routes were reloaded: the next worker forks from a new zygote, which imports the
        new code; the current one is retired once its last worker is released."""
        self.current = None

    def _zygote_for(self, spec: WorkerSpec) -> Zygote:
        zygote = self.current
        if zygote is not None and zygote.routes != spec.routes:
            self.current = zygote = None  # reloaded: retired once its last worker is released
        if zygote is None:
            zygote = self.current = Zygote(spec.routes)
            self.zygotes.append(zygote)
            self.watch.add(zygote.control.fileno(), (zygote, "zygote"))
            self.watch.add(zygote.output_fd, (zygote, "zygote-output"))
            self.watch.add(zygote.exit_fd, (zygote, "zygote-exit"))
            self.event("zygote", f"zygote started (pid {zygote.pid})", logging.DEBUG)
        return zygote

    # --- what the selector saw -------------------------------------------------------------------

    def on_control(self, zygote: Zygote) -> list[ForkedProcess]:
        was_ready = zygote.ready
        zygote.read()
        if zygote.control_closed:  # at end of file it stays readable: its exit is watched elsewhere
            self.watch.forget(zygote.control.fileno())
        changed = zygote.take_changed()
        if zygote.ready and not was_ready:
            took = self.now() - zygote.started_at
            said = f"zygote (pid {zygote.pid}) ready in {took:.2f} s"
            if zygote.problem:
                self.event("zygote", f"{said}: {zygote.problem}", logging.WARNING)
            else:
                self.event("zygote", f"{said}, routes {'preloaded' if zygote.preloaded else 'not preloaded'}",
                           logging.DEBUG)
        return changed

    def on_output(self, zygote: Zygote) -> None:
        fd = zygote.output_fd
        for line in zygote.read_output():
            self.event("zygote", f"zygote (pid {zygote.pid}): {line[:2000]}", logging.WARNING)
        if zygote.output_fd is None and fd is not None:
            self.watch.forget(fd)

    def on_exit(self, zygote: Zygote) -> list[ForkedProcess]:
        """Its pidfd fired: if it has exited, the processes it leaves without a parent."""
        if zygote.poll() is None:
            return []
        for fd in (zygote.control.fileno(), zygote.exit_fd):
            self.watch.forget(fd)
        if zygote.output_fd is not None:
            self.on_output(zygote)  # its last words: an import error's traceback, say
        orphans = zygote.died()
        self.zygotes.remove(zygote)
        if zygote is self.current:
            self.current = None
        if zygote.retired:
            return orphans
        self.restarts += 1
        now = self.now()
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - ZYGOTE_WINDOW:
            self._deaths.popleft()
        said = f"zygote (pid {zygote.pid}) died: {zygote.describe_exit()}"
        if orphans:
            said += f"; its {len(orphans)} worker(s) go with it and restart at once from a new zygote"
        if len(self._deaths) >= ZYGOTE_DEATHS:
            self.method = "spawn"
            self.event("zygote", f"{said}. Zygotes died {len(self._deaths)} times within {ZYGOTE_WINDOW:g} s: "
                       "workers start as fresh interpreters from now on (WORKER_START_METHOD=spawn)", logging.ERROR)
        else:
            self.event("zygote", said, logging.WARNING)
        return orphans

    # --- housekeeping ----------------------------------------------------------------------------

    def tidy(self, hang_timeout: float) -> list[Zygote]:
        """Retire old zygotes once idle; kill one that has not answered a fork for ``hang_timeout``
        (stuck importing the routes, stopped, frozen). The zygotes that have exited without a
        pidfd to say so, for the caller to treat as ``on_exit``."""
        now = time.monotonic()
        for zygote in self.zygotes:
            if zygote is not self.current and zygote.idle:
                zygote.retire()
            asked = zygote.oldest_fork()
            if asked is not None and now - asked > hang_timeout and not zygote.dead:
                said = "not ready" if not zygote.ready else "not answering a fork"
                self.event("zygote", f"zygote (pid {zygote.pid}) {said} after {hang_timeout:g} s: killing it",
                           logging.WARNING)
                zygote.kill()
        return [z for z in self.zygotes if z.exit_fd is None and z.poll() is not None]

    def close(self) -> None:
        for zygote in list(self.zygotes):
            for fd in (zygote.control.fileno(), zygote.output_fd, zygote.exit_fd):
                self.watch.forget(fd)
            zygote.close()
        self.zygotes.clear()
        self.current = None

    @property
    def info(self) -> LauncherInfo:
        zygote = self.current
        return LauncherInfo(
            method=self.method,
            zygote_pid=zygote.pid if zygote is not None else None,
            zygote_restarts=self.restarts,
        )


def pidfds_work() -> bool:
    """pidfd_open and waitid(P_PIDFD) work here (Linux 5.4 and later, unless refused)."""
    try:
        fd = os.pidfd_open(os.getpid())
    except (AttributeError, OSError):
        return False
    try:
        os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)
    except ChildProcessError:
        return True  # understood: we are not our own child
    except (AttributeError, OSError):
        return False
    finally:
        os.close(fd)
    return True
