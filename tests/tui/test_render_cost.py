"""What a refresh costs to paint, and that the shortcuts taken to keep it cheap paint the right thing.

The dashboard refreshes once a second with 64 workers whose rows all change (bench/dashboard.py):
a refresh must not lay the screen out again, must not render cells through Rich, and must draw
and repaint only the rows that changed. The tables (tui/widgets/table_view.py) draw their rows
themselves and keep each row's line until it changes; these tests hold those lines to what the
table holds, the partial repaints to what a fresh table shows, and the cursor to its row. Only
public means are used: the table's own ``draw_row`` (wrapped to count rows drawn), ``refresh``
(wrapped to see what is repainted) and ``render_line`` / ``render_lines``. The command also
freezes what start-up built out of the garbage collector's way (and only the command: a test
process would keep every app it ran).
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable
from typing import Any

import pytest
from rich.segment import Segment
from textual import events
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from engine.snapshot import ManagerSnapshot, SlotState, WorkerInfo
from tui.format import MISSING
from tui.widgets.table_view import RowSelected, TableView

from .fixtures import HUMIDITY, TEMPERATURE, FakeManager, failing_snapshot, healthy_snapshot, make_app
from .helpers import settle, wait_until
from .render_harness import LiveManager, measure


def worker_of(snapshot: ManagerSnapshot, slot: str) -> WorkerInfo:
    return next(w for w in snapshot.workers if w.slot == slot)


def with_worker_changed(snapshot: ManagerSnapshot, slot: str, **changes: object) -> ManagerSnapshot:
    """The snapshot with one worker's fields changed."""
    workers = tuple(dataclasses.replace(w, **changes) if w.slot == slot else w for w in snapshot.workers)
    return dataclasses.replace(snapshot, workers=workers)


def count_rows_drawn(table: TableView) -> list[int]:
    """Wrap the table's draw_row: the list fills with the index of each row drawn (-1: the header)."""
    drawn: list[int] = []
    draw_row = table.draw_row

    def counted(row: Any, index: int, width: int) -> Strip:
        drawn.append(index)
        return draw_row(row, index, width)

    table.draw_row = counted  # type: ignore[method-assign]
    return drawn


def record_refreshes(widget: Widget) -> list[tuple[Region, ...]]:
    """Wrap the widget's refresh: the list fills with the regions of each call (() for all of it)."""
    calls: list[tuple[Region, ...]] = []
    refresh: Callable[..., Any] = widget.refresh

    def recorded(*regions: Region, **options: Any) -> Any:
        calls.append(regions)
        return refresh(*regions, **options)

    widget.refresh = recorded  # type: ignore[method-assign]
    return calls


def lines_of(widget: Widget) -> list[list[Segment]]:
    """What the widget paints, every line of it, as the compositor gets it."""
    width, height = widget.outer_size
    return [list(strip) for strip in widget.render_lines(Region(0, 0, width, height))]


def texts(table: TableView) -> list[str]:
    return [table.render_line(y).text for y in range(table.scrollable_content_region.height)]


class TestGarbageCollection:
    async def test_the_command_freezes_what_start_up_built_once_the_first_refresh_is_shown(self, monkeypatch):
        calls: list[str] = []
        monkeypatch.setattr(gc, "collect", lambda *args: calls.append("collect") or 0)
        monkeypatch.setattr(gc, "freeze", lambda: calls.append(f"freeze after {manager.snapshot_calls} refresh"))
        manager = FakeManager()
        app = make_app(manager, refresh=30.0, freeze_gc=True)
        async with app.run_test() as pilot:
            await wait_until(pilot, lambda: app.refresh_timer is not None, what="the first refresh")
            await app.refresh_dashboard()
        assert calls == ["collect", "freeze after 1 refresh"]  # once

    async def test_tests_and_other_embedders_do_not_freeze(self, monkeypatch):
        monkeypatch.setattr(gc, "freeze", lambda: pytest.fail("froze"))
        app = make_app(FakeManager(), refresh=30.0)
        async with app.run_test() as pilot:
            await wait_until(pilot, lambda: app.refresh_timer is not None, what="the first refresh")


