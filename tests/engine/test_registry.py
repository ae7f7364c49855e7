"""RouterRegistry: which modules of a package are loaded, in which order, and how failures read.

Every test builds its own package under ``tmp_path`` with a unique name, so tests never share
modules, and the fixture removes the package from ``sys.modules`` afterwards.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine import Router, RouterLoadError, RouterRegistry
from engine.router_registry import RouterPackageNotFound

MakePackage = Callable[[dict[str, str]], str]


def router_module(*topics: str) -> str:
    """Source of a router module registering ``topics`` in this order."""
    lines = [
        "from engine import Router",
        "router = Router()",
        "def handle(payload, client, **params):",
        "    return __name__",
    ]
    lines += [f"router.on({topic!r}, handle)" for topic in topics]
    return "\n".join(lines) + "\n"


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakePackage]:
    """Write a package of the given files (relative path -> source); return its unique name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def make(files: dict[str, str]) -> str:
        name = f"rt_{uuid.uuid4().hex[:12]}"
        made.append(name)
        root = tmp_path / name
        root.mkdir()
        files = {"__init__.py": "", **files}
        for relative, source in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source))
        return name

    yield make
    for name in made:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


def location_of(broken, package_root: Path) -> tuple[Path, str]:
    path, _, line = broken.location.rpartition(":")
    return Path(path).resolve().relative_to(package_root.resolve()), line


# --------------------------------------------------------------------------------------------
# What is loaded, in which order
# --------------------------------------------------------------------------------------------


def test_every_public_module_and_sub_package_is_merged_init_first_then_in_dotted_name_order(make_package):
    package = make_package(
        {
            "__init__.py": router_module("init/route"),
            "zeta.py": router_module("zeta/2", "zeta/1"),  # registration order kept inside a module
            "alpha/__init__.py": router_module("alpha/init"),
            "alpha/beta.py": router_module("alpha/beta"),
            "alpha/gamma/__init__.py": "",
            "alpha/gamma/deep.py": router_module("alpha/gamma/deep"),
            "alpha_two.py": router_module("alpha_two"),
            "middle.py": router_module("middle"),
        }
    )
    registry = RouterRegistry(package)
    router = registry.discover_and_load_routers()
    assert isinstance(router, Router)
    assert [r.topic for r in router.routes] == [
        "init/route",
        "alpha/init",
        "alpha/beta",
        "alpha/gamma/deep",
        "alpha_two",
        "middle",
        "zeta/2",
        "zeta/1",
    ]
    assert registry.loaded_modules == [
        package,
        f"{package}.alpha",
        f"{package}.alpha.beta",
        f"{package}.alpha.gamma.deep",
        f"{package}.alpha_two",
        f"{package}.middle",
        f"{package}.zeta",
    ]
    assert router.source_package == package
    assert registry.broken == []


def test_private_modules_and_packages_are_never_imported(make_package):
    package = make_package(
        {
            "public.py": router_module("public"),
            "_private.py": "raise RuntimeError('a private module was imported')\n",
            "_hidden/__init__.py": "raise RuntimeError('a private package was imported')\n",
            "_hidden/inside.py": router_module("hidden/inside"),
            "pub/__init__.py": "",
            "pub/_impl.py": "raise RuntimeError('a private sub-module was imported')\n",
            "pub/api.py": router_module("pub/api"),
        }
    )
    router = RouterRegistry(package).discover_and_load_routers()
    assert [r.topic for r in router.routes] == ["pub/api", "public"]
    imported = [m for m in sys.modules if m.startswith(package + ".")]
    assert [m for m in imported if any(part.startswith("_") for part in m.split(".")[1:])] == []


def test_modules_without_a_router_are_helpers_and_are_skipped(make_package):
    package = make_package(
        {
            "helpers.py": "def double(x):\n    return 2 * x\n",
            "none.py": "router = None\n",
            "uses_helper.py": "from .helpers import double\n" + router_module("uses"),
        }
    )
    registry = RouterRegistry(package)
    router = registry.discover_and_load_routers()
    assert [r.topic for r in router.routes] == ["uses"]
    assert registry.loaded_modules == [f"{package}.uses_helper"]


