"""Pool: the worker slots of one shared route (or the main worker), kept at a desired size.

circus's ``Watcher`` is the model: a pool knows its route, how many workers it wants and its
slots, and :meth:`Pool.converge` starts or retires slots until the two agree. It also names
its slots and their MQTT client ids, which must stay stable: a slot's broker session (and the
messages it holds) is found again by its client id.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..autoscale import AutoscaleConfig, Autoscaler, AutoscaleRange
from ..policy import RetireCandidate, choose_retirees
from ..router import Route
from ..states import SlotState
from ..topics import route_slug
from .slot import Slot, SlotHost

MAIN = "main"  # the pool (and slot) of the worker serving every non-shared route
MAIN_ROUTE_LABEL = "(non-shared routes)"


@dataclass(frozen=True)
class ClientIds:
    """How slots are named on the broker: ``<prefix>-<manager id>-<group>-<route slug>-<index>``
    (the manager id is the host name unless MANAGER_ID says otherwise)."""

    prefix: str
    host: str
    group: str

    def for_slot(self, pool_key: str, index: int) -> str:
        if pool_key == MAIN:
            return f"{self.prefix}-{self.host}-{self.group}-main"
        return f"{self.prefix}-{self.host}-{self.group}-{route_slug(pool_key)}-{index}"


def slot_key(pool_key: str, index: int) -> str:
    return MAIN if pool_key == MAIN else f"{pool_key}#{index}"


class Pool:
    def __init__(self, host: SlotHost, ids: ClientIds, key: str, route: Route | None, desired: int) -> None:
        self.host = host
        self.ids = ids
        self.key = key  # the route pattern, or "main"
        self.route = route  # None for the main worker (all non-shared routes)
        self.desired = desired
        self.slots: list[Slot] = []  # in index order
        self.autoscaler: Autoscaler | None = None  # while the pool autoscales (engine/autoscale.py)

    def __repr__(self) -> str:
        return f"<Pool {self.key} desired={self.desired} slots={len(self.slots)}>"

    @property
    def is_main(self) -> bool:
        return self.route is None

    def active(self) -> list[Slot]:
        """The slots meant to stay (dead ones included), not those leaving the pool."""
        return [slot for slot in self.slots if not slot.retiring]

    @property
    def live(self) -> int:
        """Slots whose process is starting or running."""
        return sum(1 for slot in self.slots if slot.process is not None and slot.state.is_serving)

    @property
    def steady(self) -> bool:
        """Converged: exactly ``desired`` slots, all running (none starting, draining or dead)."""
        return len(self.slots) == self.desired and all(slot.state is SlotState.RUNNING for slot in self.slots)

    def utilization(self, every: bool = False) -> float | None:
        """The mean busy fraction of the running workers; None without a reading (with
        ``every``, None unless every running worker has one)."""
        readings = [slot.busy.busy for slot in self.slots if slot.state is SlotState.RUNNING]
        known = [busy for busy in readings if busy is not None]
        if not known or (every and len(known) < len(readings)):
            return None
        return sum(known) / len(known)

    def set_autoscale(self, limits: AutoscaleRange | None, config: AutoscaleConfig) -> None:
        """Autoscale within ``limits`` from now on (clamping the size into them), or stop (None)."""
        self.autoscaler = Autoscaler(limits, config) if limits is not None else None
        if limits is not None:
            self.desired = limits.clamp(self.desired)

    @property
    def alive(self) -> bool:
        return any(slot.process is not None for slot in self.slots)

    def add_slot(self, index: int) -> Slot:
        slot = Slot(self.host, self.key, slot_key(self.key, index), index, self.ids.for_slot(self.key, index))
        self.slots.append(slot)
        self.slots.sort(key=lambda s: s.index)
        return slot

    def free_indexes(self, count: int) -> list[int]:
        """The ``count`` lowest indexes no slot of the pool uses."""
        used = {slot.index for slot in self.slots}
        free: list[int] = []
        index = 0
        while len(free) < count:
            if index not in used:
                free.append(index)
            index += 1
        return free

    def converge(self) -> None:
        """Start or retire slots until the pool has ``desired`` active slots."""
        active = self.active()
        for slot in active:
            if slot.state in (SlotState.STOPPED, SlotState.EXITED):
                slot.spawn()
        missing = self.desired - len(active)
        if missing > 0:
            for index in self.free_indexes(missing):
                self.add_slot(index).spawn()
        elif missing < 0:
            self.retire(self.idlest(active, -missing))

    @staticmethod
    def idlest(slots: list[Slot], count: int) -> list[Slot]:
        """The ``count`` slots to retire first: not serving, then idle, then newest."""
        candidates = [
            RetireCandidate(
                slot.key,
                slot.index,
                slot.state,
                slot.beat.in_flight if slot.beat else 0,
                slot.last_message_age(),
            )
            for slot in slots
        ]
        chosen = set(choose_retirees(candidates, count))
        return [slot for slot in slots if slot.key in chosen]

    @staticmethod
    def retire(slots: list[Slot]) -> None:
        for slot in slots:
            slot.retire()

    def prune(self) -> None:
        """Forget the slots that have left the pool."""
        if any(slot.state is SlotState.RETIRED for slot in self.slots):
            self.slots = [slot for slot in self.slots if slot.state is not SlotState.RETIRED]

    @property
    def gone(self) -> bool:
        """Its route was removed and its last slot has left."""
        return self.desired == 0 and not self.slots
