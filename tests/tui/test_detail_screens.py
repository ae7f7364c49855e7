"""Pilot tests of the worker and route screens, against the fake engine's fixed detail views."""

from __future__ import annotations

import dataclasses
import logging
import re

from textual.geometry import Region
from textual.widgets import Static

from engine.details import WorkerDetail
from tui.screens.confirm import ConfirmScreen
from tui.screens.route import RouteScreen
from tui.screens.worker import WorkerScreen
from tui.widgets.event_pane import EventPane
from tui.widgets.failure_example import FailureExampleView

from .fixtures import (
    HUMIDITY,
    LONG_TRACEBACK,
    SHORT_TRACEBACK,
    TEMPERATURE,
    TEMPERATURE_0,
    FakeManager,
    MiB,
    broker_down_snapshot,
    detail_manager,
    event,
    failing_snapshot,
    make_app,
)
from .helpers import Notifications, settle, wait_until

TEMPERATURE_1 = f"{TEMPERATURE}#1"
HUMIDITY_0 = f"{HUMIDITY}#0"
# What must never reach the terminal from a payload or a traceback: C0 controls but the newline, DEL, C1.
RAW_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


async def open_worker(pilot, slot: str) -> WorkerScreen:
    app = pilot.app
    await settle(pilot)
    app.workers_table.focus()
    app.workers_table.select_key(slot)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, WorkerScreen), what="the worker screen")
    await settle(pilot)
    return app.screen


async def open_route(pilot, topic: str) -> RouteScreen:
    app = pilot.app
    await settle(pilot)
    app.routes_table.focus()
    app.routes_table.select_key(topic)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, RouteScreen), what="the route screen")
    await settle(pilot)
    return app.screen


def log_line(seq: int, message: str) -> object:
    return event(seq, 3_726.0 + seq / 1000, "log", message, TEMPERATURE_0)


def with_more_logs(manager: FakeManager, *messages: str) -> None:
    """The engine's next answer has these lines at the end of temperature#0's log."""
    detail = manager.worker_details[TEMPERATURE_0]
    seq = detail.logs[-1].seq
    added = tuple(log_line(seq + n, message) for n, message in enumerate(messages, 1))
    manager.worker_details[TEMPERATURE_0] = dataclasses.replace(detail, logs=detail.logs + added)  # type: ignore[arg-type]


def last_line(pane: EventPane) -> str:
    return pane.lines[-1].text


class TestOpeningAndLeaving:
    async def test_enter_opens_the_screen_of_the_worker_under_the_cursor(self):
        app = make_app(detail_manager())
        async with app.run_test() as pilot:
            screen = await open_worker(pilot, TEMPERATURE_1)
            assert screen.key == TEMPERATURE_1
            assert TEMPERATURE_1 in str(screen.title_bar.render())

    async def test_escape_goes_back_with_the_cursor_on_the_same_row(self):
        app = make_app(detail_manager())
        async with app.run_test() as pilot:
            await open_worker(pilot, HUMIDITY_0)
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, WorkerScreen), what="the dashboard")
            assert app.workers_table.selected_key == HUMIDITY_0
            assert app.focused is app.workers_table

    async def test_enter_on_a_route_opens_its_screen_and_escape_comes_back(self):
        app = make_app(detail_manager())
        async with app.run_test() as pilot:
            screen = await open_route(pilot, HUMIDITY)
            assert screen.key == HUMIDITY
            await pilot.press("escape")  # the failures table has the focus: Esc still goes back
            await wait_until(pilot, lambda: not isinstance(app.screen, RouteScreen), what="the dashboard")
            assert app.routes_table.selected_key == HUMIDITY
            assert app.focused is app.routes_table

    async def test_scale_keys_still_act_on_the_route_opened_from(self):
        manager = detail_manager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await open_route(pilot, HUMIDITY)
            app.screen.query_one("#route-pool").focus()  # a table of the route screen, used last
            await pilot.press("plus")
            await settle(pilot)
        assert manager.called("scale_route") == [(HUMIDITY, 2)]