def test_a_package_init_re_exporting_a_sub_module_router_loads_its_routes_once(make_package):
    package = make_package({"__init__.py": "from .api import router\n", "api.py": router_module("api/x")})
    router = RouterRegistry(package).discover_and_load_routers()
    assert [r.topic for r in router.routes] == ["api/x"]


def test_the_example_routers_give_the_three_example_routes():
    router = RouterRegistry("routers").discover_and_load_routers()
    assert [(r.topic, r.qos, r.shared, r.worker_count) for r in router.routes] == [
        ("devices/{device_id}/commands/{command}", 2, False, 1),
        ("sensors/+/temperature", 1, True, 2),
        ("sensors/{sensor_id}/humidity", 1, True, 1),
    ]
    assert router.source_package == "routers"


# --------------------------------------------------------------------------------------------
# Broken modules
# --------------------------------------------------------------------------------------------

BROKEN_FILES = {
    "good.py": router_module("good"),
    "bad_syntax.py": "from engine import Router\nrouter = Router()\ndef oops(:\n    pass\n",
    "bad_name.py": "from engine import Router\n\nrouter = Router()\nx = undefined_name\n",
    "bad_import.py": "from engine import Router\nfrom no_such_module_xyz import thing\n",
    "broken_pkg/__init__.py": "import os\nraise RuntimeError('package init failed')\n",
    "broken_pkg/inner.py": router_module("never/loaded"),
}

