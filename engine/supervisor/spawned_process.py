"""SpawnedProcess: a worker started as a fresh interpreter (``WORKER_START_METHOD=spawn``).

``python -m engine.worker_process`` with a private socket, our own child: its pidfd becomes
readable when it exits, and we reap it ourselves (``Popen.poll``). For users who need a fresh
interpreter per worker; the default is a zygote's fork (forked_process.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys

from .. import in_hand
from ..in_hand import InHandTable
from ..protocol import WorkerSpec
from .child_process import SECRET_VARIABLES, ChildProcess, open_pidfd


class SpawnedProcess(ChildProcess):
    def __init__(self, popen: subprocess.Popen[bytes], sock: socket.socket, output_fd: int,
                 table: InHandTable | None) -> None:
        super().__init__(popen.pid, sock, output_fd, table, open_pidfd(popen.pid))
        self.popen = popen

    @classmethod
    def launch(cls, spec: WorkerSpec, in_hand_entries: int = 0) -> SpawnedProcess:
        """Start ``python -m engine.worker_process`` and hand it its spec over a private socket;
        with ``in_hand_entries``, share an in-hand table of that many messages with it."""
        parent_sock, child_sock = socket.socketpair()
        output_r, output_w = os.pipe()
        env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
        table_fd = in_hand.create(in_hand_entries) if in_hand_entries else None
        passed = [child_sock.fileno()] if table_fd is None else [child_sock.fileno(), table_fd]
        spec = dataclasses.replace(spec, in_hand_fd=table_fd)
        try:
            popen = subprocess.Popen(
                [sys.executable, "-m", "engine.worker_process", "--slot", spec.slot, "--fd", str(child_sock.fileno())],
                pass_fds=passed,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=output_w,  # the worker points its stdout here too; drained by read_output()
                env=env,
                # Its own session and process group: Ctrl+C and terminal hang-ups are the manager's
                # to handle, and signalling the group reaches the children a handler forked.
                start_new_session=True,
            )
        except BaseException:
            parent_sock.close()
            os.close(output_r)
            if table_fd is not None:
                os.close(table_fd)
            raise
        finally:
            child_sock.close()
            os.close(output_w)
        table = None
        if table_fd is not None:
            table = InHandTable(table_fd)  # it maps the memory: the descriptor can go
            os.close(table_fd)
        process = cls(popen, parent_sock, output_r, table)
        process.queue_spec(spec)
        process.flush_spec()
        return process

    def poll(self) -> int | None:
        """The exit code once the process has exited (and is reaped), else None."""
        return self.popen.poll()

    def _signal(self, signum: int) -> None:
        # Popen.send_signal does nothing once it has reaped the process: never a reused pid.
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signum)