class TestWorkerScreen:
    async def test_it_opens_on_the_slots_history(self):
        manager = detail_manager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            screen = await open_worker(pilot, TEMPERATURE_0)
            detail = manager.worker_details[TEMPERATURE_0]
            assert screen.log_pane.last_seq == detail.logs[-1].seq
            assert len(screen.log_pane.lines) == len(detail.logs)
            assert "sensor s-17: 21.9 °C" in last_line(screen.log_pane)
            # Lifecycle lines (wrapped) without the slot's name, which the title says.
            lifecycle = " ".join(line.text.rstrip() for line in screen.lifecycle.lines)
            assert "exited with SIGKILL (killed: hung, no heartbeat for 60 s); restarting in 1 s" in lifecycle
            assert TEMPERATURE_0 not in lifecycle
            summary = str(screen.summary.render())
            assert "SIGKILL (killed: hung, no heartbeat for 60 s)" in summary
            assert "heartbeat 0.4s ago" in summary
            held = str(screen.held.render())
            assert "holds 2 messages" in held and "sensors/s-17/temperature" in held

    async def test_new_log_lines_are_appended_and_followed(self):
        manager = detail_manager()
        app = make_app(manager)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_worker(pilot, TEMPERATURE_0)
            pane = screen.log_pane
            first_line = pane.lines[0]
            shown = len(pane.lines)
            await wait_until(pilot, lambda: pane.scroll_y == pane.max_scroll_y > 0, what="the end of the log")
            with_more_logs(manager, "sensor s-2: 20.0 °C", "sensor s-5: 20.5 °C")
            await app.refresh_dashboard()
            assert len(pane.lines) == shown + 2
            assert pane.lines[0] is first_line  # appended, not rewritten
            assert "sensor s-5: 20.5 °C" in last_line(pane)
            await wait_until(pilot, lambda: pane.scroll_y == pane.max_scroll_y, what="the pane to follow")

    async def test_once_scrolled_up_the_pane_stays_put_until_scrolled_back_down(self):
        manager = detail_manager()
        app = make_app(manager)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_worker(pilot, TEMPERATURE_0)
            pane = screen.log_pane
            await wait_until(pilot, lambda: pane.scroll_y == pane.max_scroll_y > 0, what="the end of the log")
            pane.focus()
            await pilot.press("up", "up")
            reading = pane.scroll_y
            assert reading < pane.max_scroll_y
            with_more_logs(manager, "sensor s-2: 20.0 °C")
            await app.refresh_dashboard()
            await pilot.pause()
            assert pane.scroll_y == reading
            assert "sensor s-2: 20.0 °C" in last_line(pane)
            await pilot.press("end")
            with_more_logs(manager, "sensor s-5: 20.5 °C")
            await app.refresh_dashboard()
            await wait_until(pilot, lambda: pane.scroll_y == pane.max_scroll_y, what="the pane to follow again")

    async def test_a_refresh_shows_what_changed(self):
        manager = detail_manager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            screen = await open_worker(pilot, TEMPERATURE_0)
            detail = manager.worker_details[TEMPERATURE_0]
            late = dataclasses.replace(detail, heartbeat_age=7.5, held=())
            manager.worker_details[TEMPERATURE_0] = late
            await app.refresh_dashboard()
            await pilot.pause()
            assert "heartbeat 7.5s ago" in str(screen.summary.render())
            assert "holds no message" in str(screen.held.render())

    async def test_a_worker_the_engine_no_longer_has_says_so(self):
        manager = detail_manager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            screen = await open_worker(pilot, TEMPERATURE_0)
            del manager.worker_details[TEMPERATURE_0]
            manager.show(dataclasses.replace(failing_snapshot(), workers=failing_snapshot().workers[1:]))
            await app.refresh_dashboard()
            await pilot.pause()
            assert "gone" in str(screen.title_bar.render())
            assert screen.log_pane.lines  # what it showed stays

    async def test_an_engine_that_cannot_answer_leaves_the_last_answer_on_screen(self):
        manager = detail_manager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            screen = await open_worker(pilot, TEMPERATURE_0)
            manager.failures["worker_detail"] = TimeoutError("the supervisor is busy")
            await app.refresh_dashboard()
            await pilot.pause()
            assert "cannot read the engine: the supervisor is busy" in str(screen.title_bar.render())
            assert "SIGKILL" in str(screen.summary.render())
            del manager.failures["worker_detail"]
            await app.refresh_dashboard()
            await pilot.pause()
            assert "cannot read" not in str(screen.title_bar.render())

    async def test_capital_r_restarts_this_worker(self):
        manager = detail_manager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await open_worker(pilot, TEMPERATURE_1)
            await pilot.press("R")
            await settle(pilot)
        assert manager.called("restart_worker") == [(TEMPERATURE_1,)]

    async def test_capital_k_kills_this_worker_only_once_confirmed(self):
        manager = detail_manager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            await open_worker(pilot, TEMPERATURE_0)
            await pilot.press("K")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            await pilot.press("n")
            await settle(pilot)
            assert manager.called("kill_worker") == []
            assert isinstance(app.screen, WorkerScreen)
            await pilot.press("K")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            await pilot.press("y")
            await settle(pilot)
            assert isinstance(app.screen, WorkerScreen)
        assert manager.called("kill_worker") == [(TEMPERATURE_0,)]

    async def test_a_dead_worker_has_nothing_to_kill(self):
        manager = FakeManager(snapshots=[failing_snapshot()])  # temperature#1 waits in backoff
        app = make_app(manager)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await open_worker(pilot, TEMPERATURE_1)
            await pilot.press("K")
            await settle(pilot)
            assert not isinstance(app.screen, ConfirmScreen)
        assert manager.called("kill_worker") == []
        assert any("no process to kill" in message for _, message, _ in notes.with_severity("warning"))

    async def test_the_resources_give_units_and_memory_bars_show_its_change(self):
        manager = detail_manager()
        app = make_app(manager)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_worker(pilot, TEMPERATURE_0)
            detail = manager.worker_details[TEMPERATURE_0]
            cpu_label = str(screen.cpu.render()).splitlines()[0]
            assert cpu_label == f"cpu 12.5 %, peak {max(detail.cpu_history):.1f} %"
            label, bars = str(screen.memory.render()).splitlines()
            assert label == "memory 48.2 MiB, 45.0-48.2 MiB"  # now, then the range the bars span
            # 45 to 48.2 MiB: from zero that was a solid block; from the smallest, a ramp.
            assert bars[0] == "▁" and bars[-1] == "█" and len(set(bars)) > 4

    async def test_flat_memory_is_a_flat_line_not_a_solid_block(self):
        manager = detail_manager()
        detail = manager.worker_details[TEMPERATURE_0]
        wobble = tuple(int(47 * MiB) + 4096 * (i % 2) for i in range(300))  # a page up and down
        manager.worker_details[TEMPERATURE_0] = dataclasses.replace(detail, memory_history=wobble)
        app = make_app(manager)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_worker(pilot, TEMPERATURE_0)
            label, bars = str(screen.memory.render()).splitlines()
            assert label == "memory 48.2 MiB, 47.0-47.0 MiB"
            assert set(bars) == {"▁"}

    async def test_the_log_counts_entries_not_lines(self):
        manager = detail_manager()
        detail = manager.worker_details[TEMPERATURE_0]
        failure = event(detail.logs[-1].seq + 1, 3_725.9, "failure", "handler failed\n" + SHORT_TRACEBACK,
                        TEMPERATURE_0, logging.ERROR)
        manager.worker_details[TEMPERATURE_0] = dataclasses.replace(detail, logs=(*detail.logs, failure))
        app = make_app(manager)
        async with app.run_test() as pilot:
            screen = await open_worker(pilot, TEMPERATURE_0)
            entries = len(detail.logs) + 1
            assert len(screen.log_pane.lines) > entries  # the traceback takes lines of its own
            assert screen.log_pane.border_subtitle == f"{entries} entries kept"

    async def test_log_lines_with_escape_sequences_show_as_text(self):
        manager = detail_manager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            screen = await open_worker(pilot, TEMPERATURE_0)
            with_more_logs(manager, "\x1b[2J\x1b[31mred\x07 [bold]x[/bold]")
            await app.refresh_dashboard()
            assert "\\x1b[2J\\x1b[31mred\\x07 [bold]x[/bold]" in last_line(screen.log_pane)


