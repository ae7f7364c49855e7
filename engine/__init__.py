"""routemq-dash engine: routing, settings and the supervised worker pools. Never imports textual.

Names are imported lazily, so that a worker process, which needs only the router and its own
module, does not pay for importing the manager.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Middleware": "engine.middleware",
    "NoRouteError": "engine.router",
    "Route": "engine.router",
    "Router": "engine.router",
    "RouterGroup": "engine.router",
    "RouterLoadError": "engine.router_registry",
    "RouterRegistry": "engine.router_registry",
    "Secret": "engine.settings",
    "Settings": "engine.settings",
    "SettingsError": "engine.settings",
    "load_settings": "engine.settings",
    "WorkerManager": "engine.worker_manager",
}

__all__ = [
    "Middleware",
    "NoRouteError",
    "Route",
    "Router",
    "RouterGroup",
    "RouterLoadError",
    "RouterRegistry",
    "Secret",
    "Settings",
    "SettingsError",
    "WorkerManager",
    "load_settings",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .middleware import Middleware
    from .router import NoRouteError, Route, Router, RouterGroup
    from .router_registry import RouterLoadError, RouterRegistry
    from .settings import Secret, Settings, SettingsError, load_settings
    from .worker_manager import WorkerManager
