"""Package boundaries: the public import surface, and the engine never importing textual."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import engine

REPO = Path(__file__).resolve().parents[2]


def test_the_public_names_import_from_engine():
    from engine import Middleware, Router, RouterRegistry, WorkerManager, load_settings

    assert callable(load_settings)
    assert all(isinstance(cls, type) for cls in (Middleware, Router, RouterRegistry, WorkerManager))


def test_the_public_classes_import_from_the_module_names_of_the_reference():
    from engine.router import Router
    from engine.router_registry import RouterRegistry
    from engine.worker_manager import WorkerManager

    assert (Router, RouterRegistry, WorkerManager) == (engine.Router, engine.RouterRegistry, engine.WorkerManager)


def test_everything_in_engine_all_exists():
    assert [name for name in engine.__all__ if not hasattr(engine, name)] == []


def _modules_importing_textual(modules: list[str]) -> dict[str, object]:
    """Import ``modules`` one by one in a fresh interpreter; report any that pulled in textual."""
    script = (
        "import importlib, json, sys\n"
        "culprits = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        culprits[name] = f'import failed: {type(exc).__name__}: {exc}'\n"
        "        continue\n"
        "    if 'textual' in sys.modules and not culprits:\n"
        "        culprits[name] = 'imported textual'\n"
        "print(json.dumps(culprits))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(modules)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_the_engine_core_never_imports_textual():
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import engine, engine.router, engine.worker_manager, engine.snapshot, engine.settings, "
            "engine.router_registry, engine.topics, engine.broker; import sys; "
            "assert 'textual' not in sys.modules, 'textual was imported'",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_no_module_under_engine_imports_textual():
    # Found by pkgutil, so modules added later are covered without editing this test.
    modules = ["engine"] + [info.name for info in pkgutil.walk_packages(engine.__path__, prefix="engine.")]
    assert {"engine.router", "engine.topics", "engine.settings"} <= set(modules)
    assert _modules_importing_textual(modules) == {}


def test_the_textual_check_would_notice_textual():
    # The check above must be able to fail: a module that imports textual is reported.
    assert _modules_importing_textual(["engine", "textual"]) == {"textual": "imported textual"}


def test_the_routing_benchmark_runs_and_reports_json():
    done = subprocess.run(
        [sys.executable, "bench/routing.py", "--json", "--repeats", "1", "--calls", "200"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(done.stdout)
    assert sorted(report["sizes"], key=int) == ["1", "100", "1000", "10000"]
    assert all(row["dispatch_us"] > 0 and row["lookup_us"] > 0 for row in report["sizes"].values())
    assert report["ratio_dispatch_10000_to_1"] > 0
