"""Pilot tests of the fleet: the fleet screen (F), a manager's screen, and its keys as signed commands,
against a fake observer that records what is sent (tests/tui/fixtures.py FakeFleet)."""

from __future__ import annotations

import pytest
from textual.command import CommandList

from engine.settings import Settings
from tui import fleet_commands
from tui.app import DashboardApp
from tui.fleet_commands import NO_FLEET, REMOTE_CONTROL_OFF
from tui.no_engine import NoEngine
from tui.screens.confirm import ConfirmScreen
from tui.screens.fleet import FleetScreen
from tui.screens.help import HelpScreen
from tui.screens.manager import NO_DETAILS, ManagerScreen

from .fixtures import HUMIDITY, TEMPERATURE, FakeFleet, FakeManager, failing_snapshot, fleet_statuses, make_app
from .helpers import Notifications, settle, wait_until

MANAGERS = ["edge-a", "edge-b", "edge-c", "edge-d", "edge-e", "lab-1"]


async def open_manager(pilot, app: DashboardApp, manager: str) -> ManagerScreen:
    """F, then Enter on ``manager``'s row: its screen, shown."""
    await pilot.press("F")
    await settle(pilot)
    fleet_screen = app.screen
    assert isinstance(fleet_screen, FleetScreen)
    fleet_screen.table.select_key(manager)
    await pilot.press("enter")
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, ManagerScreen) and screen.manager_id == manager
    return screen


class TestFleetScreen:
    async def test_f_lists_every_manager_with_its_state_workers_broker_and_age(self):
        app = make_app(FakeManager(), fleet=FakeFleet())
        async with app.run_test(size=(160, 40)) as pilot:
            await settle(pilot)
            await pilot.press("F")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, FleetScreen)
            table = screen.table
            assert table.row_keys == MANAGERS
            rows = {key: tuple(table.get_cell(key, column).plain
                               for column in ("host", "state", "workers", "rate", "failed", "broker", "age"))
                    for key in ("edge-b", "edge-d", "edge-e")}
            title = str(screen.title_bar.render())
            lab = "".join(segment.text for segment in table.render_line(1 + table.get_row_index("lab-1")))
            problem = table.get_cell("lab-1", "problem").plain
        assert rows == {
            "edge-b": ("edge-b.example", "online", "2/4", "241", "314", "connected", "1.1s"),
            "edge-d": ("edge-d.example", "offline", "0/3", "0", "4", "connected", "1h 30m"),
            "edge-e": ("edge-e.example", "stale", "3/3", "0", "4", "unreachable", "9.3s"),
        }
        assert "6 managers: 3 online, 1 stopping, 1 stale, 1 offline" in title
        assert "lab-1\\x1b[31m.example" in lab and "\x1b" not in lab  # a status's text is drawn printable
        assert problem.startswith("snapshot.workers[1].state")

    async def test_offline_and_stale_rows_are_styled_apart_from_online_ones(self):
        app = make_app(FakeManager(), fleet=FakeFleet())
        async with app.run_test(size=(160, 40)) as pilot:
            await settle(pilot)
            await pilot.press("F")
            await settle(pilot)
            table = app.screen.table
            colors = {key: table.get_cell(key, "state").style.color for key in ("edge-a", "edge-d", "edge-e")}
            success, warning = (app.theme_variables[name].lower() for name in ("text-success", "text-warning"))
        assert colors["edge-a"].triplet.hex == success
        assert colors["edge-e"].triplet.hex == warning
        assert colors["edge-d"].triplet.hex not in (success, warning)  # dimmed

    async def test_the_fleet_refreshes_with_the_dashboard(self):
        fleet = FakeFleet()
        app = make_app(FakeManager(), fleet=fleet)
        async with app.run_test() as pilot:
            await settle(pilot)
            await pilot.press("F")
            await settle(pilot)
            fleet.show(fleet_statuses()[:2])
            await app.refresh_dashboard()
            assert app.screen.table.row_keys == ["edge-a", "edge-b"]

    async def test_the_fleet_key_is_in_the_footer_the_help_and_the_palette(self):
        app = make_app(FakeManager(), fleet=FakeFleet())
        async with app.run_test(size=(160, 40)) as pilot:
            await settle(pilot)
            footer = {key: active.binding.description for key, active in app.screen.active_bindings.items()
                      if active.binding.show}
            assert footer["F"] == "Fleet"
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            assert any(keys == "F" and "every manager of the share group" in text for keys, text in app.screen.rows)
            await pilot.press("escape", "ctrl+p")
            await pilot.press(*"fleet")
            commands = app.screen.query_one(CommandList)
            await wait_until(pilot, lambda: commands.option_count > 0, what="the palette to offer the fleet")
            assert "Fleet: every manager of the group" in str(commands.get_option_at_index(0).prompt)
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, FleetScreen)

    async def test_without_a_fleet_the_key_says_it_is_not_available(self):
        app = make_app(FakeManager())
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            await pilot.press("F")
            await settle(pilot)
            assert app.screen is app.screen_stack[0]
        assert [message for _, message, _ in notes.seen] == [NO_FLEET]

    async def test_the_local_pool_keys_do_nothing_on_the_fleet_screen(self):
        manager, fleet = FakeManager(), FakeFleet()
        app = make_app(manager, fleet=fleet)
        async with app.run_test() as pilot:
            await settle(pilot)
            await pilot.press("F")
            await settle(pilot)
            await pilot.press("plus", "r", "a", "s")
            await settle(pilot)
            assert isinstance(app.screen, FleetScreen)
        assert manager.calls == [] and fleet.sent == []

    async def test_escape_goes_back_to_the_dashboard_and_f_from_a_manager_back_to_the_fleet(self):
        app = make_app(FakeManager(), fleet=FakeFleet())
        async with app.run_test() as pilot:
            await settle(pilot)
            await open_manager(pilot, app, "edge-a")
            await pilot.press("F")
            assert isinstance(app.screen, FleetScreen)
            await pilot.press("escape")
            assert app.screen is app.screen_stack[0]