EXPECTED_FAILURES = {
    # module suffix: (file, line, words the reason contains)
    "bad_import": ("bad_import.py", "2", "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    "bad_name": ("bad_name.py", "4", "NameError: name 'undefined_name' is not defined"),
    "bad_syntax": ("bad_syntax.py", "3", "SyntaxError"),
    "broken_pkg": ("broken_pkg/__init__.py", "2", "RuntimeError: package init failed"),
}


def test_strict_loading_raises_one_error_listing_every_broken_module_with_file_line_and_exception(
    make_package, tmp_path
):
    package = make_package(BROKEN_FILES)
    with pytest.raises(RouterLoadError) as caught:
        RouterRegistry(package).discover_and_load_routers()
    error = caught.value
    by_module = {b.module.rsplit(".", 1)[-1]: b for b in error.broken}
    assert sorted(by_module) == sorted(EXPECTED_FAILURES)
    assert len(error.broken) == len(EXPECTED_FAILURES)  # each broken module reported once
    message = str(error)
    assert f"{len(EXPECTED_FAILURES)} router modules in package {package!r} failed to load" in message
    for suffix, (file, line, reason) in EXPECTED_FAILURES.items():
        broken = by_module[suffix]
        assert broken.module == f"{package}.{suffix}"
        assert location_of(broken, tmp_path / package) == (Path(file), line)
        assert reason in broken.reason
        assert str(broken) in message


def test_non_strict_loading_logs_every_broken_module_and_loads_the_rest(make_package, tmp_path, caplog):
    package = make_package(BROKEN_FILES)
    registry = RouterRegistry(package)
    with caplog.at_level(logging.ERROR, logger="routemq.registry"):
        router = registry.discover_and_load_routers(strict=False)
    assert [r.topic for r in router.routes] == ["good"]
    assert sorted(b.module.rsplit(".", 1)[-1] for b in registry.broken) == sorted(EXPECTED_FAILURES)
    logged = [r.getMessage() for r in caplog.records if r.name == "routemq.registry"]
    assert len(logged) == len(EXPECTED_FAILURES)
    for suffix, (file, line, _) in EXPECTED_FAILURES.items():
        assert any(f"{file}:{line}" in text and f"{package}.{suffix}" in text for text in logged), suffix


def test_strict_can_be_turned_off_when_the_registry_is_made(make_package):
    package = make_package({"good.py": router_module("good"), "bad.py": "raise ImportError('nope')\n"})
    router = RouterRegistry(package, strict=False).discover_and_load_routers()
    assert [r.topic for r in router.routes] == ["good"]
    with pytest.raises(RouterLoadError, match="ImportError: nope"):
        RouterRegistry(package, strict=False).discover_and_load_routers(strict=True)


def test_a_router_attribute_that_is_not_a_router_is_an_error_naming_the_module(make_package):
    package = make_package({"wrong.py": "router = {'topic': 'handler'}\n"})
    with pytest.raises(RouterLoadError) as caught:
        RouterRegistry(package).discover_and_load_routers()
    assert f"{package}.wrong" in str(caught.value)
    assert "`router` is a dict, not an engine.Router" in str(caught.value)


def test_a_module_duplicating_an_earlier_route_is_reported_and_adds_none_of_its_routes(make_package, caplog):
    package = make_package(
        {"a.py": router_module("x/{id}"), "b.py": router_module("b/own", "x/+")}  # b's second route clashes
    )
    with pytest.raises(RouterLoadError, match=rf"duplicates.*{package}\.b"):
        RouterRegistry(package).discover_and_load_routers()
    with caplog.at_level(logging.ERROR, logger="routemq.registry"):
        router = RouterRegistry(package).discover_and_load_routers(strict=False)
    assert [r.topic for r in router.routes] == ["x/{id}"]
    assert any(f"{package}.b" in r.getMessage() for r in caplog.records)


def test_a_package_that_cannot_be_found_is_an_error_naming_the_package():
    missing = f"rt_missing_{uuid.uuid4().hex[:8]}"
    with pytest.raises(RouterPackageNotFound) as caught:
        RouterRegistry(missing).discover_and_load_routers()
    assert repr(missing) in str(caught.value)
    assert isinstance(caught.value, RouterLoadError)


def test_a_package_whose_init_fails_is_an_error_naming_its_file_and_line(make_package, tmp_path):
    package = make_package({"__init__.py": "\n\nimport no_such_module_abc\n"})
    with pytest.raises(RouterLoadError) as caught:
        RouterRegistry(package).discover_and_load_routers()
    assert not isinstance(caught.value, RouterPackageNotFound)
    [broken] = caught.value.broken
    assert location_of(broken, tmp_path / package) == (Path("__init__.py"), "3")
    assert "no_such_module_abc" in broken.reason


# --------------------------------------------------------------------------------------------
# Reloading
# --------------------------------------------------------------------------------------------


def test_fresh_loading_reads_edited_files_even_when_cached_bytecode_looks_current(
    make_package, tmp_path, monkeypatch
):
    # Python trusts a .pyc whose recorded source mtime (whole seconds) and size match the file.
    # An edit within the same second that keeps the size must still be seen: pin the mtime.
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    package = make_package({"live.py": router_module("v1/topic")})
    path = tmp_path / package / "live.py"
    pinned = 1_700_000_000
    os.utime(path, (pinned, pinned))
    registry = RouterRegistry(package)
    assert [r.topic for r in registry.discover_and_load_routers().routes] == ["v1/topic"]
    assert os.path.exists(importlib.util.cache_from_source(str(path)))  # the stale trap is set

    path.write_text(router_module("v2/topic"))  # same size
    os.utime(path, (pinned, pinned))
    assert [r.topic for r in registry.discover_and_load_routers().routes] == ["v1/topic"]  # cached
    assert [r.topic for r in registry.discover_and_load_routers(fresh=True).routes] == ["v2/topic"]


def test_fresh_loading_picks_up_new_and_deleted_modules(make_package, tmp_path):
    package = make_package({"one.py": router_module("one")})
    registry = RouterRegistry(package)
    assert [r.topic for r in registry.discover_and_load_routers().routes] == ["one"]
    (tmp_path / package / "two.py").write_text(router_module("two"))
    (tmp_path / package / "one.py").unlink()
    assert [r.topic for r in registry.discover_and_load_routers(fresh=True).routes] == ["two"]


def test_fresh_loading_reports_a_module_broken_by_an_edit(make_package, tmp_path):
    package = make_package({"one.py": router_module("one")})
    registry = RouterRegistry(package)
    registry.discover_and_load_routers()
    (tmp_path / package / "one.py").write_text("from engine import Router\nrouter = Router(\n")
    with pytest.raises(RouterLoadError, match="SyntaxError"):
        registry.discover_and_load_routers(fresh=True)
