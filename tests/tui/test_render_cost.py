"""What a refresh costs to paint, and that the shortcuts taken to keep it cheap paint the same.

The dashboard refreshes once a second with 64 workers whose rows all change (bench/dashboard.py):
a refresh must not lay the screen out again, must not render cells through Rich, and must
repaint only the lines that changed. PlainTable draws its rows itself (DataTable would render
every visible cell through Rich on every change); these tests hold those lines to what DataTable
draws, and the partial repaints to what a full repaint shows. The command also freezes what
start-up built out of the garbage collector's way (and only the command: a test process would
keep every app it ran).
"""

from __future__ import annotations

import dataclasses
import gc

import pytest
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import DataTable

from engine.snapshot import ManagerSnapshot, SlotState, WorkerInfo
from tui.widgets.keyed_table import KeyedTable

from .fixtures import HUMIDITY, FakeManager, failing_snapshot, healthy_snapshot, make_app
from .helpers import settle, wait_until
from .render_harness import LiveManager, measure


def worker_of(snapshot: ManagerSnapshot, slot: str) -> WorkerInfo:
    return next(w for w in snapshot.workers if w.slot == slot)


def with_worker_changed(snapshot: ManagerSnapshot, slot: str, **changes: object) -> ManagerSnapshot:
    """The snapshot with one worker's fields changed."""
    workers = tuple(dataclasses.replace(w, **changes) if w.slot == slot else w for w in snapshot.workers)
    return dataclasses.replace(snapshot, workers=workers)


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
            assert result.renders == 0  # Console.render_lines: the header row is cached, cells drawn directly
            assert result.painted["WorkersTable"] <= 1
            assert result.painted["DashboardHeader"] <= 1

    async def test_only_changed_rows_are_repainted(self):
        manager = FakeManager(snapshots=[healthy_snapshot()])
        app = make_app(manager)
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            table = app.workers_table
            snapshot, slot = healthy_snapshot(), f"{HUMIDITY}#0"
            manager.show(with_worker_changed(snapshot, slot, handled=worker_of(snapshot, slot).handled + 1))
            table._repaint_regions.clear()
            await app.refresh_dashboard()
            row = table.get_row_index(slot)
            top = table.header_height + table.content_offset.y
            assert [(region.y, region.height) for region in table._repaint_regions] == [(top + row, 1)]


def reference_lines(table: KeyedTable) -> list[list[object]]:
    """The table's visible lines as DataTable's own rendering draws them."""
    table._pseudo_class_state = table.get_pseudo_class_state()
    scroll_x, scroll_y = table.scroll_offset
    width, height = table.size
    lines = []
    for y in range(height):
        y_in_table = y + scroll_y if y >= table.header_height else y
        strip = DataTable._render_line(table, y_in_table, scroll_x, scroll_x + width, table.rich_style)
        lines.append(list(strip))
    return lines


def drawn_lines(table: KeyedTable) -> list[list[object]]:
    table._pseudo_class_state = table.get_pseudo_class_state()
    table._paint = table._new_paint(table.rich_style, table.scroll_offset.x, table.scroll_offset.y,
                                    table.header_height)
    try:
        return [list(table.render_line(y)) for y in range(table.size.height)]
    finally:
        table._paint = None


class TestKeyedTableLines:
    @pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=["wide", "narrow (scrolls sideways)"])
    async def test_lines_are_what_datatable_draws_whatever_the_cursor_hover_focus_and_scroll(self, size):
        app = make_app(FakeManager(snapshots=[failing_snapshot()]))
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            table = app.workers_table
            table.focus()
            await pilot.pause()
            states = []
            for row in range(table.row_count):
                table.move_cursor(row=row, animate=False)
                await pilot.pause()
                states.append(f"cursor on row {row}")
                assert drawn_lines(table) == reference_lines(table), states[-1]
            table.hover_coordinate = Coordinate(1, 2)
            table._set_hover_cursor(True)
            assert drawn_lines(table) == reference_lines(table), "hover"
            app.set_focus(None)
            await pilot.pause()
            assert drawn_lines(table) == reference_lines(table), "blurred"
            if size == (80, 24):  # the exit column makes the table wider than the screen
                assert table.virtual_size.width > table.size.width
                table.scroll_to(x=7, animate=False)
                await pilot.pause()
                assert table.scroll_offset.x == 7
                assert drawn_lines(table) == reference_lines(table), "scrolled sideways"
            app.theme = "textual-light"
            await pilot.pause()
            await pilot.pause()
            assert drawn_lines(table) == reference_lines(table), "light theme"

    async def test_a_row_that_changes_look_is_drawn_again(self):
        manager = FakeManager(snapshots=[healthy_snapshot()])
        app = make_app(manager)
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            table = app.workers_table
            before = drawn_lines(table)
            manager.show(with_worker_changed(healthy_snapshot(), f"{HUMIDITY}#0", state=SlotState.BACKOFF, pid=None))
            await app.refresh_dashboard()
            await pilot.pause()
            after = drawn_lines(table)
            assert after == reference_lines(table)
            assert after != before


def cached_and_fresh(widget: Widget) -> tuple[list[list[object]], list[list[object]]]:
    """The lines the widget's last paints left in its cache, and the lines a full repaint draws."""
    width, height = widget.outer_size
    cached = [list(widget._styles_cache._cache[y]) for y in range(height)]
    if isinstance(widget, KeyedTable):
        widget._clear_caches()
    widget._styles_cache.clear()
    for cache in ("_strips",):
        if isinstance(getattr(widget, cache, None), dict):
            getattr(widget, cache).clear()
    fresh = [list(strip) for strip in widget.render_lines(Region(0, 0, width, height))]
    return cached, fresh


class TestPartialRepaints:
    async def test_after_refreshes_that_repaint_only_what_changed_no_line_on_screen_is_stale(self):
        app = make_app(LiveManager())
        async with app.run_test(size=(160, 48)) as pilot:
            for _ in range(8):
                await app.refresh_dashboard()
                await pilot.pause()
            for widget in (app.header, app.workers_table, app.routes_table, app.throughput):
                cached, fresh = cached_and_fresh(widget)
                assert cached == fresh, type(widget).__name__

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
                cached, fresh = cached_and_fresh(widget)
                assert cached == fresh, type(widget).__name__