class TestRefreshCost:
    async def test_a_refresh_of_64_changing_workers_lays_nothing_out_and_renders_no_cell_through_rich(self):
        results = await measure(refreshes=5, warmup=3)
        for result in results:
            assert result.layouts == 0
            assert result.renders == 0  # Console.render_lines: the tables and the header draw their lines
            assert result.painted["WorkersTable"] <= 1
            assert result.painted["DashboardHeader"] <= 1

    async def test_only_the_changed_row_is_drawn_and_repainted(self):
        manager = FakeManager(snapshots=[healthy_snapshot()])
        app = make_app(manager)
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            table = app.workers_table
            snapshot, slot = healthy_snapshot(), f"{HUMIDITY}#0"
            manager.show(with_worker_changed(snapshot, slot, handled=worker_of(snapshot, slot).handled + 1))
            drawn, refreshed = count_rows_drawn(table), record_refreshes(table)
            await app.refresh_dashboard()
            await pilot.pause()
            row = table.get_row_index(slot)
            assert [[(region.y, region.height) for region in regions] for regions in refreshed] == [[(1 + row, 1)]]
            assert drawn == [row]
            assert "30,116" in table.render_line(1 + row).text

    async def test_an_unchanged_refresh_draws_and_repaints_nothing(self):
        app = make_app(FakeManager(snapshots=[healthy_snapshot()]))
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            drawn, refreshed = count_rows_drawn(app.workers_table), record_refreshes(app.workers_table)
            await app.refresh_dashboard()
            await pilot.pause()
            assert drawn == [] and refreshed == []


class TestLines:
    async def test_the_header_and_rows_show_the_cells_justified_in_columns_as_wide_as_their_widest_text(self):
        app = make_app(FakeManager(snapshots=[failing_snapshot()]))
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            lines = texts(app.workers_table)
        # At 160 columns: the columns that fit, in their order of priority (last msg, uptime and
        # detail do not); ~ for the en dash shown where a value is unknown.
        expected = [
            " slot  route                           pid  state       cpu %  busy %    memory  handled  failed  msg/s  "
            "restarts  beat  last exit                       ",
            " #0    sensors/+/temperature         41200  running      23.9     100  51.6 MiB   64,930       3    241  "
            "       0     ~  ~                               ",
            " #1    sensors/+/temperature             ~  backoff         ~       ~         ~   12,004       1      0  "
            "       2     ~  SIGKILL (likely OOM or killed)  ",
            " #0    sensors/{sensor_id}/humidity      ~  crash-loop      ~       ~         ~      310     310      0  "
            "       5     ~  1 (crashed)                     ",
            " #1    sensors/{sensor_id}/humidity  41211  starting     31.0       ~  22.4 MiB        0       0      0  "
            "       0     ~  ~                               ",
            " main  (non-shared routes)           41199  running       0.4       ~  39.0 MiB      118       0    0.2  "
            "       0     ~  ~                               ",
            " " * 158,  # no more rows
        ]
        expected[:6] = [line.ljust(158) for line in expected[:6]]  # past the last column: the table's background
        assert lines[:7] == [line.replace("~", MISSING) for line in expected]

    async def test_cursor_focus_and_row_styles_come_from_the_component_classes(self):
        app = make_app(FakeManager(snapshots=[failing_snapshot()]))
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            table = app.workers_table
            assert app.focused is table and table.cursor_row == 0

            def style_at(line: int, x: int) -> Any:
                return _style_at(table.render_line(line), x)

            cursor = table.get_component_rich_style("table-view--cursor")
            assert style_at(1, 2).bgcolor == cursor.bgcolor  # row 0, under the cursor
            assert style_at(2, 2).bgcolor != cursor.bgcolor
            error = app.theme_variables["text-error"].lower()
            assert style_at(2, 2).color.triplet.hex == error  # backoff: the whole row in the error colour
            assert style_at(3, 45).bold and style_at(3, 45).reverse  # the crash-loop badge (the state cell)
            assert not style_at(3, 2).reverse
            header = table.get_component_styles("table-view--header").rich_style
            assert style_at(0, 2).bgcolor == header.bgcolor and style_at(0, 2).bold
            app.set_focus(None)
            await pilot.pause()
            blurred = table.get_component_rich_style("table-view--cursor")
            assert blurred.bgcolor != cursor.bgcolor
            assert style_at(1, 2).bgcolor == blurred.bgcolor

    async def test_at_80_columns_the_workers_table_needs_no_scrolling_for_its_columns(self):
        app = make_app(FakeManager(snapshots=[failing_snapshot()]))
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            table = app.workers_table
            assert table.shown_columns == ["slot", "route", "pid", "state", "cpu", "memory", "exit"]
            assert table.virtual_size.width <= table.scrollable_content_region.width
            lines = texts(table)
        assert lines[0].split() == ["slot", "route", "pid", "state", "cpu", "%", "memory", "last", "exit"]
        # The route and the exit cause are shortened with an ellipsis, every row still reads apart.
        assert "…" in lines[2] and lines[2].rstrip().endswith("…")
        names = [" ".join(line.split()[:2]) for line in lines[1:6]]
        assert len(set(names)) == 5

    async def test_a_table_wider_than_the_screen_scrolls_under_its_frozen_slot_and_route(self):
        app = make_app(FakeManager(snapshots=[healthy_snapshot()]))
        async with app.run_test(size=(50, 24)) as pilot:
            await settle(pilot)
            table = app.workers_table
            width = table.scrollable_content_region.width
            assert table.virtual_size.width > width  # even the columns that always show do not fit
            frozen = table.column_x("pid")  # slot and route come first
            before = texts(table)
            table.scroll_to(x=7, animate=False)
            await pilot.pause()
            assert table.scroll_offset.x == 7
            after = texts(table)
            for old, new in zip(before, after, strict=True):
                assert new[:frozen] == old[:frozen]  # slot and route stay in place
                assert new[frozen:width - 7] == old[frozen + 7:width]  # the rest moved 7 cells left
            assert after[1].split()[:2] == before[1].split()[:2]
            # A click on the header right of the frozen columns sorts the column drawn there.
            x = frozen + table.column_width("pid") + table.column_width("state") - 7 + 2
            await pilot.click(table, offset=(1 + x, 1))
            assert table.sort_column == "cpu"

    async def test_a_row_that_changes_look_is_drawn_again(self):
        manager = FakeManager(snapshots=[healthy_snapshot()])
        app = make_app(manager)
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            table = app.workers_table
            slot = f"{HUMIDITY}#0"
            row = table.get_row_index(slot)
            before = list(table.render_line(1 + row))
            manager.show(with_worker_changed(healthy_snapshot(), slot, state=SlotState.BACKOFF, pid=None))
            await app.refresh_dashboard()
            await pilot.pause()
            after = table.render_line(1 + row)
            assert list(after) != before
            assert after.text.split()[:4] == ["#0", "sensors/{sensor_id}/humidity", MISSING, "backoff"]
            error = app.theme_variables["text-error"].lower()
            assert _style_at(after, 2).color.triplet.hex == error


