"""What the manager and a zygote say to each other (engine/supervisor/zygote.py and
engine/zygote_process.py meet here, as the supervisor and the worker meet in protocol.py).

A zygote is started with a :class:`ZygoteSpec` in a memfd (it may hold a pickled router of any
size). After that they talk over a ``SOCK_SEQPACKET`` socketpair, one JSON object per packet,
descriptors riding along as ``SCM_RIGHTS``:

manager -> zygote
    ``{"fork": n, "table": bool}`` with the worker's socket, its output pipe's write end and,
    if ``table``, its in-hand table; ``{"release": pid}`` once the manager is done with an
    exited worker (its pid may be reused only now); end of file: retire.
zygote -> manager
    ``{"ready": pid, "preloaded": bool, "problem": str|null}`` once the routes are imported;
    ``{"forked": n, "pid": pid}`` with a pidfd of the worker; ``{"fork_failed": n, "error": str}``;
    ``{"exited": pid, "code": int}`` (negative: killed by that signal), the worker not yet reaped.

The zygote runs the routes' import-time code, so the manager decodes what it says as strictly as
what a worker says: it never unpickles anything from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .protocol import RoutesSource

PACKET = 4096  # bytes; every message is far smaller


@dataclass(frozen=True)
class ZygoteSpec:
    routes: RoutesSource
    sys_path: tuple[str, ...]
    manager_pid: int
    preload_routes: bool = True  # False once importing them was seen to start threads


class ZygoteViolation(Exception):
    """The zygote said something that is not part of the protocol."""


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def decode(packet: bytes) -> tuple[str, dict[str, Any]]:
    """One message from the zygote and its kind, every field checked (exactly the kind's fields,
    of their types, pids and codes within their ranges); ZygoteViolation for anything else."""
    try:
        message = json.loads(packet)
    except (ValueError, RecursionError) as exc:
        raise ZygoteViolation(f"not JSON: {exc}") from None
    if not isinstance(message, dict) or not message:
        raise ZygoteViolation("not a JSON object")
    kind = next(iter(message))
    fields = _FIELDS.get(kind)
    if fields is None:
        raise ZygoteViolation(f"unknown message {str(kind)[:50]!r}")
    if set(message) != set(fields):
        raise ZygoteViolation(f"{kind}: fields {sorted(message)[:10]}, not {sorted(fields)}")
    for name, types in fields.items():
        _check(kind, name, message[name], types)
    for name in ("problem", "error"):
        if isinstance(message.get(name), str):
            message[name] = message[name][:2000]
    return kind, message


def _check(kind: str, name: str, value: Any, types: tuple[type, ...]) -> None:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ZygoteViolation(f"{kind}: field {name!r} is {type(value).__name__}")
    if not isinstance(value, int):
        return
    if name in _PIDS and not 1 < value < PID_LIMIT:
        raise ZygoteViolation(f"{kind}: {name} {value} is not a process id")
    if name == "code" and not -128 < value < 256:
        raise ZygoteViolation(f"{kind}: code {value} is not an exit code")


PID_LIMIT = 2**22  # Linux's largest pid_max
_PIDS = frozenset({"ready", "pid", "exited"})
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "ready": {"ready": (int,), "preloaded": (bool,), "problem": (str, type(None))},
    "forked": {"forked": (int,), "pid": (int,)},
    "fork_failed": {"fork_failed": (int,), "error": (str,)},
    "exited": {"exited": (int,), "code": (int,)},
}