class TestManagerScreen:
    async def test_enter_shows_its_workers_and_routes_from_its_status(self):
        app = make_app(FakeManager(), fleet=FakeFleet())
        async with app.run_test(size=(160, 40)) as pilot:
            await settle(pilot)
            screen = await open_manager(pilot, app, "edge-b")
            workers, routes = screen.workers_table.row_keys, screen.routes_table.row_keys
            title = str(screen.title_bar.render())
        assert workers == [w.slot for w in failing_snapshot().workers]
        assert routes == [r.topic for r in failing_snapshot().routes]
        assert "edge-b.example · online · version 0.1.0 · pid 5120 · status 1.1s ago" in title
        assert "remote control off" not in title

    async def test_the_title_says_remote_control_is_off_and_a_status_that_did_not_read(self):
        app = make_app(FakeManager(), fleet=FakeFleet(can_sign=False))
        async with app.run_test(size=(200, 40)) as pilot:
            await settle(pilot)
            screen = await open_manager(pilot, app, "lab-1")
            title = str(screen.title_bar.render())
        assert "lab-1\\x1b[31m.example" in title and "\x1b" not in title
        assert "remote control off" in title
        assert "its last status could not be read: snapshot.workers[1].state" in title

    async def test_plus_sends_a_signed_scale_of_the_selected_route_and_toasts_the_reply(self):
        fleet = FakeFleet()
        app = make_app(FakeManager(), fleet=fleet)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            await open_manager(pilot, app, "edge-a")  # the cursor on temperature#0: 2 workers
            await pilot.press("plus")
            await settle(pilot)
        assert fleet.sent == [("edge-a", "scale", {"route": TEMPERATURE, "count": 3})]
        assert notes.seen == [("Fleet", f"edge-a: scale {TEMPERATURE} to 3 ok", "information")]

    async def test_repeated_plus_counts_from_the_request_not_answered_yet(self):
        fleet = FakeFleet(silent={"scale"})
        app = make_app(FakeManager(), fleet=fleet)
        async with app.run_test() as pilot:
            await settle(pilot)
            screen = await open_manager(pilot, app, "edge-a")
            await pilot.press("plus", "plus")
            await wait_until(pilot, lambda: len(fleet.sent) == 2, what="two scale commands")
            assert screen.routes_table.get_cell(TEMPERATURE, "workers").plain == "2/2 → 4"
            fleet.close()  # as on quitting: the waits for replies end, and say nothing
            await settle(pilot)
            assert screen.routes_table.get_cell(TEMPERATURE, "workers").plain == "2/2"
        assert [args["count"] for _, _, args in fleet.sent] == [3, 4]

    async def test_minus_never_goes_below_one_worker(self):
        fleet = FakeFleet()
        app = make_app(FakeManager(), fleet=fleet)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            screen = await open_manager(pilot, app, "edge-a")
            screen.workers_table.select_key(f"{HUMIDITY}#0")  # humidity has 1 worker
            await pilot.press("minus")
            await settle(pilot)
        assert fleet.sent == []
        assert any("minimum of 1" in message for _, message, _ in notes.with_severity("warning"))

    @pytest.mark.parametrize(
        ("keys", "verb", "args"),
        [
            (("r",), "restart-dead", {}),
            (("R",), "restart-worker", {"slot": f"{TEMPERATURE}#0"}),
            (("a",), "start", {}),
            (("A",), "autoscale", {"route": TEMPERATURE, "min": None, "max": None}),  # autoscaled 1-8: off
            (("tab", "down", "A"), "autoscale", {"route": HUMIDITY, "min": 1, "max": 4}),
            (("s", "y"), "stop", {}),
        ],
    )
    async def test_the_dashboards_keys_send_their_verbs_to_that_manager(self, keys, verb, args):
        fleet = FakeFleet()
        app = make_app(FakeManager(), fleet=fleet)
        async with app.run_test() as pilot:
            await settle(pilot)
            await open_manager(pilot, app, "edge-a")
            await pilot.press(*keys)
            await settle(pilot)
        assert fleet.sent == [("edge-a", verb, args)]

    async def test_stop_asks_first_and_n_sends_nothing(self):
        fleet = FakeFleet()
        app = make_app(FakeManager(), fleet=fleet)
        async with app.run_test() as pilot:
            await settle(pilot)
            await open_manager(pilot, app, "edge-a")
            await pilot.press("s")
            assert isinstance(app.screen, ConfirmScreen)
            assert "edge-a" in app.screen.question
            await pilot.press("n")
            await settle(pilot)
        assert fleet.sent == []

    async def test_a_refusal_is_an_error_toast_with_the_managers_reason(self):
        fleet = FakeFleet(refusals={"scale": "scale: no shared route 'x'"})
        app = make_app(FakeManager(), fleet=fleet)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            await open_manager(pilot, app, "edge-a")
            await pilot.press("plus")
            await settle(pilot)
        assert notes.with_severity("error") == [
            ("Fleet", f"edge-a: scale {TEMPERATURE} to 3 refused: scale: no shared route 'x'", "error")]

    async def test_without_a_key_remote_control_is_off_and_nothing_is_sent(self):
        fleet = FakeFleet(can_sign=False)
        app = make_app(FakeManager(), fleet=fleet)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            await open_manager(pilot, app, "edge-a")
            await pilot.press("plus", "r")
            await settle(pilot)
        assert fleet.sent == []
        assert [message for _, message, _ in notes.seen] == [REMOTE_CONTROL_OFF, REMOTE_CONTROL_OFF]

    async def test_no_reply_in_time_says_so(self, monkeypatch):
        monkeypatch.setattr(fleet_commands, "reply_timeout", lambda verb: 0.05)
        fleet = FakeFleet(silent={"restart-dead"})
        app = make_app(FakeManager(), fleet=fleet)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            await open_manager(pilot, app, "edge-a")
            await pilot.press("r")
            await wait_until(pilot, lambda: bool(notes.seen), what="the toast")
        assert notes.seen == [("Fleet", "no reply from edge-a within 0.05 s (restart dead workers)", "error")]

    async def test_an_offline_manager_is_sent_nothing(self):
        fleet = FakeFleet()
        app = make_app(FakeManager(), fleet=fleet)
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            await open_manager(pilot, app, "edge-d")
            await pilot.press("plus")
            await settle(pilot)
        assert fleet.sent == []
        assert [message for _, message, _ in notes.seen] == [
            "edge-d is offline: nothing would carry the command out."]

    async def test_enter_on_a_row_says_where_the_details_are(self):
        app = make_app(FakeManager(), fleet=FakeFleet())
        async with app.run_test() as pilot:
            notes = Notifications.record(app)
            await settle(pilot)
            screen = await open_manager(pilot, app, "edge-a")
            await pilot.press("enter")
            await settle(pilot)
            assert app.screen is screen
        assert [message for _, message, _ in notes.seen] == [NO_DETAILS]

    async def test_the_palette_steers_the_manager_of_the_screen_not_this_one(self):
        manager, fleet = FakeManager(), FakeFleet()
        app = make_app(manager, fleet=fleet)
        async with app.run_test() as pilot:
            await settle(pilot)
            await open_manager(pilot, app, "edge-a")
            await pilot.press("ctrl+p")
            await pilot.press(*"restart dead")
            commands = app.screen.query_one(CommandList)
            await wait_until(pilot, lambda: commands.option_count > 0, what="the palette to offer the command")
            await pilot.press("down", "enter")
            await settle(pilot)
        assert fleet.sent == [("edge-a", "restart-dead", {})]
        assert manager.called("restart_dead_workers") == []


