"""SessionLedger: the broker sessions our worker slots keep, remembered across manager runs.

Workers keep persistent sessions so that nothing is lost when they die or stop. A session that
no slot will ever use again is a trap, though: in a share group the broker goes on assigning it
messages (Mosquitto queues them for offline members), and nobody collects them. That happens
when a manager restarts with fewer workers than last time, or after a reload moved a pool to new
slots. The ledger lists every client id whose session we keep; at start the manager drains the
ones it no longer needs, and forgets a client id once its session has been ended.

The file lives in ``$XDG_STATE_HOME/routemq-dash/`` (``~/.local/state`` by default), one per
(broker, client-id prefix, host, share group): the same identity the host lock protects, so one
manager at a time writes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

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
        base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
        name = hashlib.sha1(identity.encode()).hexdigest()[:16] + ".json"
        return cls(Path(base) / "routemq-dash" / name)

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
            data = json.loads(self.path.read_text())
            for item in data.get("sessions", []):
                entry = KeptSession(str(item["client_id"]), str(item["pool"]), int(item["index"]))
                self._sessions[entry.client_id] = entry
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A damaged ledger costs at most a drain we skip; say so and start afresh.
            log.warning("ignoring unreadable session ledger %s: %s", self.path, exc)

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(".tmp")
            body = {"sessions": [vars(entry) for entry in self._sessions.values()]}
            temporary.write_text(json.dumps(body, indent=1))
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("cannot write the session ledger %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                self.path.with_suffix(".tmp").unlink()