def _style_at(strip: Strip, x: int) -> Any:
    """The style of the cell at x in a line."""
    position = 0
    for segment in strip:
        position += len(segment.text)
        if x < position:
            return segment.style
    raise IndexError(x)


class TestCursor:
    async def test_the_cursor_stays_on_its_row_by_key_when_rows_come_go_and_move(self):
        manager = FakeManager(snapshots=[healthy_snapshot()])
        app = make_app(manager)
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            table = app.workers_table
            table.select_key(f"{HUMIDITY}#0")
            healthy = healthy_snapshot()
            workers = healthy.workers
            for shown in (
                workers[::-1],  # reversed
                (workers[3], workers[2]),  # two gone
                (*workers, dataclasses.replace(workers[0], slot=f"{TEMPERATURE}#9", index=9)),  # back, and a new one
            ):
                manager.show(dataclasses.replace(healthy, workers=shown))
                await app.refresh_dashboard()
                await pilot.pause()
                assert table.row_keys == [w.slot for w in shown]
                assert table.selected_key == f"{HUMIDITY}#0"
                assert table.cursor_row == table.row_keys.index(f"{HUMIDITY}#0")
                cursor = table.get_component_rich_style("table-view--cursor")
                assert _style_at(table.render_line(1 + table.cursor_row), 2).bgcolor == cursor.bgcolor

    async def test_when_its_row_goes_the_cursor_stays_where_it_was(self):
        manager = FakeManager(snapshots=[healthy_snapshot()])
        app = make_app(manager)
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            table = app.workers_table
            table.select_key(f"{TEMPERATURE}#1")  # row 1
            healthy = healthy_snapshot()
            manager.show(dataclasses.replace(healthy, workers=tuple(w for w in healthy.workers
                                                                    if w.slot != f"{TEMPERATURE}#1")))
            await app.refresh_dashboard()
            assert table.cursor_row == 1
            assert table.selected_key == f"{HUMIDITY}#0"

    async def test_keys_wheel_and_clicks_move_the_cursor_and_scroll(self):
        app = make_app(LiveManager())  # 65 rows: more than fit
        async with app.run_test(size=(160, 40)) as pilot:
            await app.refresh_dashboard()
            await pilot.pause()
            table = app.workers_table
            table.focus()
            rows = table.scrollable_content_region.height - 1
            assert table.row_count == 65 and rows < 65
            await pilot.press("down", "down")
            assert table.cursor_row == 2 and table.scroll_offset.y == 0
            await pilot.press("pagedown")
            assert table.cursor_row == 2 + rows
            assert table.scroll_offset.y <= table.cursor_row < table.scroll_offset.y + rows  # in view
            await pilot.press("end")
            assert table.cursor_row == 64 and table.scroll_offset.y == table.max_scroll_y
            assert table.render_line(rows).text.split()[0] == "main"  # the last line shows the last row
            assert table.render_line(0).text.split()[:2] == ["slot", "route"]  # the header stays on top
            await pilot.press("pageup")
            assert table.cursor_row == 64 - rows
            await pilot.press("home")
            assert table.cursor_row == 0 and table.scroll_offset.y == 0
            for _ in range(2):  # the mouse wheel, over the table
                table.post_message(events.MouseScrollDown(table, 5, 5, 0, 1, 0, False, False, False))
            await pilot.pause()
            scrolled = table.scroll_offset.y
            assert scrolled > 0 and table.cursor_row == 0  # the wheel scrolls, the cursor stays
            assert table.render_line(1).text.split()[0] == f"#{scrolled}"
            # A click on the third row shown: the border, the header, then rows.
            await pilot.click(table, offset=(5, 1 + 1 + 2))
            assert table.cursor_row == scrolled + 2
            assert table.selected_key == f"dash/{{n}}#{scrolled + 2}"


    async def test_the_row_under_the_mouse_is_highlighted_and_enter_or_a_click_on_the_cursor_selects(self):
        app = make_app(FakeManager(snapshots=[healthy_snapshot()]))
        selected: list[str] = []
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            table = app.workers_table
            post_message = table.post_message

            def posted(message: Any) -> bool:
                if isinstance(message, RowSelected):
                    selected.append(message.key)
                return post_message(message)

            table.post_message = posted  # type: ignore[method-assign]
            hover = table.get_component_rich_style("table-view--hover")
            await pilot.hover(table, offset=(5, 1 + 1 + 2))  # the border, the header, then row 2
            assert _style_at(table.render_line(3), 2).bgcolor == hover.bgcolor
            assert _style_at(table.render_line(2), 2).bgcolor != hover.bgcolor
            await pilot.press("down")  # the keyboard hides the mouse's highlight
            assert _style_at(table.render_line(3), 2).bgcolor != hover.bgcolor
            await pilot.press("enter")
            await pilot.press("escape")  # Enter opened the worker's screen: back to the table
            await pilot.click(table, offset=(5, 1 + 1 + 1))  # the cursor's row, row 1
            await pilot.pause()
            assert selected == [f"{TEMPERATURE}#1", f"{TEMPERATURE}#1"]