class TestObserving:
    def app(self, fleet: FakeFleet) -> DashboardApp:
        return DashboardApp(NoEngine(Settings(group_name="prod")), fleet=fleet, observe=True, refresh=None,
                            start=False)

    async def test_the_fleet_screen_is_the_only_one_and_escape_leaves_stopping_nothing(self):
        fleet = FakeFleet()
        app = self.app(fleet)
        async with app.run_test() as pilot:
            await settle(pilot)
            assert isinstance(app.screen, FleetScreen)
            assert app.screen.table.row_keys == MANAGERS
            shown = {active.binding.action for active in app.screen.active_bindings.values() if active.binding.show}
            assert not shown & {"scale_up", "stop_all", "start_all", "restart_dead", "back"}
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.return_code is not None, what="the app to exit")
        assert app.return_code == 0
        assert fleet.closed == 1

    async def test_a_manager_screen_steers_that_manager(self):
        fleet = FakeFleet()
        app = self.app(fleet)
        async with app.run_test() as pilot:
            await settle(pilot)
            app.screen.table.select_key("edge-b")
            await pilot.press("enter")
            await settle(pilot)
            await pilot.press("r")
            await settle(pilot)
            await pilot.press("escape")
            assert isinstance(app.screen, FleetScreen)
        assert fleet.sent == [("edge-b", "restart-dead", {})]

    def test_it_needs_a_fleet(self):
        with pytest.raises(ValueError, match="fleet"):
            DashboardApp(NoEngine(Settings()), observe=True)


async def test_quitting_the_dashboard_closes_the_fleet_and_stops_the_workers():
    manager, fleet = FakeManager(), FakeFleet()
    app = make_app(manager, fleet=fleet)
    async with app.run_test() as pilot:
        await settle(pilot)
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code is not None, what="the app to exit")
    assert fleet.closed == 1 and manager.called("close") == [()]


async def test_the_fleet_screen_says_when_it_is_not_connected_to_the_broker():
    fleet = FakeFleet(statuses=[])
    fleet.connected.clear()
    fleet.connect_problem = "the broker refused the connection: Not authorized"
    app = make_app(FakeManager(), fleet=fleet)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("F")
        await settle(pilot)
        title = str(app.screen.title_bar.render())
    assert "no manager of this group has published a status" in title
    assert f"{Settings().broker_address}: the broker refused the connection: Not authorized" in title