class TestRouteScreen:
    async def test_it_shows_the_latest_example_of_the_selected_group(self):
        manager = detail_manager()
        app = make_app(manager)
        async with app.run_test(size=(160, 48)) as pilot:
            screen = await open_route(pilot, TEMPERATURE)
            example = screen.query_one(FailureExampleView)
            assert example.group is not None and example.group.exception == "UnicodeDecodeError"
            assert screen.focused is screen.failures
            await pilot.press("down")
            await pilot.pause()
            assert example.group is not None and example.group.exception == "ValueError"
            text = str(example.query_one(Static).render())
            assert "sensors/s-9/temperature" in text
            assert f"{TEMPERATURE_0}" in text
            assert '{"value": "hot", "unit": "C"}' in text
            assert "ValueError: could not convert string to float: 'hot'" in text

    async def test_a_binary_payload_and_its_traceback_show_escaped_and_whole(self):
        app = make_app(detail_manager())
        async with app.run_test(size=(160, 48)) as pilot:
            screen = await open_route(pilot, TEMPERATURE)
            text = str(screen.example.query_one(Static).render())
            assert "\\x00\\x01\\x02\\xff\\xfe\\x1b[31mRED\\x1b[0m\\x07" in text
            assert "[bold]not markup[/bold]" in text  # shown as written, not as markup
            assert "first 200 of 4,096 B" in text
            assert LONG_TRACEBACK.strip().splitlines()[-1] in text
            screen.example.focus()
            await pilot.press("end")
            await wait_until(pilot, lambda: screen.example.scroll_y > 0, what="the traceback to scroll")
            assert not RAW_CONTROL.search(app.export_screenshot())

    async def test_the_pool_title_counts_serving_workers_as_the_routes_table_does(self):
        app = make_app(FakeManager(snapshots=[broker_down_snapshot()]))
        async with app.run_test() as pilot:
            await settle(pilot)
            assert app.routes_table.get_cell(TEMPERATURE, "workers").plain == "0/2 +2"
            screen = await open_route(pilot, TEMPERATURE)
            assert screen.pool.border_title == "Pool: 0 of 2 serving (2 live), auto 1-8"

    async def test_a_pool_that_serves_says_so_without_the_live_count(self):
        app = make_app(detail_manager())
        async with app.run_test() as pilot:
            screen = await open_route(pilot, TEMPERATURE)
            assert screen.pool.border_title == "Pool: 2 of 2 serving, auto 1-8"

    async def test_the_payload_preview_is_never_cut_inside_an_escape(self):
        escape = re.compile(r"(?:\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|[tnr])|[^\\])*")
        for size in ((80, 24), (97, 30), (160, 48)):
            app = make_app(detail_manager())
            async with app.run_test(size=size) as pilot:
                screen = await open_route(pilot, TEMPERATURE)
                text = screen.example.query_one(Static)
                lines = [strip.text for strip in text.render_lines(Region(0, 0, text.size.width, text.size.height))]
                start = next(n for n, line in enumerate(lines) if line.startswith("payload")) + 1
                end = next(n for n, line in enumerate(lines) if line.startswith("traceback"))
                preview = [line.rstrip()[10:] for line in lines[start:end]]
                assert len(preview) > 1, size  # it takes several lines
                assert "".join(preview) == screen.example.group.latest.preview, size
                for line in preview:
                    assert escape.fullmatch(line), (size, line)

    async def test_enter_on_a_worker_of_the_pool_opens_its_screen(self):
        app = make_app(detail_manager())
        async with app.run_test() as pilot:
            screen = await open_route(pilot, TEMPERATURE)
            screen.pool.focus()
            await pilot.press("down", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, WorkerScreen), what="the worker screen")
            assert app.screen.key == TEMPERATURE_1
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen, what="the route screen")

    async def test_capital_r_restarts_the_worker_under_the_pools_cursor(self):
        manager = detail_manager()
        app = make_app(manager)
        async with app.run_test() as pilot:
            screen = await open_route(pilot, TEMPERATURE)
            screen.pool.focus()
            await pilot.press("down", "R")
            await settle(pilot)
        assert manager.called("restart_worker") == [(TEMPERATURE_1,)]

    async def test_a_route_without_details_yet_shows_its_snapshot(self):
        app = make_app(FakeManager())
        async with app.run_test() as pilot:
            screen = await open_route(pilot, HUMIDITY)
            assert screen.pool.row_keys == [HUMIDITY_0]
            assert screen.failures.row_count == 0
            assert "No failure" in str(screen.example.query_one(Static).render())


def test_the_worker_detail_of_a_fixture_is_consistent():
    detail: WorkerDetail = detail_manager().worker_details[TEMPERATURE_0]
    seqs = [e.seq for e in detail.logs]
    assert seqs == sorted(set(seqs))
    assert all(e.level >= logging.DEBUG for e in detail.logs)
