"""Pilot tests: keys and refreshes against a fake engine that records what it is asked."""

from __future__ import annotations

import dataclasses
import logging
import threading

import pytest
from textual.command import CommandList
from textual.widgets import Button

from engine.snapshot import SlotState
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.widgets.log_panel import MAX_LINES

from .fixtures import (
    COMMANDS,
    HUMIDITY,
    TEMPERATURE,
    FakeManager,
    event,
    failing_events,
    failing_snapshot,
    healthy_snapshot,
    main_worker,
    make_app,
    no_shared_snapshot,
    worker,
)
from .helpers import Notifications, settle, wait_until

HUMIDITY_0 = f"{HUMIDITY}#0"


def scale_calls(manager: FakeManager) -> list[tuple[object, ...]]:
    return manager.called("scale_route")


class TestAutoscale:
    async def test_capital_a_turns_autoscaling_off_for_an_autoscaled_route(self):
        manager = FakeManager()  # temperature autoscales 1-8 in the healthy snapshot
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            app.routes_table.focus()
            await pilot.press("A")
            await settle(pilot)
        assert manager.called("set_autoscale") == [(TEMPERATURE, None, None)]

    async def test_capital_a_turns_it_on_with_a_range_around_the_pool(self):
        manager = FakeManager()  # humidity is sized by hand, 1 worker
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            app.routes_table.focus()
            await pilot.press("down")
            await pilot.press("A")
            await settle(pilot)
        assert manager.called("set_autoscale") == [(HUMIDITY, 1, 4)]

    async def test_turning_it_on_again_uses_the_range_it_had(self):
        on = healthy_snapshot()
        off = dataclasses.replace(
            on, routes=tuple(dataclasses.replace(r, autoscale_min=None, autoscale_max=None) for r in on.routes)
        )
        manager = FakeManager(snapshots=[on])
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            manager.show(off)
            await app.refresh_dashboard()
            app.routes_table.focus()
            await pilot.press("A")
            await settle(pilot)
        assert manager.called("set_autoscale") == [(TEMPERATURE, 1, 8)]

    async def test_the_routes_table_shows_the_mode_and_how_busy_each_pool_is(self):
        app = make_app(FakeManager(snapshots=[failing_snapshot()]))
        async with app.run_test(size=(200, 40)) as pilot:
            await settle(pilot)
            table = app.routes_table
            cells = {
                (topic, column): table.get_cell(topic, column).plain
                for topic in (TEMPERATURE, HUMIDITY)
                for column in ("busy", "mode")
            }
        assert cells == {
            (TEMPERATURE, "busy"): "100", (TEMPERATURE, "mode"): "auto 1-8 held 2",
            (HUMIDITY, "busy"): "0", (HUMIDITY, "mode"): "manual",
        }

    async def test_an_autoscale_decision_is_a_toast_and_a_step_back_a_warning(self):
        app = make_app(FakeManager())
        async with app.run_test() as pilot:
            await settle(pilot)
            notes = Notifications.record(app)
            app.manager.events.append(event(30, 3_900.0, "autoscale", "autoscale sensors/+/temperature 2 -> 4: "
                                                                    "busy 100%, target 70%"))
            app.manager.events.append(event(31, 3_910.0, "autoscale", "autoscale sensors/+/temperature 4 -> 2: "
                                            "adding workers did not raise throughput: holding at 2", None,
                                            logging.WARNING))
            await app.refresh_dashboard()
            await settle(pilot)
        assert notes.titles == ["Autoscale", "Autoscale"]
        assert [severity for _, _, severity in notes.seen] == ["information", "warning"]


