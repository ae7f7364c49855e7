"""RouterRegistry: import every module of a package and merge the ``router`` each one defines.

Order: the package's own ``__init__`` first, then every non-private module and sub-package in
order of dotted name (``routers.a`` < ``routers.a.b`` < ``routers.b``). A module or package whose
name starts with ``_`` is private and skipped; a module without a ``router`` attribute is a helper
and skipped. Routes keep their registration order inside each module.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import pkgutil
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from .router import Router

log = logging.getLogger("routemq.registry")


@dataclass(frozen=True)
class BrokenModule:
    """A router module that could not be used, with where and why."""

    module: str
    location: str  # "path/to/file.py:LINE" or the path alone
    reason: str

    def __str__(self) -> str:
        return _one_line(f"{self.location}: {self.reason} (module {self.module})")


class RouterLoadError(Exception):
    """Router modules failed to load. ``broken`` lists every one of them."""

    def __init__(self, package: str, broken: list[BrokenModule]) -> None:
        self.package = package
        self.broken = broken
        count = f"{len(broken)} router module{'s' if len(broken) != 1 else ''}"
        super().__init__(f"{count} in package {package!r} failed to load: " + "; ".join(map(str, broken)))


class RouterPackageNotFound(RouterLoadError):
    """The router package itself cannot be imported."""

    def __init__(self, package: str, detail: str) -> None:
        Exception.__init__(self, f"router package {package!r} not found: {detail}")
        self.package = package
        self.broken = []


class RouterRegistry:
    """Discovers ``router`` objects in the modules of ``package`` and merges them into one Router."""

    def __init__(self, router_directory: str = "routers", strict: bool = True) -> None:
        self.package = router_directory
        self.strict = strict
        self.broken: list[BrokenModule] = []
        self.loaded_modules: list[str] = []

    def discover_and_load_routers(self, strict: bool | None = None, fresh: bool = False) -> Router:
        """Import the package's modules and return one Router with all their routes.

        With ``strict`` (the default) any broken module raises :class:`RouterLoadError` listing
        every broken module; with ``strict=False`` they are logged and the rest is loaded.
        ``fresh=True`` forgets modules imported before, so edited files are read again.
        """
        strict = self.strict if strict is None else strict
        if fresh:
            _forget_package(self.package)
        importlib.invalidate_caches()
        package = self._import_package()
        self.broken = []
        self.loaded_modules = []
        merged = Router()
        seen: set[int] = set()
        for module in self._modules(package):
            try:
                self._merge(module, merged, seen)
            except ValueError as exc:  # a route duplicating one from an earlier module
                self.broken.append(BrokenModule(module.__name__, _module_path(module), str(exc)))
        if self.broken:
            if strict:
                raise RouterLoadError(self.package, self.broken)
            for item in self.broken:
                log.error("skipped router module: %s", item)
        merged.source_package = self.package
        return merged

    def _import_package(self) -> ModuleType:
        try:
            return importlib.import_module(self.package)
        except ModuleNotFoundError as exc:
            if exc.name and (self.package == exc.name or self.package.startswith(exc.name + ".")):
                raise RouterPackageNotFound(
                    self.package, f"no module named {exc.name!r} on the Python path (cwd {os.getcwd()})"
                ) from None
            raise RouterLoadError(self.package, [_describe_failure(self.package, exc)]) from None
        except (Exception, SystemExit) as exc:  # sys.exit() at import is a broken module too
            raise RouterLoadError(self.package, [_describe_failure(self.package, exc)]) from None

    def _modules(self, package: ModuleType) -> list[ModuleType]:
        modules = [package]
        self._collect(package, modules)
        return modules

    def _collect(self, package: ModuleType, modules: list[ModuleType]) -> None:
        """Import the non-private modules under ``package``, depth first in dotted-name order.

        Private names are skipped before anything is imported (pkgutil.walk_packages would
        import private sub-packages to look inside them), and each module is imported once, so a
        broken one is reported once.
        """
        search_path = getattr(package, "__path__", None)
        if search_path is None:  # a plain module given as the "package"
            return
        found = sorted(pkgutil.iter_modules(search_path, prefix=package.__name__ + "."), key=lambda i: i.name)
        for info in found:
            if info.name.rpartition(".")[2].startswith("_"):
                continue
            try:
                module = importlib.import_module(info.name)
            except (Exception, SystemExit) as exc:  # sys.exit() at import is a broken module too
                self.broken.append(_describe_failure(info.name, exc))
                continue
            modules.append(module)
            if info.ispkg:
                self._collect(module, modules)

    def _merge(self, module: ModuleType, merged: Router, seen: set[int]) -> None:
        router = getattr(module, "router", None)
        if router is None:
            log.debug("module %s defines no router; skipped", module.__name__)
            return
        if id(router) in seen:
            # e.g. a package __init__ doing `from .api import router`: the same routes, once.
            log.debug("module %s re-exports a router already loaded; skipped", module.__name__)
            return
        if not isinstance(router, Router):
            self.broken.append(
                BrokenModule(
                    module.__name__,
                    _module_path(module),
                    f"`router` is a {type(router).__name__}, not an engine.Router",
                )
            )
            return
        try:
            merged.include(router)
        except ValueError as exc:
            raise ValueError(f"{exc} (while merging {module.__name__})") from None
        seen.add(id(router))
        self.loaded_modules.append(module.__name__)


def _one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped as repr() shows them."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _module_path(module: ModuleType) -> str:
    return _relative(getattr(module, "__file__", None) or module.__name__)


def _relative(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _describe_failure(module_name: str, exc: BaseException) -> BrokenModule:
    """Where the import of ``module_name`` failed: the file and line closest to the module."""
    reason = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError) and exc.filename:
        return BrokenModule(module_name, f"{_relative(exc.filename)}:{exc.lineno}", f"SyntaxError: {exc.msg}")
    frames = traceback.extract_tb(exc.__traceback__)
    # The deepest frame that is not import machinery: usually the offending line of the module.
    user_frames = [f for f in frames if "importlib" not in f.filename and f.filename != __file__]
    if user_frames:
        frame = user_frames[-1]
        # Prefer the deepest frame inside the module's own directory tree.
        root = module_name.split(".")[0]
        own = [
            f
            for f in user_frames
            if f"{os.sep}{root}{os.sep}" in f.filename or f.filename.endswith(f"{root}.py")
        ]
        if own:
            frame = own[-1]
        return BrokenModule(module_name, f"{_relative(frame.filename)}:{frame.lineno}", reason)
    return BrokenModule(module_name, module_name.replace(".", os.sep) + ".py", reason)


def _forget_package(package: str) -> None:
    """Drop the package's modules from ``sys.modules`` and delete their cached bytecode.

    The bytecode goes too because Python trusts a ``.pyc`` whose recorded source mtime (whole
    seconds) and size still match: an edit that keeps the file's size within the same second
    would otherwise be ignored.
    """
    sources: set[str] = set()
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        module = sys.modules.pop(name)
        if module_file := getattr(module, "__file__", None):
            sources.add(module_file)
        for directory in getattr(module, "__path__", None) or []:
            sources.update(str(path) for path in Path(directory).rglob("*.py"))
    for source in sources:
        # No cached bytecode, or a read-only tree: then there is nothing stale to worry about.
        with contextlib.suppress(OSError, ValueError, NotImplementedError):
            os.unlink(importlib.util.cache_from_source(source))
