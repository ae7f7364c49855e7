"""Fixtures of the tests that run the real ``routemq-dash`` command: a project with a router
package of its own, an environment without our settings, and the command's processes, collected
and killed at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.settings import VARIABLES
from tests.support import process_gone

ROOT = Path(__file__).resolve().parents[2]
COMMAND = Path(sys.executable).with_name("routemq-dash")

ROUTES = """
import os
from engine import Router

router = Router()


def record(name, payload, client):
    with open(payload["out"], "a") as out:
        out.write(f"{os.getpid()} {payload['id']}\\n")


router.on("cmd/{name}", record, qos=1, shared=True, worker_count=1)
"""


class Running:
    """A routemq-dash process whose output lines are collected as they come."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([str(COMMAND), *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.process.stdout, self.lines), daemon=True),
                         threading.Thread(target=self._read, args=(self.process.stderr, self.errors), daemon=True)]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in list(self.lines)]

    def worker_pids(self) -> set[int]:
        """Worker processes alive now: children of this command's zygote (or of the command
        itself, with WORKER_START_METHOD=spawn)."""
        children = _children(self.process.pid)
        zygotes = {pid for pid in children if b"engine.zygote_process" in _cmdline(pid)}
        return (children - zygotes) | {pid for zygote in zygotes for pid in _children(zygote)}

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.wait()

    def wait(self) -> int:
        """The exit code, once the process has ended and its output has been read."""
        code = self.process.wait(timeout=60)
        for reader in self._readers:
            reader.join(timeout=5)
        return code


@pytest.fixture
def project(tmp_path: Path, group_name: str) -> Path:
    """A project directory with a router package of its own and no .env."""
    package = tmp_path / f"cmdroutes_{group_name}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(ROUTES)
    return tmp_path


@pytest.fixture
def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {v.env for v in VARIABLES}}
    env["PYTHONPATH"] = str(ROOT)  # the workers import tests-free code only, but keep the repo importable
    return env


@pytest.fixture
def run(project: Path, environment: dict[str, str]) -> Iterator:
    started: list[Running] = []

    def run(*args: str, env: dict[str, str] | None = None) -> Running:
        running = Running(list(args), project, {**environment, **(env or {})})
        started.append(running)
        return running

    yield run
    for running in started:
        if running.process.poll() is None:
            running.stop(signal.SIGKILL)


def _children(parent: int) -> set[int]:
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and not process_gone(int(entry)):
                pids.add(int(entry))
    return pids


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
