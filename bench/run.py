"""Run every benchmark and write BENCHMARKS.md.

    python bench/run.py            # the full suite (about 13 minutes on 2 cores); writes BENCHMARKS.md
    python bench/run.py --quick    # a smoke run; prints the report instead of writing BENCHMARKS.md
    python bench/run.py --only throughput,latency --output /tmp/partial.md

Each benchmark runs as its own process (``python bench/<name>.py --json``), one after the
other, so that none shares a broker, a GIL or leftover processes with another. ``routing`` and
``dashboard`` are written by others: they are run when their file exists (and, for dashboard,
when it accepts ``--json``). Because other work may share the machine, each benchmark waits up to
QUIET_MAX_WAIT seconds for the machine to calm down first, and the report records the load average
and the CPU that processes outside the benchmark used while each one ran.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: find ``bench``

from bench.common import format_number  # noqa: E402

BENCH = ROOT / "bench"
PYTHON = sys.executable
OURS = (
    "throughput", "scaling", "startup", "recovery", "latency", "memory", "snapshot_cost", "handler_timing", "autoscale",
    "fleet",
)
OPTIONAL = ("routing", "dashboard")  # other engineers' modules, run when present
MODULE_TIMEOUT = 600
# Every process a benchmark starts (workers, brokers, helpers) inherits this variable, which is
# how leftovers are told apart from the processes of anyone else using the machine.
RUN_MARK = "ROUTEMQ_BENCH_RUN"
RUN_ID = uuid.uuid4().hex
# Before each benchmark, wait (a little) for other work on the machine to calm down.
QUIET_PERCENT = 20.0
QUIET_MAX_WAIT = 20.0


# ---------------------------------------------------------------------------------------------
# Running the modules
# ---------------------------------------------------------------------------------------------


def available_modules() -> list[str]:
    names = list(OURS)
    for name in OPTIONAL:
        path = BENCH / f"{name}.py"
        if path.exists() and _accepts_json(path):
            names.append(name)
    return names


def _accepts_json(path: Path) -> bool:
    try:
        result = subprocess.run([PYTHON, str(path), "--help"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and "--json" in result.stdout


def wait_for_quiet(max_wait: float) -> float:
    """Wait until the machine is less than QUIET_PERCENT busy (nothing of ours runs between
    benchmarks), at most ``max_wait`` seconds; the seconds waited."""
    start = time.monotonic()
    while max_wait > 0:
        before = _machine_busy_seconds()
        time.sleep(1.0)
        busy = 100 * (_machine_busy_seconds() - before) / (os.cpu_count() or 1)
        waited = time.monotonic() - start
        if busy < QUIET_PERCENT or waited >= max_wait:
            return waited
    return 0.0


def run_module(name: str, quick: bool) -> dict[str, Any]:
    """Run one benchmark; its JSON result plus how it ran (command, time, foreign load)."""
    command = [PYTHON, f"bench/{name}.py", "--json"] + (["--quick"] if quick else [])
    waited = wait_for_quiet(0.0 if quick else QUIET_MAX_WAIT)
    load_before = os.getloadavg()[0]
    cpu_before = _machine_busy_seconds(), _children_cpu_seconds()
    start = time.monotonic()
    try:
        env = {**os.environ, RUN_MARK: RUN_ID}
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=MODULE_TIMEOUT)
        output, error, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        output, error, code = "", f"timed out after {MODULE_TIMEOUT} s: {exc.stderr or ''}", -1
    elapsed = time.monotonic() - start
    busy = _machine_busy_seconds() - cpu_before[0]
    ours = _children_cpu_seconds() - cpu_before[1]
    run_info = {
        "command": "python " + " ".join(command[1:]),
        "seconds": elapsed,
        "waited_for_quiet": waited,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        # CPU used by processes that are not this benchmark's, as a share of the whole machine.
        "foreign_cpu_percent": max(0.0, 100 * (busy - ours) / (elapsed * (os.cpu_count() or 1))),
    }
    try:
        result = json.loads(output[output.index("{") :]) if code == 0 else None
    except ValueError:
        result = None
    if result is None:
        tail = (error or output).strip().splitlines()[-15:]
        return {"benchmark": name, "error": f"exit {code}", "stderr": tail, "run": run_info}
    result["run"] = run_info
    return result


def _machine_busy_seconds() -> float:
    """CPU seconds all processes have used since boot (every field of /proc/stat but idle and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    """CPU seconds of our finished descendants (a module's workers, brokers and helpers included:
    each process reaped its children, so their times were added up the tree)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------
# Leftovers
# ---------------------------------------------------------------------------------------------


def our_processes() -> dict[int, str]:
    """Processes still running that this run started (they carry RUN_MARK=RUN_ID), by pid."""
    mark = f"{RUN_MARK}={RUN_ID}".encode()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if mark not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                found[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


# ---------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    import psutil

    return {
        "CPU": _cpu_model(),
        "Cores": str(os.cpu_count()),
        "RAM": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "Kernel": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "paho-mqtt": importlib.metadata.version("paho-mqtt"),
        "psutil": importlib.metadata.version("psutil"),
        "Mosquitto": _mosquitto_version(),
        "Commit": _git_commit(),
    }


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mosquitto_version() -> str:
    sys.path.insert(0, str(ROOT))
    from engine.broker import find_mosquitto

    binary = find_mosquitto()
    if binary is None:
        return "not installed"
    result = subprocess.run([binary, "-h"], capture_output=True, text=True)
    first = (result.stdout or result.stderr).strip().splitlines()[:1]
    return first[0].removeprefix("mosquitto version ") if first else "unknown"


def _git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "engine")
    return commit + (" (engine/ has uncommitted changes)" if dirty else "")


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return format_number(value)


def _goal_cell(figure: dict[str, Any]) -> str:
    if "goal" not in figure:
        return ""
    return f"{figure['goal']}: **{'met' if figure['met'] else 'MISSED'}**"


def figures_table(figures: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| Figure | Median | Runs | Baseline | Baseline median | Ratio | Goal |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f['label']} | {_num(f['value'])} {f['unit']} | {f['runs']} | {f.get('baseline_label') or ''} "
            f"| {_num(f.get('baseline'))} | {_num(f.get('ratio'))} | {_goal_cell(f)} |"
        )
    return lines


def routing_section(result: dict[str, Any]) -> list[str]:
    """bench/routing.py has its own JSON shape (median dispatch cost per router size)."""
    lines = [
        f"Median of {result['repeats']} repeats x {result['calls_per_repeat']:,} calls.",
        "",
        "| Routes | dispatch µs | mixed µs | lookup µs | baseline µs | overhead µs |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["sizes"].values():
        lines.append(
            f"| {row['routes']:,} | {row['dispatch_us']:.3f} | {row['dispatch_mixed_us']:.3f} | {row['lookup_us']:.3f} "
            f"| {row['baseline_us']:.3f} | {row['overhead_us']:.3f} |"
        )
    goal = result["goal"]
    lines += [
        "",
        f"- dispatch 10 000 routes : 1 route = **{result['ratio_dispatch_10000_to_1']:.3f}** "
        f"(goal < {goal['ratio_below']}); lookup ratio {result['ratio_lookup_10000_to_1']:.3f}",
        f"- worst dispatch overhead over the baseline = **{result['max_overhead_us']:.3f} µs** "
        f"(goal < {goal['overhead_below_us']} µs): goal **{'met' if result['goal_met'] else 'MISSED'}**",
    ]
    return lines


def module_section(result: dict[str, Any]) -> list[str]:
    name = result["benchmark"]
    run = result["run"]
    title = result.get("title") or name
    lines = [f"### {title}", ""]
    if "error" in result:
        lines += [f"**Failed** ({result['error']}):", "", "```", *result["stderr"], "```"]
    elif "figures" in result:
        lines += figures_table(result["figures"])
        notes = result.get("notes", [])
        if notes:
            lines += [""] + [f"- {note}" for note in notes]
        if result.get("explanation"):
            lines += ["", result["explanation"]]
        for detail in result.get("details", []):  # e.g. what the autoscaler did, one item a line
            lines += ["", f"{detail['title']}:", ""] + [f"- {item}" for item in detail["items"]]
    elif name == "routing" and "sizes" in result:
        lines += routing_section(result)
    else:  # an unknown shape: show it as it is
        shown = {k: v for k, v in result.items() if k != "run"}
        lines += ["```json", json.dumps(shown, indent=2), "```"]
    lines += [
        "",
        f"`{run['command']}`: {run['seconds']:.0f} s (after {run.get('waited_for_quiet', 0):.0f} s waiting for a "
        f"quieter machine); load average {run['load_before']:.2f} -> "
        f"{run['load_after']:.2f}; CPU used by other processes while it ran: {run['foreign_cpu_percent']:.0f}% "
        "of the machine",
        "",
    ]
    return lines


def goals_summary(results: list[dict[str, Any]]) -> list[str]:
    lines = ["| Benchmark | Figure | Median | Ratio | Goal |", "|---|---|---:|---:|---|"]
    for result in results:
        for f in result.get("figures", []):
            if "goal" in f:
                lines.append(
                    f"| {result['benchmark']} | {f['label']} | {_num(f['value'])} {f['unit']} "
                    f"| {_num(f.get('ratio'))} | {_goal_cell(f)} |"
                )
        if result["benchmark"] == "routing" and "goal_met" in result:
            lines.append(
                f"| routing | dispatch 10 000 : 1 routes, worst overhead {result['max_overhead_us']:.2f} µs "
                f"| | {result['ratio_dispatch_10000_to_1']:.3f} "
                f"| ratio < {result['goal']['ratio_below']}, overhead < {result['goal']['overhead_below_us']} µs: "
                f"**{'met' if result['goal_met'] else 'MISSED'}** |"
            )
    return lines


def render(results: list[dict[str, Any]], info: dict[str, str], quick: bool, total: float) -> str:
    today = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        "# Benchmarks",
        "",
        (
            "Generated by `python bench/run.py --quick` (a smoke run: indicative numbers only)"
            if quick
            else "Generated by `python bench/run.py`"
        )
        + f" on {today}; the whole suite took {total / 60:.1f} minutes.",
        "Every figure is the median of several runs (the count is given per figure) and, where there is",
        "one, its ratio to a baseline measured in the same run. How each benchmark measures is described",
        "in its module's docstring.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in info.items()],
        "",
        "## How to run",
        "",
        "```sh",
        "python bench/run.py          # everything, writes BENCHMARKS.md",
        "python bench/run.py --quick  # smoke run, prints the report",
        "python bench/<name>.py [--json] [--quick]   # one benchmark",
        "```",
        "",
        "Each benchmark starts its own private Mosquitto (`engine.broker.PrivateMosquitto`, no persistence,",
        "`max_queued_messages 1000000`, `max_inflight_messages 100`) and stops it, with every process it",
        "started, before it ends.",
        "",
        "## Goals",
        "",
        *goals_summary(results),
        "",
        "## Results",
        "",
    ]
    for result in results:
        lines += module_section(result)
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer, smaller runs")
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--output", help="where to write the report (default: BENCHMARKS.md; --quick: stdout)")
    args = parser.parse_args(argv)
    names = available_modules()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown or unavailable benchmarks: {', '.join(unknown)} (available: {', '.join(names)})")
        names = [n for n in names if n in wanted]
    start = time.monotonic()
    results = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        result = run_module(name, args.quick)
        status = result.get("error") or f"{result['run']['seconds']:.0f} s"
        print(f"  {name}: {status}", file=sys.stderr, flush=True)
        results.append(result)
    text = render(results, machine(), args.quick, time.monotonic() - start)
    output = args.output or (None if args.quick else str(ROOT / "BENCHMARKS.md"))
    if output:
        Path(output).write_text(text)
        print(f"wrote {output}", file=sys.stderr)
    else:
        print(text)
    time.sleep(1.0)  # a process signalled at the very end may still be exiting
    left = our_processes()
    for pid, cmd in left.items():
        print(f"LEFT BEHIND: {pid} {cmd}", file=sys.stderr)
    failed = [r["benchmark"] for r in results if "error" in r]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or left else 0


if __name__ == "__main__":
    raise SystemExit(main())
