"""A manager's snapshot as JSON, and back: what a fleet status message carries.

``to_json`` writes every field of ``ManagerSnapshot``, ``WorkerInfo``, ``RouteInfo`` and
``BrokerInfo`` by name, enums as their string values. ``from_json`` reads what another manager
(or anyone who can publish on the status topic) sent, so it trusts nothing: every field is
checked against the type the dataclass declares, strings and lists are bounded, and anything
else is a ``ValueError`` naming the field. Fields it does not know are ignored (a newer
manager may send more); fields it misses take their defaults (an older one may send fewer).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from ..snapshot import BrokerInfo, ManagerSnapshot, RouteInfo, SlotState, WorkerInfo

MAX_STRING = 1024  # characters of one text field
MAX_ITEMS = 4096  # workers or routes of one manager
MAX_NUMBER = 2.0**53


def to_json(snapshot: ManagerSnapshot) -> dict[str, Any]:
    """The snapshot as a JSON-ready object (``taken_at``, a time of this process's clock, left out)."""
    data = _fields_of(snapshot, skip={"taken_at", "workers", "routes", "broker"})
    data["broker"] = _fields_of(snapshot.broker)
    data["workers"] = [_fields_of(w) for w in snapshot.workers]
    data["routes"] = [_fields_of(r) for r in snapshot.routes]
    return data


def from_json(data: Any) -> ManagerSnapshot:
    """The snapshot in ``data`` (as json.loads gave it); ValueError naming the culprit otherwise."""
    if not isinstance(data, dict):
        raise ValueError("snapshot: not an object")
    broker = _build(BrokerInfo, data.get("broker"), "snapshot.broker")
    workers = tuple(_build(WorkerInfo, w, f"snapshot.workers[{i}]") for i, w in enumerate(_list(data, "workers")))
    routes = tuple(_build(RouteInfo, r, f"snapshot.routes[{i}]") for i, r in enumerate(_list(data, "routes")))
    rest = {k: v for k, v in data.items() if k not in ("broker", "workers", "routes", "taken_at")}
    top = _values(ManagerSnapshot, rest, "snapshot", given={"broker"})
    return ManagerSnapshot(broker=broker, workers=workers, routes=routes, **top)


def _fields_of(item: Any, skip: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    return {
        f.name: (value.value if isinstance(value := getattr(item, f.name), SlotState) else value)
        for f in dataclasses.fields(item)
        if f.name not in skip
    }


def _list(data: dict[str, Any], name: str) -> list[Any]:
    value = data.get(name, [])
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise ValueError(f"snapshot.{name}: not a list of at most {MAX_ITEMS}")
    return value


def _build(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: not an object")
    return cls(**_values(cls, data, where))


def _values(
    cls: type[Any], data: dict[str, Any], where: str, given: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any]:
    """The fields of ``cls`` found in ``data``, checked; those in ``given`` come from elsewhere."""
    values = {}
    for name, options in _plan(cls):
        if name in data:
            values[name] = _checked(options, data[name], where, name)
    missing = [name for name in _required_fields(cls) if name not in values and name not in given]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    return values


_PLANS: dict[type[Any], tuple[tuple[str, tuple[Any, ...]], ...]] = {}
_REQUIRED: dict[type[Any], tuple[str, ...]] = {}


def _plan(cls: type[Any]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """Each field's name and the types it may take. Resolving type hints is what costs, so it is
    done once per class: an observing dashboard reads a hundred statuses a second."""
    if cls not in _PLANS:
        hints = typing.get_type_hints(cls)
        _PLANS[cls] = tuple(
            (f.name, typing.get_args(hint) if isinstance(hint := hints[f.name], types.UnionType) else (hint,))
            for f in dataclasses.fields(cls)
            if f.init and f.name in hints
        )
    return _PLANS[cls]


def _required_fields(cls: type[Any]) -> tuple[str, ...]:
    if cls not in _REQUIRED:
        _REQUIRED[cls] = tuple(f.name for f in dataclasses.fields(cls) if _required(f))
    return _REQUIRED[cls]


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _checked(options: tuple[Any, ...], value: Any, where: str, name: str) -> Any:
    if value is None:
        if type(None) in options:
            return None
        raise ValueError(f"{where}.{name}: null where a value is needed")
    for option in options:
        found = _as(option, value, where, name)
        if found is not _NO:
            return found
    wanted = " | ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ValueError(f"{where}.{name}: {type(value).__name__} where {wanted} is needed")


_NO = object()


def _as(kind: Any, value: Any, where: str, name: str) -> Any:
    """``value`` as a ``kind`` (a field's type), or _NO."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is SlotState and isinstance(value, str):
        try:
            return SlotState(value)
        except ValueError:
            raise ValueError(f"{where}.{name}: unknown state {value[:40]!r}") from None
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and number and isinstance(value, int) and abs(value) <= MAX_NUMBER:
        return value
    if kind is float and number and math.isfinite(value) and abs(value) <= MAX_NUMBER:
        return float(value)
    if kind is str and isinstance(value, str):
        return value[:MAX_STRING]
    return _NO
