"""SessionLedger: the broker sessions our worker slots keep, remembered across manager runs.

Workers keep persistent sessions so that nothing is lost when they die or stop. A session that
no slot will ever use again is a trap, though: in a share group the broker goes on assigning it
messages (Mosquitto queues them for offline members), and nobody collects them. That happens
when a manager restarts with fewer workers than last time, or after a reload moved a pool to new
slots. The ledger lists every client id whose session we keep; at start the manager drains the
ones it no longer needs, and forgets a client id once its session has been ended.

The file lives in ``$XDG_STATE_HOME/routemq-dash/`` (``~/.local/state`` by default), one per
(broker, client-id prefix, host, share group): the same identity the host lock protects, so one
manager at a time writes it. That directory is checked as the host lock's is (ours, mode 0700,
not a link; see :mod:`engine.supervisor.host_lock`), and the file is never read or written
through a link planted at its name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .settings import SettingsError
from .supervisor.host_lock import open_checked_directory, private_directory

log = logging.getLogger("routemq.sessions")


@dataclass(frozen=True)
class KeptSession:
    client_id: str
    pool: str  # the route pattern, or "main"
    index: int


class SessionLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._sessions: dict[str, KeptSession] = {}
        self._load()

    @classmethod
    def for_identity(cls, identity: str) -> SessionLedger:
        """The ledger of ``identity`` in our state directory.

        Raises :class:`SettingsError` (one line) if that directory cannot be trusted or made.
        """
        name = hashlib.sha1(identity.encode()).hexdigest()[:16] + ".json"
        return cls(Path(private_directory("state")) / name)

    def sessions(self) -> list[KeptSession]:
        return list(self._sessions.values())

    def keep(self, client_id: str, pool: str, index: int) -> None:
        if self._sessions.get(client_id) != (entry := KeptSession(client_id, pool, index)):
            self._sessions[client_id] = entry
            self._save()

    def forget(self, client_id: str) -> None:
        if self._sessions.pop(client_id, None) is not None:
            self._save()

    def _load(self) -> None:
        try:
            data = json.loads(_read_no_follow(self.path))
            for item in data.get("sessions", []):
                entry = KeptSession(str(item["client_id"]), str(item["pool"]), int(item["index"]))
                self._sessions[entry.client_id] = entry
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # A damaged ledger costs at most a drain we skip; say so and start afresh.
            log.warning("ignoring unreadable session ledger %s: %s", self.path, exc)

    def _save(self) -> None:
        body = json.dumps({"sessions": [vars(entry) for entry in self._sessions.values()]}, indent=1)
        try:
            # Checked again at each write: it runs in the supervisor, long after for_identity().
            dir_fd = open_checked_directory(str(self.path.parent))
        except SettingsError as exc:
            log.warning("cannot write the session ledger %s: %s", self.path, exc)
            return
        try:
            _replace_file(dir_fd, self.path.name, body.encode())
        except OSError as exc:
            log.warning("cannot write the session ledger %s: %s", self.path, exc)
        finally:
            os.close(dir_fd)


def _read_no_follow(path: Path) -> str:
    # O_NONBLOCK: a FIFO at the ledger's name reads as empty (and is reported) instead of hanging.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    with os.fdopen(fd, encoding="utf-8") as stream:
        return stream.read()


def _replace_file(dir_fd: int, name: str, body: bytes) -> None:
    """Write ``name`` in ``dir_fd`` whole or not at all, without following a link at either name."""
    temporary = f"{name}.tmp"
    # A leftover of a run that died mid-write (unlink never follows a link: it removes the link).
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary, dir_fd=dir_fd)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(body)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise
