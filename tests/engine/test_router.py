"""Router, RouterGroup and Route: registration, groups, the middleware chain, dispatch, pickling."""

from __future__ import annotations

import functools
import pickle
import re

import pytest

from engine import Middleware, Router
from engine.router import NoRouteError, Route, RouterGroup

# --------------------------------------------------------------------------------------------
# Module-level handlers and middleware: these must pickle by reference (workers receive routers).
# --------------------------------------------------------------------------------------------


def echo(payload, client, **params):
    return {"params": params, "payload": payload, "client": client}


async def async_echo(payload, client, **params):
    return {"params": params, "payload": payload, "client": client, "async": True}


def reading(sensor_id, payload, client):
    return f"{sensor_id}={payload}"


class Recorder(Middleware):
    """Appends ``name`` to ``context["payload"]["trail"]`` on the way in and out."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def handle(self, context, next_handler):
        context["payload"]["trail"].append(f">{self.name}")
        result = await next_handler(context)
        context["payload"]["trail"].append(f"<{self.name}")
        return result


class Block(Middleware):
    """Stops every message: returns without calling the next step."""

    async def handle(self, context, next_handler):
        return "blocked"


class Upper(Middleware):
    """Changes the payload and a parameter before the handler sees them."""

    async def handle(self, context, next_handler):
        context["payload"] = context["payload"].upper()
        context["params"] = {**context["params"], "sensor_id": context["params"]["sensor_id"] + "!"}
        return await next_handler(context)


class Snoop(Middleware):
    """Keeps a copy of the context it saw."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    async def handle(self, context, next_handler):
        self.seen.append(dict(context))
        return await next_handler(context)


def trail_handler(payload, client, **params):
    payload["trail"].append("handler")
    return "done"


class FakeClient:
    """Records publish calls; enough of paho's client for a handler unit test."""

    def __init__(self) -> None:
        self.published: list[tuple] = []

    def publish(self, topic, payload=None, qos=0, retain=False):
        self.published.append((topic, payload, qos))


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------


def test_on_registers_a_route_with_the_documented_defaults():
    router = Router()
    route = router.on("a/{x}", echo)
    assert isinstance(route, Route)
    assert router.routes == [route]
    assert (route.topic, route.handler, route.qos, route.middleware, route.shared, route.worker_count) == (
        "a/{x}",
        echo,
        0,
        [],
        False,
        1,
    )
    assert route.mqtt_topic == "a/+"


def test_on_keeps_every_option_given():
    router = Router()
    snoop = Snoop()
    route = router.on("s/{id}/t", echo, qos=2, middleware=[snoop], shared=True, worker_count=3)
    assert (route.qos, route.middleware, route.shared, route.worker_count) == (2, [snoop], True, 3)


def test_routes_are_listed_in_registration_order():
    router = Router()
    for topic in ["z", "a", "m/#"]:
        router.on(topic, echo)
    assert [r.topic for r in router.routes] == ["z", "a", "m/#"]


def test_a_shared_route_subscribes_through_the_share_group_when_one_is_given():
    route = Router().on("sensors/{id}/t", echo, shared=True)
    assert route.get_subscription_topic("g1") == "$share/g1/sensors/+/t"
    assert route.get_subscription_topic() == "sensors/+/t"
    assert route.get_subscription_topic(None) == "sensors/+/t"


def test_a_route_that_is_not_shared_never_uses_the_share_group():
    route = Router().on("devices/{id}/cmd", echo)
    assert route.get_subscription_topic("g1") == "devices/+/cmd"


def test_route_matches_returns_the_captured_parameters_or_none():
    route = Router().on("devices/{device_id}/commands/{command}", echo)
    assert route.matches("devices/d1/commands/reboot") == {"device_id": "d1", "command": "reboot"}
    assert route.matches("devices/d1/commands") is None


@pytest.mark.parametrize("qos", [-1, 3, True, False, "1", 1.0, None])
def test_a_qos_outside_0_to_2_is_rejected_naming_the_pattern(qos):
    router = Router()
    with pytest.raises(ValueError, match=r"'a/b'.*qos") as caught:
        router.on("a/b", echo, qos=qos)
    assert repr(qos) in str(caught.value)
    assert router.routes == []


@pytest.mark.parametrize("worker_count", [0, -1, 1.5, 2.0, "2", True, None])
def test_a_worker_count_that_is_not_a_positive_integer_is_rejected_naming_the_pattern(worker_count):
    router = Router()
    with pytest.raises(ValueError, match=r"'a/b'.*worker_count"):
        router.on("a/b", echo, shared=True, worker_count=worker_count)
    assert router.routes == []