class TestPartialRepaints:
    async def test_after_refreshes_that_repaint_only_what_changed_the_tables_show_what_a_fresh_app_shows(self):
        app = make_app(LiveManager())
        async with app.run_test(size=(160, 48)) as pilot:
            for _ in range(8):
                await app.refresh_dashboard()
                await pilot.pause()
            shown = [lines_of(app.workers_table), lines_of(app.routes_table)]
            last = app.snapshot
        assert last is not None
        fresh = make_app(FakeManager(snapshots=[last]))
        async with fresh.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            assert shown == [lines_of(fresh.workers_table), lines_of(fresh.routes_table)]

    async def test_after_refreshes_no_line_of_the_header_or_graph_is_stale(self):
        app = make_app(LiveManager())
        async with app.run_test(size=(160, 48)) as pilot:
            for _ in range(8):
                await app.refresh_dashboard()
                await pilot.pause()
            for widget in (app.header, app.throughput, app.workers_table, app.routes_table):
                assert lines_of(widget) == redrawn(widget), type(widget).__name__

    async def test_a_theme_change_leaves_no_line_in_the_old_colours(self):
        app = make_app(LiveManager())
        async with app.run_test(size=(160, 48)) as pilot:
            for _ in range(3):
                await app.refresh_dashboard()
                await pilot.pause()
            app.theme = "textual-light"
            await pilot.pause()
            await pilot.pause()
            for widget in (app.header, app.workers_table, app.routes_table, app.throughput):
                assert lines_of(widget) == redrawn(widget), type(widget).__name__


def redrawn(widget: Widget) -> list[list[Segment]]:
    """Every line of the widget drawn again from scratch (its own caches and Textual's dropped)."""
    widget.notify_style_update()  # each of these widgets drops what it drew
    widget.refresh()  # and Textual the lines it kept
    return lines_of(widget)
