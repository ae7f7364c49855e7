"""`routemq-dash ctl status` as text: what another manager's status can and cannot make it print."""

from __future__ import annotations

from engine.fleet.observer import ManagerStatus
from engine.fleet.summary import FleetSummary
from tui.ctl import status_table

SUMMARY = FleetSummary(2, 3, 2, 41.5, 7, "connected")


def test_the_table_has_a_row_per_manager_with_its_numbers():
    table = status_table([ManagerStatus("edge-1", "online", 1.2, "rack1", 42, "0.1.0", summary=SUMMARY)])
    assert table.splitlines() == [
        "MANAGER  HOST   STATE   WORKERS  MSG/S  FAILED  BROKER     AGE",
        "edge-1   rack1  online  2/3      41.5   7       connected  1s",
    ]


def test_a_line_break_or_an_escape_in_a_status_never_makes_a_row_or_reaches_the_terminal():
    forged = ManagerStatus("edge-1", "online", 0.0, "a\nedge-2  rack2  online  4/4\x1b[2J", summary=SUMMARY,
                           problem="bad\r\nline")
    lines = status_table([forged]).splitlines()
    assert len(lines) == 3 and lines[1].startswith("edge-1") and "\x1b" not in "".join(lines)
    assert "\\n" in lines[1] and lines[2] == "edge-1: bad\\r\\nline"


def test_an_empty_fleet_says_so():
    assert status_table([]).splitlines()[1] == "(no manager of this group has published a status)"