def test_a_handler_that_is_not_callable_is_rejected():
    with pytest.raises(ValueError, match=r"'a/b'.*not callable"):
        Router().on("a/b", "echo")  # type: ignore[arg-type]


def _takes_device(device_id, payload, client):
    return device_id


def _forgets_the_parameter(payload, client):
    return payload


def _wants_more(device_id, payload, client, user):
    return user


def test_a_handler_that_cannot_take_the_captured_parameters_is_rejected_at_registration():
    router = Router()
    router.on("devices/{device_id}", _takes_device)
    router.on("any/{device_id}", lambda **everything: everything)
    with pytest.raises(ValueError, match=r"route 'x/\{device_id\}': handler _forgets_the_parameter does not accept "
                                         r"device_id; it is called as _forgets_the_parameter\(device_id=\.\.\., "):
        router.on("x/{device_id}", _forgets_the_parameter)
    with pytest.raises(ValueError, match="requires user, which the route does not capture"):
        router.on("y/{device_id}", _wants_more)
    with pytest.raises(ValueError, match="does not accept client"):
        router.on("z/+", lambda payload: None)


def test_middleware_without_handle_is_rejected():
    with pytest.raises(ValueError, match=r"'a/b'.*middleware"):
        Router().on("a/b", echo, middleware=[object()])  # type: ignore[list-item]


def test_middleware_must_implement_handle():
    class Incomplete(Middleware):
        pass

    with pytest.raises(TypeError):
        Incomplete()  # type: ignore[abstract]


@pytest.mark.parametrize(("first", "second"), [("a/{x}", "a/+"), ("a/+", "a/{y}"), ("a/#", "a/#"), ("a/b", "a/b")])
def test_a_second_route_with_the_same_filter_is_rejected(first, second):
    router = Router()
    router.on(first, echo)
    with pytest.raises(ValueError, match="duplicates") as caught:
        router.on(second, echo)
    assert repr(first) in str(caught.value) and repr(second) in str(caught.value)
    assert [r.topic for r in router.routes] == [first]


def test_routes_with_different_filters_over_the_same_topics_are_not_duplicates():
    router = Router()
    router.on("a/+", echo)
    router.on("a/b", echo)
    router.on("a/#", echo)
    assert len(router.routes) == 3


def test_total_workers_needed_sums_worker_count_over_shared_routes_only():
    router = Router()
    assert router.get_total_workers_needed() == 0
    router.on("a", echo, shared=True, worker_count=3)
    router.on("b", echo, shared=True)
    router.on("c", echo, shared=False, worker_count=7)
    assert router.get_total_workers_needed() == 4
    assert [r.topic for r in router.shared_routes] == ["a", "b"]
    assert [r.topic for r in router.unshared_routes] == ["c"]


def test_include_adds_every_route_of_another_router_in_order():
    first, second = Router(), Router()
    first.on("a", echo)
    second.on("b", echo)
    second.on("c", echo)
    first.include(second)
    assert [r.topic for r in first.routes] == ["a", "b", "c"]


def test_include_adds_nothing_when_one_route_is_a_duplicate():
    first, second = Router(), Router()
    first.on("b/{x}", echo)
    second.on("a", echo)
    second.on("b/+", echo)
    with pytest.raises(ValueError, match="duplicates"):
        first.include(second)
    assert [r.topic for r in first.routes] == ["b/{x}"]
    assert first.match("a") is None


def test_find_route_finds_a_route_by_its_pattern_not_by_a_topic():
    router = Router()
    route = router.on("a/{x}", echo)
    assert router.find_route("a/{x}") is route
    assert router.find_route("a/b") is None


# --------------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "topic", "joined"),
    [
        ("a", "b", "a/b"),
        ("a/", "b", "a/b"),
        ("a", "/b", "a/b"),
        ("a/", "/b", "a/b"),
        ("a//", "//b", "a/b"),
        ("", "b/c", "b/c"),
        ("a/b", "{id}/#", "a/b/{id}/#"),
    ],
)
def test_a_group_prefix_joins_the_topic_with_exactly_one_slash(prefix, topic, joined):
    router = Router()
    route = router.group(prefix).on(topic, echo)
    assert route.topic == joined
    assert router.routes == [route]


