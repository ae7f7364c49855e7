"""routemq-dash engine: routing, settings and the supervised worker pools. Never imports textual."""

from .middleware import Middleware
from .router import NoRouteError, Route, Router, RouterGroup
from .router_registry import RouterLoadError, RouterRegistry
from .settings import Secret, Settings, SettingsError, load_settings
from .worker_manager import WorkerManager

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
