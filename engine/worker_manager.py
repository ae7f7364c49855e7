"""WorkerManager (placeholder until the supervised implementation lands)."""
from __future__ import annotations

from typing import Any

from .router import Router


class WorkerManager:
    def __init__(self, router: Router, group_name: str | None = None, router_directory: str = "routers") -> None:
        self.router = router
        self.group_name = group_name or "mqtt_framework_group"
        self.router_directory = router_directory

    def get_shared_routes_info(self) -> list[dict[str, Any]]:
        return [
            {"topic": r.topic, "mqtt_topic": r.mqtt_topic, "qos": r.qos, "worker_count": r.worker_count}
            for r in self.router.routes
            if r.shared
        ]