def test_a_group_works_as_a_context_manager_and_registers_on_its_router():
    router = Router()
    with router.group("devices/{device_id}") as devices:
        assert isinstance(devices, RouterGroup)
        devices.on("status", echo)
        devices.on("commands/{command}", echo, qos=2)
    assert [(r.topic, r.qos) for r in router.routes] == [
        ("devices/{device_id}/status", 0),
        ("devices/{device_id}/commands/{command}", 2),
    ]


def test_groups_nest_directly_and_as_context_managers():
    router = Router()
    router.group("a").group("b/").on("/c", echo)
    with router.group("x/") as x, x.group("/y") as y, y.group("z") as z:
        z.on("w", echo)
    assert [r.topic for r in router.routes] == ["a/b/c", "x/y/z/w"]


def test_a_group_passes_route_options_through():
    router = Router()
    route = router.group("g").on("t", echo, qos=1, shared=True, worker_count=4)
    assert (route.qos, route.shared, route.worker_count) == (1, True, 4)
    assert router.get_total_workers_needed() == 4


def test_a_group_rejects_malformed_patterns_naming_the_joined_pattern():
    with pytest.raises(ValueError, match=re.escape("'a/#/b'")):
        Router().group("a/#").on("b", echo)


async def test_group_middleware_runs_before_route_middleware_outermost_group_first():
    router = Router()
    with router.group("a", middleware=[Recorder("outer")]) as outer:
        inner = outer.group("b", middleware=[Recorder("inner1"), Recorder("inner2")])
        inner.on("c", trail_handler, middleware=[Recorder("route")])
    payload = {"trail": []}
    assert await router.dispatch("a/b/c", payload, None) == "done"
    assert payload["trail"] == [
        ">outer", ">inner1", ">inner2", ">route", "handler", "<route", "<inner2", "<inner1", "<outer",
    ]


async def test_a_group_does_not_share_its_middleware_list_with_routes_added_later():
    router = Router()
    group = router.group("a", middleware=[Recorder("group")])
    group.on("one", trail_handler, middleware=[Recorder("one")])
    group.on("two", trail_handler)
    payload = {"trail": []}
    await router.dispatch("a/two", payload, None)
    assert payload["trail"] == [">group", "handler", "<group"]


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


async def test_dispatch_calls_the_handler_with_params_payload_and_client_and_returns_its_result():
    router = Router()
    router.on("devices/{device_id}/commands/{command}", echo)
    client = FakeClient()
    result = await router.dispatch("devices/d7/commands/reboot", b"now", client)
    assert result == {"params": {"device_id": "d7", "command": "reboot"}, "payload": b"now", "client": client}


async def test_dispatch_awaits_an_async_handler_and_returns_its_result():
    router = Router()
    router.on("a/{x}", async_echo)
    assert await router.dispatch("a/1", "p", None) == {
        "params": {"x": "1"},
        "payload": "p",
        "client": None,
        "async": True,
    }


async def test_dispatch_awaits_async_callables_that_are_not_plain_coroutine_functions():
    class AsyncCallable:
        async def __call__(self, payload, client):
            return ("object", payload)

    router = Router()
    router.on("obj", AsyncCallable())
    router.on("partial/{x}", functools.partial(async_echo, extra="bound"))
    router.on("lambda", lambda payload, client: async_echo(payload, client))
    assert await router.dispatch("obj", 1, None) == ("object", 1)
    assert (await router.dispatch("partial/7", 2, None))["params"] == {"x": "7", "extra": "bound"}
    assert (await router.dispatch("lambda", 3, None))["async"] is True


async def test_dispatch_returns_a_falsy_result_unchanged():
    router = Router()
    router.on("zero", lambda payload, client: 0)
    router.on("none", lambda payload, client: None)
    assert await router.dispatch("zero", b"", None) == 0
    assert await router.dispatch("none", b"", None) is None


async def test_a_handler_exception_propagates_out_of_dispatch():
    def boom(payload, client):
        raise RuntimeError("handler failed")

    router = Router()
    router.on("x", boom)
    router.on("y", boom, middleware=[Snoop()])
    with pytest.raises(RuntimeError, match="handler failed"):
        await router.dispatch("x", b"", None)
    with pytest.raises(RuntimeError, match="handler failed"):
        await router.dispatch("y", b"", None)


async def test_no_matching_route_raises_no_route_error_a_value_error_naming_the_topic():
    router = Router()
    router.on("a/+", echo)
    with pytest.raises(NoRouteError) as caught:
        await router.dispatch("b/c", b"", None)
    assert isinstance(caught.value, ValueError)
    assert "'b/c'" in str(caught.value)
    assert caught.value.topic == "b/c"