class TestScaling:
    async def test_plus_adds_a_worker_to_the_route_of_the_selected_worker(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            app.workers_table.focus()
            app.workers_table.select_key(HUMIDITY_0)
            await pilot.press("plus")
            await settle(pilot)
        assert scale_calls(manager) == [(HUMIDITY, 2)]

    async def test_minus_removes_a_worker_from_the_route_selected_in_the_routes_table(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            await pilot.press("tab")  # workers -> routes
            assert app.focused is app.routes_table
            assert app.routes_table.selected_key == TEMPERATURE
            await pilot.press("minus")
            await settle(pilot)
        assert scale_calls(manager) == [(TEMPERATURE, 1)]

    async def test_the_last_used_table_decides_even_when_it_lost_the_focus(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            app.routes_table.focus()
            await pilot.press("down")  # humidity
            await pilot.press("tab")  # to the log panel: not a table
            await pilot.press("plus")
            await settle(pilot)
        assert scale_calls(manager) == [(HUMIDITY, 2)]

    async def test_repeated_plus_counts_from_the_request_not_yet_applied(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            await pilot.press("plus", "plus", "plus")
            await settle(pilot)
        calls = scale_calls(manager)
        assert calls[-1] == (TEMPERATURE, 5)  # desired 2, three presses
        assert all(topic == TEMPERATURE for topic, _ in calls)

    async def test_pending_scale_shows_in_the_routes_table_until_the_engine_applies_it(self):
        gate = threading.Event()
        manager = FakeManager(gates={"scale_route": gate})
        app = make_app(manager)
        try:
            async with app.run_test() as pilot:
                await settle(pilot)
                await pilot.press("plus")
                await wait_until(pilot, lambda: bool(scale_calls(manager)), what="scale_route()")
                assert app.routes_table.get_cell(TEMPERATURE, "workers").plain == "2/2 → 3"
                assert "scaling sensors/+/temperature to 3" in app.calls.pending
                assert "scaling sensors/+/temperature to 3" in str(app.header.render())
                gate.set()
                await settle(pilot)
                scaled = tuple(
                    dataclasses.replace(r, desired_workers=3) if r.topic == TEMPERATURE else r
                    for r in healthy_snapshot().routes
                )
                manager.show(dataclasses.replace(healthy_snapshot(), routes=scaled))
                await app.refresh_dashboard()
                assert app.routes_table.get_cell(TEMPERATURE, "workers").plain == "2/3"
                assert app.calls.pending == []
        finally:
            gate.set()

    async def test_minus_never_goes_below_one_worker(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            app.workers_table.select_key(HUMIDITY_0)  # humidity has 1 worker
            await pilot.press("minus")
            await settle(pilot)
        assert scale_calls(manager) == []
        assert any("minimum of 1" in message for _, message, _ in notes.with_severity("warning"))

    async def test_the_main_worker_does_not_scale(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            app.workers_table.select_key("main")
            await pilot.press("plus")
            await settle(pilot)
        assert scale_calls(manager) == []
        assert notes.with_severity("warning")

    async def test_a_non_shared_route_does_not_scale(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            app.routes_table.focus()
            app.routes_table.select_key(COMMANDS)
            await pilot.press("plus")
            await settle(pilot)
        assert scale_calls(manager) == []
        assert any("not shared" in message for _, message, _ in notes.seen)

    async def test_without_a_selected_worker_the_first_shared_route_scales(self):
        not_started = dataclasses.replace(healthy_snapshot(), workers=(), started=False)
        manager = FakeManager(snapshots=[not_started])
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            await pilot.press("plus")
            await settle(pilot)
        assert scale_calls(manager) == [(TEMPERATURE, 3)]

    async def test_with_no_shared_route_nothing_scales(self):
        manager = FakeManager(snapshots=[no_shared_snapshot()])
        app = make_app(manager)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            app.routes_table.focus()
            await pilot.press("plus")
            await settle(pilot)
        assert scale_calls(manager) == []
        assert notes.with_severity("warning")

    async def test_a_failed_engine_call_raises_an_error_toast(self):
        manager = FakeManager(failures={"scale_route": RuntimeError("broker gone")})
        app = make_app(manager)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            await pilot.press("plus")
            await settle(pilot)
            assert app.calls.pending == []
        assert any("broker gone" in message for _, message, _ in notes.with_severity("error"))


class TestLifecycleKeys:
    async def test_r_restarts_dead_and_crash_looping_workers(self):
        manager = FakeManager(snapshots=[failing_snapshot()])
        app = make_app(manager)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            await pilot.press("r")
            await settle(pilot)
        assert manager.called("restart_dead_workers") == [()]
        assert any("Restarting 2 workers" in message for _, message, _ in notes.seen)

    @pytest.mark.parametrize("key", ["n", "escape"])
    async def test_s_asks_first_and_n_or_escape_cancels(self, key):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            await pilot.press("s")
            assert isinstance(app.screen, ConfirmScreen)
            assert isinstance(app.focused, Button) and app.focused.id == "cancel"
            await pilot.press(key)
            await settle(pilot)
            assert not isinstance(app.screen, ConfirmScreen)
        assert manager.called("stop_workers") == []

    async def test_enter_on_the_focused_cancel_button_does_not_stop(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            await pilot.press("s", "enter")
            await settle(pilot)
            assert not isinstance(app.screen, ConfirmScreen)
        assert manager.called("stop_workers") == []

    async def test_s_then_y_stops_all_workers(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            await pilot.press("s", "y")
            await settle(pilot)
        assert manager.called("stop_workers") == [()]

    async def test_the_stop_button_stops_all_workers(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            await pilot.press("s")
            await pilot.click("#confirm")
            await settle(pilot)
        assert manager.called("stop_workers") == [()]

    async def test_a_starts_all_workers(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            await pilot.press("a")
            await settle(pilot)
        assert manager.called("start_workers") == [(None,)]

    async def test_the_app_starts_the_workers_when_asked_to(self):
        manager = FakeManager()
        app = make_app(manager, start=True)
        async with app.run_test() as pilot:
            await settle(pilot)
        assert manager.called("start_workers") == [(None,)]

    async def test_question_mark_opens_the_help_with_the_keys_a_keymap_gives(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            app.set_keymap({"scale-up": "u"})
            await settle(pilot)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            assert ("u", "Add one worker to the selected shared route.") in app.screen.rows
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
            await pilot.press("u")
            await settle(pilot)
        assert scale_calls(manager) == [(TEMPERATURE, 3)]

    async def test_the_command_palette_runs_dashboard_commands(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            await pilot.press("ctrl+p")
            await pilot.press(*"restart dead")
            commands = app.screen.query_one(CommandList)
            await wait_until(pilot, lambda: commands.option_count > 0, what="the palette to offer the command")
            assert "Restart dead workers" in str(commands.get_option_at_index(0).prompt)
            await pilot.press("down", "enter")
            await settle(pilot)
        assert manager.called("restart_dead_workers") == [()]


class TestQuitting:
    @pytest.mark.parametrize("key", ["q", "ctrl+c"])
    async def test_quitting_stops_the_workers_says_so_and_exits(self, key):
        gate = threading.Event()
        manager = FakeManager(gates={"close": gate})
        app = make_app(manager)
        try:
            async with app.run_test() as pilot:
                await settle(pilot)
                await pilot.press(key)
                await wait_until(pilot, lambda: manager.called("close") == [()], what="close()")
                assert app.quit_banner.display
                assert "Stopping workers" in str(app.quit_banner.render())
                assert app.check_action("scale_up", ()) is None  # pool keys are off while stopping
                gate.set()
                await wait_until(pilot, lambda: app.return_code is not None, what="the app to exit")
        finally:
            gate.set()
        assert app.return_code == 0
        assert manager.called("close") == [()]

    async def test_a_second_quit_while_stopping_does_not_close_twice(self):
        gate = threading.Event()
        manager = FakeManager(gates={"close": gate})
        app = make_app(manager)
        try:
            async with app.run_test() as pilot:
                await settle(pilot)
                await pilot.press("q")
                await wait_until(pilot, lambda: bool(manager.called("close")), what="close()")
                await pilot.press("q", "ctrl+c")
                gate.set()
                await wait_until(pilot, lambda: app.return_code is not None, what="the app to exit")
        finally:
            gate.set()
        assert manager.called("close") == [()]

    async def test_quitting_from_a_dialog_shows_the_dashboard(self):
        gate = threading.Event()
        manager = FakeManager(gates={"close": gate})
        app = make_app(manager)
        try:
            async with app.run_test() as pilot:
                await settle(pilot)
                await pilot.press("s")
                assert isinstance(app.screen, ConfirmScreen)
                await pilot.press("ctrl+c")
                await wait_until(pilot, lambda: bool(manager.called("close")), what="close()")
                assert app.screen is app.screen_stack[0]
                assert app.quit_banner.display
                gate.set()
        finally:
            gate.set()
        assert manager.called("stop_workers") == []


class TestRefresh:
    async def test_rows_keep_their_identity_and_the_cursor_its_worker(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            app.workers_table.select_key(HUMIDITY_0)
            route_cell = app.workers_table.get_cell("main", "route")
            # The engine now reports another order, one slot gone and one new.
            healthy = healthy_snapshot()
            reordered = (
                main_worker(handled=200),
                worker(HUMIDITY, 1, SlotState.STARTING),
                healthy.workers[2],  # humidity #0, unchanged
                healthy.workers[0],  # temperature #0; #1 is gone
            )
            manager.show(dataclasses.replace(healthy, workers=reordered))
            await app.refresh_dashboard()
            table = app.workers_table
            assert table.row_keys == [w.slot for w in reordered]
            assert table.selected_key == HUMIDITY_0
            assert table.get_cell("main", "handled").plain == "200"
            # Unchanged cells are left alone (updated in place, never cleared and refilled).
            assert table.get_cell("main", "route") is route_cell

    async def test_the_cursor_follows_its_worker_when_a_sort_reorders_rows(self):
        manager = FakeManager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            table = app.workers_table
            table.sort_by("cpu", reverse=True)
            assert table.row_keys[0] == f"{TEMPERATURE}#0"  # 12.5 %
            table.select_key(f"{TEMPERATURE}#0")
            busier = tuple(
                dataclasses.replace(w, cpu_percent=90.0) if w.slot == HUMIDITY_0 else w
                for w in healthy_snapshot().workers
            )
            manager.show(dataclasses.replace(healthy_snapshot(), workers=busier))
            await app.refresh_dashboard()
            assert table.row_keys[0] == HUMIDITY_0
            assert table.selected_key == f"{TEMPERATURE}#0"

    async def test_o_cycles_the_sort_column_and_a_header_click_reverses_it(self):
        app = make_app(FakeManager())
        async with app.run_test() as pilot:
            await settle(pilot)
            table = app.workers_table
            await pilot.press("o")
            assert (table.sort_column, table.sort_reverse) == ("route", False)
            assert table.border_subtitle == "sorted by route ▲"
            assert table.row_keys[0] == "main"  # "(non-shared routes)" sorts before "sensors/..."
            # Click the "route" header: the border, the slot column, then into the route column.
            x = 1 + table.column_x("route") + 2
            await pilot.click(table, offset=(x, 1))
            assert (table.sort_column, table.sort_reverse) == ("route", True)
            assert table.row_keys[-1] == "main"
            await pilot.press("O")
            assert table.sort_reverse is False

    async def test_dead_and_crash_looping_workers_are_styled_from_the_theme(self):
        app = make_app(FakeManager(snapshots=[failing_snapshot()]))
        async with app.run_test() as pilot:
            await settle(pilot)
            table = app.workers_table
            error = app.theme_variables["text-error"].lower()
            dead = table.get_cell(f"{TEMPERATURE}#1", "state")
            crash_loop = table.get_cell(HUMIDITY_0, "state")
            running = table.get_cell(f"{TEMPERATURE}#0", "state")
            assert dead.style.color.triplet.hex == error
            assert crash_loop.style.bold
            assert running.style.color.triplet.hex != error
            app.theme = "textual-light"  # restyled without waiting for the next refresh
            await pilot.pause()
            await pilot.pause()
            light_error = app.theme_variables["text-error"].lower()
            assert table.get_cell(f"{TEMPERATURE}#1", "state").style.color.triplet.hex == light_error

    async def test_the_refresh_timer_is_not_rearmed_while_a_refresh_runs(self):
        gate = threading.Event()
        manager = FakeManager(gates={"snapshot": gate})
        app = make_app(manager, refresh=0.01)
        try:
            async with app.run_test() as pilot:
                await wait_until(pilot, lambda: manager.snapshot_calls == 1, what="the first refresh")
                assert app.refreshing
                assert app.refresh_timer is None
                await pilot.pause(0.3)  # thirty refresh periods: none may start
                assert manager.snapshot_calls == 1
                gate.set()
                await wait_until(pilot, lambda: manager.snapshot_calls >= 3, what="the next refreshes")
                await wait_until(pilot, lambda: app.refresh_timer is not None, what="the timer to be re-armed")
        finally:
            gate.set()

    async def test_an_engine_that_cannot_answer_shows_in_the_header_and_the_app_carries_on(self):
        manager = FakeManager(failures={"snapshot": RuntimeError("supervisor lock timeout")})
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            assert "supervisor lock timeout" in str(app.header.render())
            del manager.failures["snapshot"]
            await app.refresh_dashboard()
            assert "supervisor lock timeout" not in str(app.header.render())
            assert app.workers_table.row_count == 4

    async def test_header_shows_broker_group_totals_and_uptime(self):
        app = make_app(FakeManager(snapshots=[failing_snapshot()]))
        async with app.run_test() as pilot:
            await settle(pilot)
            header = str(app.header.render())
        for expected in ("connected", "127.0.0.1:1883", "private mosquitto", "mqtt_framework_group",
                         "workers 1/4 (2 live)", "241 msg/s", "errors 314", "2 dead", "up 1h 02m"):
            assert expected in header
        assert "zygote" not in header  # said only once a zygote has died

    async def test_header_shows_a_zygote_that_died(self):
        snapshot = dataclasses.replace(failing_snapshot(), zygote_restarts=2)
        app = make_app(FakeManager(snapshots=[snapshot]))
        async with app.run_test() as pilot:
            await settle(pilot)
            assert "zygote restarted 2 times" in str(app.header.render())

    async def test_throughput_history_and_log_are_bounded(self):
        flood = [event(seq, seq / 10, "log", f"line {seq}", "main") for seq in range(1, MAX_LINES + 101)]
        manager = FakeManager(events=flood)
        app = make_app(manager)
        async with app.run_test() as pilot:
            await settle(pilot)
            for _ in range(app.throughput_history.maxlen + 5):
                await app.refresh_dashboard()
            assert len(app.throughput_history) == app.throughput_history.maxlen
            assert len(app.log_panel.lines) == MAX_LINES
            assert "line 600" in app.log_panel.lines[-1].text


class TestToasts:
    async def test_deaths_crash_loops_and_restarts_raise_toasts(self):
        events = [
            *failing_events(),
            event(20, 3_800.0, "restarted", "restarted by the operator", f"{TEMPERATURE}#1"),
        ]
        app = make_app(FakeManager(snapshots=[failing_snapshot()], events=events))
        async with app.run_test() as pilot:
            await settle(pilot)
            notes = Notifications.record(app)
            await app.refresh_dashboard()  # events already shown at mount are not repeated
            assert notes.seen == []
            # Slots that raised no toast lately (a slot toasts once per interval unless worse news
            # comes: tui/toasts.py ToastLimiter; HUMIDITY_0 and temperature#1 toasted at mount).
            app.manager.events.append(event(21, 3_801.0, "exited", "exited: SIGKILL (likely OOM or killed)",
                                            f"{TEMPERATURE}#0", logging.WARNING))
            app.manager.events.append(event(22, 3_801.5, "crash-loop", "died 5 times", f"{TEMPERATURE}#0",
                                            logging.ERROR))
            app.manager.events.append(event(23, 3_802.0, "restarted", "restarted", f"{HUMIDITY}#1"))
            # Routine follow-ups of the same kinds stay in the log.
            app.manager.events.append(event(24, 3_802.5, "crash-loop", "left the share group", HUMIDITY_0))
            await app.refresh_dashboard()
            await settle(pilot)
        assert notes.titles == ["Worker died", "Crash loop", "Worker restarted"]
        assert [severity for _, _, severity in notes.seen] == ["warning", "error", "information"]

    async def test_the_log_shows_events_from_log_level_up_and_the_engine_logger(self):
        events = [
            event(1, 0.0, "spawned", "worker started (pid 1)", HUMIDITY_0, logging.DEBUG),
            event(2, 1.0, "log", "handler failed", HUMIDITY_0, logging.ERROR),
        ]
        app = make_app(FakeManager(events=events))
        async with app.run_test() as pilot:
            await settle(pilot)
            engine_log = logging.getLogger("routemq.manager")
            engine_log.warning("could not take a slot out of its share group")
            engine_log.warning("an event, already in events_since()", extra={"event": "exited"})
            await pilot.pause()
            lines = [strip.text for strip in app.log_panel.lines]
        assert not any("worker started" in line for line in lines)  # DEBUG, below LOG_LEVEL=INFO
        assert any("handler failed" in line for line in lines)
        assert any("could not take a slot out" in line for line in lines)
        assert not any("already in events_since" in line for line in lines)
        assert not logging.getLogger("routemq").handlers  # detached when the app ended

    async def test_a_requested_exit_is_not_a_death(self):
        app = make_app(FakeManager(events=[event(1, 0.0, "exited", "exited 0 (stopped)", HUMIDITY_0)]))
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            await app.refresh_dashboard()
        assert notes.seen == []
        assert "exited 0 (stopped)" in app.log_panel.lines[-1].text
