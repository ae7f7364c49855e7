"""Pilot tests of the main screen's diagnosis features (issue 13): columns that fit the width and
explain themselves, the filter, the events panel's narrowing, acting on one worker or route,
htop's sort keys and stable sorting."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from textual.screen import Screen
from textual.widgets import Input, Static

from engine.snapshot import ManagerSnapshot, RouteInfo
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.scale import ScaleScreen
from tui.widgets.column_layout import shorten

from .fixtures import (
    ALARMS,
    HUMIDITY,
    TELEMETRY,
    TEMPERATURE,
    FakeManager,
    _totals,
    broker_down_snapshot,
    diagnosis_events,
    diagnosis_snapshot,
    event,
    failing_snapshot,
    healthy_snapshot,
    main_worker,
    make_app,
    worker,
)
from .helpers import Notifications, settle

TEMPERATURE_0, TEMPERATURE_1, TEMPERATURE_2 = (f"{TEMPERATURE}#{i}" for i in range(3))


def colour(style) -> str:
    return style.color.triplet.hex


class TestColumns:
    async def test_routes_show_the_handlers_p99_in_milliseconds(self):
        app = make_app(FakeManager(snapshots=[diagnosis_snapshot()]))
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            table = app.routes_table
            assert "p99" in table.shown_columns  # at 80 columns too
            assert [table.get_cell(topic, "p99").plain for topic in (TEMPERATURE, TELEMETRY, ALARMS)] == [
                "12.4", "0.42", "1,840"]

    async def test_more_columns_appear_as_the_terminal_widens(self):
        shown = {}
        for width in (80, 120, 200):
            app = make_app(FakeManager(snapshots=[diagnosis_snapshot()]))
            async with app.run_test(size=(width, 40)) as pilot:
                await settle(pilot)
                shown[width] = app.workers_table.shown_columns
                assert app.workers_table.virtual_size.width <= app.workers_table.scrollable_content_region.width
        assert shown[80] == ["slot", "route", "pid", "state", "cpu", "memory", "exit"]
        assert set(shown[80]) < set(shown[120]) < set(shown[200])
        assert "beat" in shown[200] and "busy" in shown[120]

    async def test_a_worker_not_heard_for_more_than_3_s_shows_its_beat_in_the_warning_colour(self):
        app = make_app(FakeManager(snapshots=[diagnosis_snapshot()]))
        async with app.run_test(size=(200, 50)) as pilot:
            await settle(pilot)
            table = app.workers_table
            warning = app.theme_variables["text-warning"].lower()
            stale, fresh = table.get_cell(TEMPERATURE_1, "beat"), table.get_cell(TEMPERATURE_0, "beat")
            assert (stale.plain, fresh.plain) == ("4.6s", "0.3s")
            assert colour(stale.style) == warning and stale.style.bold
            assert fresh.style.color is None or colour(fresh.style) != warning

    async def test_the_last_exit_of_a_running_worker_is_dimmed_not_a_death(self):
        app = make_app(FakeManager(snapshots=[diagnosis_snapshot()]))
        async with app.run_test(size=(200, 50)) as pilot:
            await settle(pilot)
            table = app.workers_table
            assert "last exit" in table.render_line(0).text
            error = app.theme_variables["text-error"].lower()
            running, dead = table.get_cell(TEMPERATURE_0, "exit"), table.get_cell(TEMPERATURE_2, "exit")
            assert running.plain == "1 (crashed)"
            foreground, background = app.workers_table.rich_style.color, app.workers_table.rich_style.bgcolor
            dimmed = running.style.color.triplet
            # Muted: between the text and the background (not the full-strength white of "auto" unblended).
            assert all(min(a, b) < c < max(a, b) for a, b, c in zip(background.triplet, foreground.triplet, dimmed,
                                                                    strict=True))
            assert colour(dead.style) == error  # a slot in backoff: its exit is news

    async def test_a_running_worker_cut_off_from_the_broker_reads_disconnected_at_80_columns(self):
        down = broker_down_snapshot()
        # temperature#1 got its connection back; the others still reconnect.
        workers = tuple(dataclasses.replace(w, connected=True, detail="") if w.slot == TEMPERATURE_1 else w
                        for w in down.workers)
        app = make_app(FakeManager(snapshots=[dataclasses.replace(down, workers=workers)]))
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            table = app.workers_table
            assert "detail" not in table.shown_columns  # the column that says why is not there
            warning = app.theme_variables["text-warning"].lower()
            success = app.theme_variables["text-success"].lower()
            for slot in (TEMPERATURE_0, f"{HUMIDITY}#0", "main"):
                cell = table.get_cell(slot, "state")
                assert cell.plain == "disconnected" and colour(cell.style) == warning, slot
            serving = table.get_cell(TEMPERATURE_1, "state")
            assert serving.plain == "running" and colour(serving.style) == success
            assert "disconnected" in table.render_line(1 + table.get_row_index(TEMPERATURE_0)).text

    async def test_a_long_exit_cause_is_shortened_and_leaves_the_other_columns_on_screen(self):
        app = make_app(FakeManager(snapshots=[diagnosis_snapshot()]))
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            table = app.workers_table
            line = table.render_line(1 + table.get_row_index(TEMPERATURE_2)).text
            assert "SIGKILL (kill" in line and line.rstrip().endswith("…")
            assert table.column_x("exit") + table.column_width("exit") <= table.scrollable_content_region.width

    async def test_routes_that_differ_only_in_the_middle_never_read_the_same(self):
        routes = ("plant/{site}/line/alpha/machines/{machine_id}/telemetry",
                  "plant/{site}/line/omega/machines/{machine_id}/telemetry")
        workers = (*(worker(route, 0) for route in routes), main_worker())
        snapshot = _totals(workers, tuple(RouteInfo(r, r, 1, True, 1, 1) for r in routes))
        app = make_app(FakeManager(snapshots=[snapshot]))
        async with app.run_test(size=(60, 24)) as pilot:
            await settle(pilot)
            table = app.workers_table
            names = [" ".join(table.render_line(1 + row).text.split()[:2]) for row in range(2)]
            assert "…" in names[0]
            assert names[0] != names[1]

    async def test_a_route_with_fewer_live_workers_than_desired_stands_out(self):
        app = make_app(FakeManager(snapshots=[diagnosis_snapshot()]))
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            table = app.routes_table
            warning = app.theme_variables["text-warning"].lower()
            short, full = table.get_cell(TEMPERATURE, "workers"), table.get_cell(TELEMETRY, "workers")
            assert short.plain == "2/3" and colour(short.style) == warning and short.style.bold
            assert full.style.color is None or colour(full.style) != warning

    async def test_the_help_describes_every_column_of_both_tables(self):
        app = make_app(FakeManager())
        async with app.run_test(size=(120, 50)) as pilot:
            await settle(pilot)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            described = dict(app.screen.columns)
            workers = dict(described["Workers"])
            routes = dict(described["Routes"])
            assert set(workers) == {spec.label for spec in app.workers_table.specs}
            assert set(routes) == {spec.label for spec in app.routes_table.specs}
            assert all(text for text in [*workers.values(), *routes.values()])
            assert "99th percentile" in routes["p99 ms"]
            shown = " ".join(str(widget.render()) for widget in app.screen.query(Static))
            assert "hang timeout" in shown  # the beat column's description is on screen
            # +N is every live process not serving, not only those starting.
            assert "+N: live processes not serving, because they are starting or cut off from the broker" in (
                routes["workers"])
            assert "disconnected (running but cut off from the broker" in workers["state"]

    async def test_the_help_says_how_to_open_a_worker_or_route_and_come_back(self):
        app = make_app(FakeManager())
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            keys = dict(app.screen.rows)
            assert "Open the screen of the worker or route under the cursor" in keys["Enter"]
            assert "Go back from a worker, route, fleet or manager screen" in keys["Esc"]
            shown = [str(label.render()) for label in app.screen.query(".help-key")]
            assert "Enter" in shown and "Esc" in shown

    @pytest.mark.parametrize("width", [80, 120, 200])
    async def test_the_help_says_when_each_optional_column_shows_truly_at_every_width(self, width):
        app = make_app(FakeManager(snapshots=[diagnosis_snapshot()]))
        async with app.run_test(size=(width, 40)) as pilot:
            await settle(pilot)
            for table in (app.workers_table, app.routes_table):
                described = dict(table.column_help())
                by_label = {spec.label: spec for spec in table.specs}
                optional = [label for label, text in table.column_help() if by_label[label].priority > 0]
                assert all("as the table widens" not in text for text in described.values())
                for rank, label in enumerate(optional, 1):
                    assert f"(optional {rank} of {len(optional)}: shown when there is room" in described[label]
                # What shows is what the help's order says: the first optional columns, none skipped.
                shown = [label for label in optional if by_label[label].key in table.shown_columns]
                assert shown == optional[: len(shown)]
                if width == 80 and table is app.routes_table:
                    assert "busy %" in shown  # at 80 columns already: "as the table widens" was not true


class TestFilter:
    async def test_slash_filters_the_table_as_you_type_and_enter_keeps_it(self):
        manager = FakeManager(snapshots=[diagnosis_snapshot()])
        app = make_app(manager)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            table = app.workers_table
            await pilot.press("slash")
            assert app.filter_bar.display and app.focused is app.filter_bar
            await pilot.press(*"tele")
            assert table.row_keys == [f"{TELEMETRY}#0", f"{TELEMETRY}#1"]
            assert table.border_subtitle.startswith("/tele: 2 of 7")
            await pilot.press("enter")
            assert not app.filter_bar.display and app.focused is table
            await app.refresh_dashboard()  # a refresh keeps the filter
            assert table.row_keys == [f"{TELEMETRY}#0", f"{TELEMETRY}#1"]
            await pilot.press("escape")  # on the table: clears it
            assert len(table.row_keys) == 7 and table.border_subtitle == "sorted by slot ▲"

    async def test_a_filter_that_looks_like_markup_is_shown_as_typed(self):
        # "[/" (or "[b]") typed in the filter must show as text, not be parsed as markup (which raised).
        app = make_app(FakeManager(snapshots=[diagnosis_snapshot()]))
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            await pilot.press("slash", "left_square_bracket", "slash", "enter")
            await app.refresh_dashboard()
            await pilot.pause()
            assert app.is_running and "/[/:" in app.export_screenshot()  # drawn as typed, in the border
            await pilot.press("slash", "left_square_bracket", *"b", "right_square_bracket", "enter")
            await pilot.pause()
            assert app.is_running and "/[b]:" in app.export_screenshot()

    async def test_escape_in_the_filter_bar_clears_the_filter(self):
        app = make_app(FakeManager(snapshots=[diagnosis_snapshot()]))
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            await pilot.press("slash", *"crash", "escape")
            assert not app.filter_bar.display
            assert len(app.workers_table.row_keys) == 7

    async def test_it_matches_state_and_the_full_slot_name_and_filters_the_routes_table_when_selected(self):
        app = make_app(FakeManager(snapshots=[diagnosis_snapshot()]))
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            await pilot.press("slash", *"CRASH-LOOP", "enter")
            assert app.workers_table.row_keys == [f"{ALARMS}#0"]
            await pilot.press("escape", "slash", *"temperature#1", "enter")
            assert app.workers_table.row_keys == [TEMPERATURE_1]
            app.routes_table.focus()
            await pilot.press("slash", *"devices", "enter")
            assert len(app.routes_table.row_keys) == 1
            assert app.focused is app.routes_table

    async def test_a_filter_that_matches_nothing_leaves_an_empty_table(self):
        app = make_app(FakeManager(snapshots=[diagnosis_snapshot()]))
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            await pilot.press("slash", *"nothing-like-this", "enter")
            assert app.workers_table.row_keys == [] and app.workers_table.selected_key is None
            assert app.workers_table.border_subtitle.startswith("/nothing-like-this: 0 of 7")
            await pilot.press("escape")
            assert app.workers_table.row_count == 7


class TestEventsPanel:
    async def test_w_narrows_the_events_to_warnings_and_errors_and_back(self):
        app = make_app(FakeManager(snapshots=[diagnosis_snapshot()], events=diagnosis_events()))
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            panel = app.log_panel
            await pilot.press("w")
            kinds = [line.text.split()[1] for line in panel.lines]
            assert kinds == ["exited", "crash-loop", "hung"]
            assert panel.border_title == "Events: warnings and errors"
            await pilot.press("w")
            assert len(panel.lines) == len(diagnosis_events()) and panel.border_title == "Events"

    async def test_l_narrows_them_to_the_selected_worker_and_follows_the_cursor(self):
        app = make_app(FakeManager(snapshots=[diagnosis_snapshot()], events=diagnosis_events()))
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            panel = app.log_panel
            app.workers_table.select_key(f"{ALARMS}#0")
            await pilot.press("l")
            assert [line.text.split()[1] for line in panel.lines] == ["exited", "crash-loop"]
            assert panel.border_title == f"Events: only {ALARMS}#0"
            app.workers_table.select_key(TEMPERATURE_2)
            await pilot.pause()
            assert [line.text.split()[1] for line in panel.lines] == ["hung"]
            await pilot.press("l")
            assert panel.border_title == "Events"

    async def test_at_80_columns_a_line_is_compact_and_the_message_gets_the_width(self):
        app = make_app(FakeManager(snapshots=[diagnosis_snapshot()], events=diagnosis_events()))
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            panel = app.log_panel
            assert panel.compact
            width = panel.scrollable_content_region.width
            last = diagnosis_events()[-1]  # at 01:02:39, an info line of a telemetry worker
            line = panel.lines[-1].text
            slot = shorten(last.slot or "", 16, "middle")
            assert line == f"01:02 I {slot}: {last.message}"
            assert len(line) <= width  # the whole message shows, where the full line left it 5 cells
            warnings = [line.text for line in panel.lines if line.text[6] == "W"]
            assert warnings and all(line.startswith("01:0") for line in warnings)
            hung = next(line.text for line in panel.lines if "hung" in line.text)
            # The slot is in the message: not said twice, and shortened there too.
            assert hung.startswith(f"01:01 W worker {shorten(TEMPERATURE_2, 16, 'middle')}: hung")
            app.workers_table.select_key(f"{ALARMS}#0")
            await pilot.press("l")  # one slot only: the title says which, the lines need not
            assert [line.text[:8] for line in panel.lines] == ["01:00 W ", "01:01 E "]
            assert all(f"{ALARMS}#0: " not in line.text[:30] for line in panel.lines)

    async def test_a_wide_panel_keeps_the_full_line(self):
        app = make_app(FakeManager(snapshots=[diagnosis_snapshot()], events=diagnosis_events()))
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            panel = app.log_panel
            assert not panel.compact
            last = diagnosis_events()[-1]
            assert panel.lines[-1].text == f"01:02:39 info       {last.slot}: {last.message}"
            await pilot.resize_terminal(80, 24)
            await pilot.pause()
            assert panel.compact and panel.lines[-1].text.startswith("01:02 I ")

    async def test_a_flood_of_log_lines_keeps_the_lifecycle_events(self):
        death = event(1, 0.0, "exited", "worker a#0 exited with 1; restarting in 1 s", "a#0", logging.WARNING)
        flood = [event(seq, seq / 10, "log", f"line {seq}", "main") for seq in range(2, 3_000)]
        app = make_app(FakeManager(events=[death, *flood]))
        async with app.run_test() as pilot:
            await settle(pilot)
            texts = [line.text for line in app.log_panel.lines]
            assert "worker a#0 exited with 1" in texts[0]
            assert "line 2999" in texts[-1]
            await pilot.press("w")
            assert len(app.log_panel.lines) == 1

    async def test_it_follows_new_lines_unless_scrolled_up(self):
        manager = FakeManager(events=[event(seq, seq, "log", f"line {seq}", "main") for seq in range(1, 60)])
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            panel = app.log_panel
            assert panel.scroll_y == panel.max_scroll_y > 0
            manager.events.append(event(60, 60, "log", "line 60", "main"))
            await app.refresh_dashboard()
            await pilot.pause()
            assert panel.scroll_y == panel.max_scroll_y
            panel.scroll_to(y=0, animate=False)
            await pilot.pause()
            manager.events.append(event(61, 61, "log", "line 61", "main"))
            await app.refresh_dashboard()
            await pilot.pause()
            assert panel.scroll_y == 0


class TestActingOnOneWorker:
    async def test_capital_r_restarts_the_selected_worker(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            app.workers_table.select_key(f"{HUMIDITY}#0")
            await pilot.press("R")
            await settle(pilot)
        assert manager.called("restart_worker") == [(f"{HUMIDITY}#0",)]

    async def test_capital_k_asks_then_kills_the_selected_worker(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            app.workers_table.select_key(TEMPERATURE_1)
            await pilot.press("K")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("n")
            await settle(pilot)
            assert manager.called("kill_worker") == []
            await pilot.press("K", "y")
            await settle(pilot)
        assert manager.called("kill_worker") == [(TEMPERATURE_1,)]

    async def test_a_worker_without_a_process_cannot_be_killed(self):
        manager = FakeManager(snapshots=[failing_snapshot()])
        app = make_app(manager)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            app.workers_table.select_key(TEMPERATURE_1)  # backoff: no process
            await pilot.press("K")
            await settle(pilot)
            assert not isinstance(app.screen, ConfirmScreen)
        assert manager.called("kill_worker") == []
        assert notes.with_severity("warning")

    async def test_r_and_k_want_a_worker_selected_not_a_route(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            app.routes_table.focus()
            await pilot.press("R")
            await settle(pilot)
        assert manager.called("restart_worker") == []
        assert any("workers table" in message for _, message, _ in notes.seen)

    async def test_equals_scales_the_selected_route_to_the_number_typed(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            app.workers_table.select_key(f"{HUMIDITY}#0")
            await pilot.press("equals_sign")
            assert isinstance(app.screen, ScaleScreen)
            field = app.screen.query_one(Input)
            assert field.value == "1" and app.focused is field
            await pilot.press("backspace", "0", "enter")  # 0: refused, the dialog stays
            assert isinstance(app.screen, ScaleScreen)
            assert "at least 1" in str(app.screen.query_one("#scale-error", Static).render())
            await pilot.press("backspace", "1", "2", "enter")
            await settle(pilot)
            assert not isinstance(app.screen, ScaleScreen)
        assert manager.called("scale_route") == [(HUMIDITY, 12)]

    async def test_enter_on_an_empty_field_says_what_to_type(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            app.workers_table.select_key(f"{HUMIDITY}#0")
            await pilot.press("equals_sign", "backspace", "enter")
            assert isinstance(app.screen, ScaleScreen)  # the dialog stays, and says why
            error = str(app.screen.query_one("#scale-error", Static).render())
            assert error == "Nothing typed: type a whole number of workers, at least 1 (Esc cancels)."
            assert "Nothing typed" in app.export_screenshot().replace("&#160;", " ")
            await pilot.press("3")  # typing clears it
            assert str(app.screen.query_one("#scale-error", Static).render()) == ""
            await pilot.press("enter")
            await settle(pilot)
        assert manager.called("scale_route") == [(HUMIDITY, 3)]

    async def test_escape_cancels_the_scale_dialog(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            await pilot.press("equals_sign", "9", "escape")
            await settle(pilot)
            assert not isinstance(app.screen, ScaleScreen)
        assert manager.called("scale_route") == []

    async def test_the_main_screen_keys_are_off_on_another_screen(self):
        app = make_app(FakeManager())
        async with app.run_test() as pilot:
            await settle(pilot)
            await app.push_screen(Screen())
            assert app.check_action("filter", ()) is False
            assert app.check_action("kill_selected", ()) is False
            await pilot.press("slash")
            assert not app.filter_bar.display


class TestSorting:
    @pytest.mark.parametrize(("key", "column"), [("c", "cpu"), ("m", "memory"), ("f", "failed"), ("t", "restarts")])
    async def test_htop_keys_sort_biggest_first_and_again_the_other_way(self, key, column):
        app = make_app(FakeManager(snapshots=[failing_snapshot()]))
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            table = app.workers_table
            await pilot.press(key)
            assert (table.sort_column, table.sort_reverse) == (column, True)
            spec = next(spec for spec in table.specs if spec.key == column)
            by_slot = {w.slot: w for w in failing_snapshot().workers}
            values = [spec.sort_value(by_slot[slot]) for slot in table.row_keys]
            known = [value for value in values if value is not None]
            assert known == sorted(known, reverse=True)
            await pilot.press(key)
            assert table.sort_reverse is False

    async def test_f_sorts_the_routes_table_when_it_is_selected_and_c_the_workers(self):
        app = make_app(FakeManager(snapshots=[failing_snapshot()]))
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            app.routes_table.focus()
            await pilot.press("f")
            assert app.routes_table.sort_column == "failed"
            assert app.routes_table.row_keys[0] == HUMIDITY  # 310 failed
            await pilot.press("c")  # the routes table has no cpu
            assert app.workers_table.sort_column == "cpu"

    async def test_sorting_by_a_rate_does_not_reshuffle_rows_that_wobble(self):
        base = healthy_snapshot()
        manager = FakeManager(snapshots=[base])
        app = make_app(manager)
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            table = app.workers_table
            table.sort_by("rate", reverse=True)
            first = table.row_keys
            assert first[:2] == [TEMPERATURE_0, TEMPERATURE_1]  # 152.4 and 149.9 msg/s
            for rates in ((148.0, 151.0), (150.5, 153.0), (147.2, 149.8)):  # they swap places each second
                workers = tuple(dataclasses.replace(w, messages_per_second=rates[w.index])
                                if w.route == TEMPERATURE else w for w in base.workers)
                manager.show(dataclasses.replace(base, workers=workers))
                await app.refresh_dashboard()
                assert table.row_keys == first
            # One that clearly passes the others moves.
            workers = tuple(dataclasses.replace(w, messages_per_second=900.0) if w.slot == f"{HUMIDITY}#0" else w
                            for w in base.workers)
            manager.show(dataclasses.replace(base, workers=workers))
            await app.refresh_dashboard()
            assert table.row_keys[0] == f"{HUMIDITY}#0"


    @pytest.mark.parametrize("column", ["beat", "last"])
    async def test_sorting_by_an_age_does_not_reshuffle_rows_every_second(self, column):
        field = {"beat": "heartbeat_age", "last": "last_message_age"}[column]
        base = healthy_snapshot()
        slots = [w.slot for w in base.workers]

        def aged(ages: dict[str, float]) -> ManagerSnapshot:
            return dataclasses.replace(base, workers=tuple(dataclasses.replace(w, **{field: ages[w.slot]})
                                                           for w in base.workers))

        # Heard every second: each age goes from 0 to 1 s and back, in a different order each second.
        seconds = [dict(zip(slots, ages, strict=True))
                   for ages in ((0.9, 0.5, 0.3, 0.1), (0.2, 0.8, 0.1, 0.9), (0.6, 0.4, 0.95, 0.05),
                                (0.1, 0.3, 0.7, 0.6))]
        manager = FakeManager(snapshots=[aged(seconds[0])])
        app = make_app(manager)
        async with app.run_test(size=(200, 50)) as pilot:
            await settle(pilot)
            table = app.workers_table
            assert column in table.shown_columns
            table.sort_by(column, reverse=True)
            first = table.row_keys
            assert first == slots  # a fresh sort is exact: 0.9, 0.5, 0.3, 0.1 s
            for ages in seconds[1:]:
                manager.show(aged(ages))
                await app.refresh_dashboard()
                assert table.row_keys == first
            # A worker not heard for 4.6 s clearly passes the others.
            manager.show(aged({**seconds[-1], f"{HUMIDITY}#0": 4.6}))
            await app.refresh_dashboard()
            assert table.row_keys[0] == f"{HUMIDITY}#0"

    async def test_sorting_by_uptime_keeps_workers_started_together_in_place(self):
        base = healthy_snapshot()
        manager = FakeManager(snapshots=[base])
        app = make_app(manager)
        async with app.run_test(size=(200, 50)) as pilot:
            await settle(pilot)
            table = app.workers_table
            table.sort_by("uptime", reverse=True)
            first = table.row_keys
            # Sampled a little apart each second, uptimes of workers started together cross over.
            for second, wobble in enumerate((0.4, -0.4, 0.3), 1):
                workers = tuple(dataclasses.replace(w, uptime=3_725.0 + second + wobble * (-1) ** w.index)
                                for w in base.workers)
                manager.show(dataclasses.replace(base, workers=workers))
                await app.refresh_dashboard()
                assert table.row_keys == first


class TestToasts:
    async def test_a_crash_looping_worker_raises_one_toast_not_one_per_death(self):
        slot = f"{HUMIDITY}#0"
        manager = FakeManager(snapshots=[failing_snapshot()])
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            notes = Notifications.record(app)
            for n in range(5):
                manager.events.append(event(100 + 2 * n, 3_800.0 + n, "exited", f"{slot} exited with 1", slot,
                                            logging.WARNING))
                manager.events.append(event(101 + 2 * n, 3_800.5 + n, "restarted", f"{slot} restarted", slot))
                await app.refresh_dashboard()
            await settle(pilot)
        assert notes.titles == ["Worker died"]
        assert app.log_panel.feed.shown()[-1].message == f"{slot} restarted"  # the panel has them all