async def test_dispatch_uses_the_most_specific_route():
    router = Router()
    router.on("a/+/c", lambda payload, client: "plus")
    router.on("a/b/#", lambda payload, client: "hash")
    router.on("#", lambda payload, client: "everything")
    assert await router.dispatch("a/b/c", b"", None) == "hash"
    assert await router.dispatch("a/x/c", b"", None) == "plus"
    assert await router.dispatch("q", b"", None) == "everything"


async def test_middleware_sees_topic_payload_params_client_and_route():
    snoop = Snoop()
    router = Router()
    route = router.on("s/{sensor_id}", reading, middleware=[snoop])
    client = FakeClient()
    assert await router.dispatch("s/t1", "21.5", client) == "t1=21.5"
    assert snoop.seen == [
        {"topic": "s/t1", "payload": "21.5", "params": {"sensor_id": "t1"}, "client": client, "route": route}
    ]


async def test_middleware_can_stop_a_message_without_calling_the_handler():
    calls = []
    router = Router()
    router.on("x", lambda payload, client: calls.append(payload), middleware=[Block()])
    assert await router.dispatch("x", b"1", None) == "blocked"
    assert calls == []


async def test_a_later_middleware_does_not_run_when_an_earlier_one_stops_the_message():
    router = Router()
    router.group(middleware=[Block()]).on("x", trail_handler, middleware=[Recorder("route")])
    payload = {"trail": []}
    assert await router.dispatch("x", payload, None) == "blocked"
    assert payload["trail"] == []


async def test_middleware_can_change_the_payload_and_params_the_handler_sees():
    router = Router()
    router.on("s/{sensor_id}", reading, middleware=[Upper()])
    assert await router.dispatch("s/abc", "hot", None) == "abc!=HOT"


async def test_middleware_can_pass_a_new_context_and_replace_the_result():
    class Replace(Middleware):
        async def handle(self, context, next_handler):
            result = await next_handler({**context, "payload": "replaced"})
            return f"[{result}]"

    router = Router()
    router.on("s/{sensor_id}", reading, middleware=[Replace()])
    assert await router.dispatch("s/a", "original", None) == "[a=replaced]"


async def test_middleware_works_with_async_handlers():
    router = Router()
    router.on("a/{x}", async_echo, middleware=[Snoop()])
    assert (await router.dispatch("a/1", "p", None))["params"] == {"x": "1"}


async def test_dispatch_captures_parameters_per_call():
    router = Router()
    router.on("s/{sensor_id}", reading)
    assert await router.dispatch("s/a", 1, None) == "a=1"
    assert await router.dispatch("s/b", 2, None) == "b=2"


# --------------------------------------------------------------------------------------------
# Pickling: workers receive routers this way
# --------------------------------------------------------------------------------------------


def _router_for_pickling() -> Router:
    router = Router()
    with router.group("app", middleware=[Recorder("group")]) as app:
        app.on("{x}/trail", trail_handler, qos=1, middleware=[Recorder("route")], shared=True, worker_count=2)
    router.group("app/s").on("{sensor_id}", reading, middleware=[Upper()])
    router.on("async/{x}", async_echo, qos=2)
    router.on("blocked/#", echo, middleware=[Block()])
    router.source_package = "routers"
    return router


async def test_a_router_round_trips_through_pickle_and_dispatches_identically():
    original = _router_for_pickling()
    copy = pickle.loads(pickle.dumps(original))
    assert copy is not original
    assert copy.source_package == "routers"
    describe = lambda r: [  # noqa: E731
        (x.topic, x.handler, x.qos, [type(m) for m in x.middleware], x.shared, x.worker_count) for x in r.routes
    ]
    assert describe(copy) == describe(original)
    assert copy.get_total_workers_needed() == original.get_total_workers_needed() == 2
    for topic, payload in [("app/1/trail", None), ("app/s/q", "warm"), ("async/9", "p"), ("blocked/a/b", "p")]:
        results = []
        for router in (original, copy):
            body = {"trail": []} if payload is None else payload
            results.append((await router.dispatch(topic, body, None), body))
        assert results[0] == results[1], topic
    with pytest.raises(NoRouteError):
        await copy.dispatch("nowhere", b"", None)


def test_a_pickled_router_still_rejects_duplicates():
    copy = pickle.loads(pickle.dumps(_router_for_pickling()))
    with pytest.raises(ValueError, match="duplicates"):
        copy.on("async/+", echo)

