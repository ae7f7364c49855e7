"""FleetTable: one row per manager of the group (row key = its id), as its last status says.

Every text comes from a status that anyone allowed to publish on the topic may have written; the
table draws cells through ``one_line`` (engine.text.printable), as every table does.
"""

from __future__ import annotations

from typing import ClassVar

from engine.fleet.observer import STALE_INTERVALS, ManagerStatus

from .. import format as fmt
from .keyed_table import ColumnSpec, KeyedTable
from .stable_order import ages, relative

_STATE_CLASS = {
    "online": "fleet-table--online",
    "stopping": "fleet-table--stopping",
    "stale": "fleet-table--stale",
}
_ROW_CLASS = {"offline": "fleet-table--offline"}


def _state_class(status: ManagerStatus) -> str | None:
    return _STATE_CLASS.get(status.state)


def _workers_text(status: ManagerStatus) -> str:
    return f"{status.live_workers}/{status.desired_workers}" if status.has_snapshot else fmt.MISSING


def _broker_class(status: ManagerStatus) -> str | None:
    state = status.broker_state
    return "fleet-table--broker-down" if state and state not in ("connected", "idle") else None


COLUMNS: tuple[ColumnSpec[ManagerStatus], ...] = (
    ColumnSpec("manager", "manager", lambda m: m.manager, frozen=True, min_width=8, preferred_width=24,
               elide="middle", help="The manager's id (its MANAGER_ID, else its host name), as its status topic "
                                    "names it."),
    ColumnSpec("host", "host", lambda m: m.host or fmt.MISSING, min_width=8, max_width=32,
               help="The host it runs on, as its status says."),
    ColumnSpec("state", "state", lambda m: m.state, style=_state_class,
               help="online; stopping (its workers are stopping); offline (it stopped, or its last will: it died or "
                    f"lost the broker); stale: online or stopping by its last status, but not heard for "
                    f"{STALE_INTERVALS} of its status intervals."),
    ColumnSpec("workers", "workers", _workers_text, lambda m: (m.live_workers, m.desired_workers), "right",
               help="Live / desired workers of all its pools, as of its last status."),
    ColumnSpec("rate", "msg/s", lambda m: fmt.rate(m.messages_per_second), lambda m: m.messages_per_second, "right",
               bucket=relative(), help="Messages its workers handled per second, lately (0 unless it is online)."),
    ColumnSpec("failed", "failed", lambda m: fmt.count(m.failed), lambda m: m.failed, "right",
               help="Messages whose handler raised, or that were in hand when their worker died, since it started."),
    ColumnSpec("broker", "broker", lambda m: m.broker_state or fmt.MISSING, style=_broker_class,
               help="Its connection to the broker as it last said: connected, connecting, unreachable, …"),
    ColumnSpec("age", "age", lambda m: fmt.age(m.age), lambda m: m.age, "right", bucket=ages(),
               help="How long ago its last status arrived here (one comes every FLEET_STATUS_INTERVAL seconds, "
                    "and at once when a worker, a pool or the broker changes)."),
    ColumnSpec("problem", "problem", lambda m: m.problem or "", lambda m: m.problem, priority=1, min_width=12,
               max_width=60,
               help="Why its last status could not be read (the row shows what was read before it)."),
    ColumnSpec("version", "version", lambda m: m.version or fmt.MISSING, priority=2, max_width=16,
               help="The routemq-dash version it runs."),
    ColumnSpec("pid", "pid", lambda m: fmt.MISSING if m.pid is None else str(m.pid), lambda m: m.pid, "right",
               priority=3, help="The manager's process id on its host."),
)


class FleetTable(KeyedTable[ManagerStatus]):
    """The managers of one share group, in the order of their ids."""

    KEY_COLUMN = "manager"
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "fleet-table--online",
        "fleet-table--stopping",
        "fleet-table--stale",
        "fleet-table--offline",
        "fleet-table--broker-down",
        "fleet-table--problem",
    }

    def column_specs(self) -> tuple[ColumnSpec[ManagerStatus], ...]:
        return COLUMNS

    def key_of(self, item: ManagerStatus) -> str:
        return item.manager

    def row_style(self, item: ManagerStatus) -> str | None:
        # A status that did not read is news even where the problem column does not fit.
        return "fleet-table--problem" if item.problem else _ROW_CLASS.get(item.state)
