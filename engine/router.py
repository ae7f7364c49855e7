"""Route, RouterGroup and Router: registration, the middleware chain, dispatch.

Handlers are called as ``handler(**params, payload=payload, client=client)`` where ``params`` are
the ``{name}`` levels captured from the topic. A handler may be ``async def`` or a plain function.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from .autoscale import AutoscaleRange
from .middleware import Context, Middleware
from .topics import TopicPattern, TopicTrie, parse_pattern

Handler = Callable[..., Any]


class NoRouteError(ValueError):
    """No route matches a topic. A ValueError, as the reference raises."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"no route matches topic {topic!r}")
        self.topic = topic


class Route:
    """One registered route: a pattern, its handler and how it is served."""

    __slots__ = (
        "_call",
        "autoscale",
        "handler",
        "is_async",
        "is_plain",
        "middleware",
        "mqtt_topic",
        "pattern",
        "qos",
        "shared",
        "topic",
        "worker_count",
    )

    def __init__(
        self,
        topic: str,
        handler: Handler,
        qos: int = 0,
        middleware: Sequence[Middleware] | None = None,
        shared: bool = False,
        worker_count: int = 1,
        autoscale: tuple[int, int] | None = None,
    ) -> None:
        self.pattern: TopicPattern = parse_pattern(topic)
        self.topic = topic
        if not callable(handler):
            raise ValueError(f"route {topic!r}: handler {handler!r} is not callable")
        if isinstance(qos, bool) or not isinstance(qos, int) or qos not in (0, 1, 2):
            raise ValueError(f"route {topic!r}: qos must be 0, 1 or 2, not {qos!r}")
        if isinstance(worker_count, bool) or not isinstance(worker_count, int) or worker_count < 1:
            raise ValueError(f"route {topic!r}: worker_count must be an integer >= 1, not {worker_count!r}")
        chain = list(middleware or [])
        for item in chain:
            if not callable(getattr(item, "handle", None)):
                raise ValueError(f"route {topic!r}: middleware {item!r} has no handle(context, next_handler)")
        _check_handler_signature(topic, handler, self.pattern.param_names, has_middleware=bool(chain))
        self.handler = handler
        self.qos = qos
        self.middleware = chain
        self.shared = bool(shared)
        self.autoscale = _autoscale_range(topic, autoscale, self.shared)
        # The starting size, within the autoscale range when there is one.
        self.worker_count = self.autoscale.clamp(worker_count) if self.autoscale else worker_count
        self.mqtt_topic = self.pattern.mqtt_filter
        # An async handler waits without blocking its worker; a plain one has the worker to itself.
        self.is_async = _is_async_callable(handler)
        # A plain route (sync handler, no middleware) can be called without an event loop task.
        self.is_plain = not chain and not self.is_async
        self._call = _build_chain(self)

    def __repr__(self) -> str:
        name = getattr(self.handler, "__qualname__", repr(self.handler))
        extra = f", shared, worker_count={self.worker_count}" if self.shared else ""
        if self.autoscale is not None:
            extra += f", autoscale=({self.autoscale.low}, {self.autoscale.high})"
        return f"Route({self.topic!r} -> {name}, qos={self.qos}{extra})"

    def __reduce__(self) -> tuple[Any, ...]:
        limits = (self.autoscale.low, self.autoscale.high) if self.autoscale is not None else None
        return (Route, (self.topic, self.handler, self.qos, self.middleware, self.shared, self.worker_count, limits))

    def matches(self, topic: str) -> dict[str, str] | None:
        """The captured parameters when ``topic`` matches this route on its own, else None."""
        return self.pattern.match(topic)

    def get_subscription_topic(self, group_name: str | None = None) -> str:
        """The filter to subscribe to: ``$share/<group>/<filter>`` for a shared route with a group."""
        if self.shared and group_name:
            return f"$share/{group_name}/{self.mqtt_topic}"
        return self.mqtt_topic

    def invoke(self, topic: str, params: dict[str, str], payload: Any, client: Any) -> Any:
        """Start handling one message: a plain handler runs now and its result is returned (it
        may still be an awaitable); otherwise the coroutine of the middleware chain is returned,
        for the caller to await. The one dispatch path: Router.dispatch and the worker use it.

        ``params`` is not changed and not kept (the worker passes one dict for every message of
        a topic): a plain handler gets it unpacked, the middleware chain a copy of its own."""
        if self.is_plain:
            return self.handler(**params, payload=payload, client=client)
        return self.run(topic, dict(params), payload, client)

    async def run(self, topic: str, params: dict[str, str], payload: Any, client: Any) -> Any:
        """Run the middleware chain and the handler for one message."""
        context: Context = {
            "topic": topic,
            "payload": payload,
            "params": params,
            "client": client,
            "route": self,
        }
        return await self._call(context)


def _autoscale_range(topic: str, autoscale: Any, shared: bool) -> AutoscaleRange | None:
    if autoscale is None:
        return None
    if not shared:
        raise ValueError(f"route {topic!r}: autoscale needs shared=True (only shared routes have a pool to scale)")
    if not isinstance(autoscale, tuple | list) or len(autoscale) != 2:
        raise ValueError(f"route {topic!r}: autoscale must be (min_workers, max_workers), not {autoscale!r}")
    return AutoscaleRange.checked(autoscale[0], autoscale[1], f"route {topic!r}")


def _check_handler_signature(topic: str, handler: Handler, params: tuple[str, ...], has_middleware: bool) -> None:
    """Refuse, at registration, a handler that could never be called the way the route calls it."""
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # some builtins and C callables have none: trust them
        return
    accepted = signature.parameters
    name = getattr(handler, "__qualname__", repr(handler))
    call = ", ".join([*(f"{p}=..." for p in params), "payload=...", "client=..."])
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        missing = [
            keyword
            for keyword in (*params, "payload", "client")
            if keyword not in accepted
            or accepted[keyword].kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL)
        ]
        if missing:
            raise ValueError(
                f"route {topic!r}: handler {name} does not accept {', '.join(missing)}; "
                f"it is called as {name}({call})"
            )
    # Middleware may add parameters of its own to the context, so only a bare route is checked for
    # parameters the handler requires and nobody supplies.
    if has_middleware:
        return
    unsupplied = [
        p.name
        for p in accepted.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and p.name not in (*params, "payload", "client")
    ]
    if unsupplied:
        raise ValueError(
            f"route {topic!r}: handler {name} requires {', '.join(unsupplied)}, which the route does not capture; "
            f"it is called as {name}({call})"
        )


def _is_async_callable(handler: Handler) -> bool:
    target = getattr(handler, "func", handler)  # functools.partial
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        getattr(target, "__call__", None)  # noqa: B004 - an object with async __call__
    )


def _build_chain(route: Route) -> Callable[[Context], Awaitable[Any]]:
    handler = route.handler

    async def call_handler(context: Context) -> Any:
        result = handler(**context["params"], payload=context["payload"], client=context["client"])
        if inspect.isawaitable(result):
            result = await result
        return result

    step: Callable[[Context], Awaitable[Any]] = call_handler
    for middleware in reversed(route.middleware):
        step = _wrap(middleware, step)
    return step


def _wrap(
    middleware: Middleware, next_step: Callable[[Context], Awaitable[Any]]
) -> Callable[[Context], Awaitable[Any]]:
    async def step(context: Context) -> Any:
        return await middleware.handle(context, next_step)

    return step


def _join(prefix: str, topic: str) -> str:
    if not prefix:
        return topic
    if not topic:
        return prefix
    return prefix.rstrip("/") + "/" + topic.lstrip("/")


class RouterGroup:
    """Routes sharing a topic prefix and middleware. Usable directly or as a context manager."""

    def __init__(
        self, router: Router, prefix: str = "", middleware: Sequence[Middleware] | None = None
    ) -> None:
        self.router = router
        self.prefix = prefix
        self.middleware = list(middleware or [])

    def __enter__(self) -> RouterGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def on(
        self,
        topic: str,
        handler: Handler,
        qos: int = 0,
        middleware: Sequence[Middleware] | None = None,
        shared: bool = False,
        worker_count: int = 1,
        autoscale: tuple[int, int] | None = None,
    ) -> Route:
        """Register ``prefix/topic``; the group's middleware runs before the route's own."""
        return self.router.on(
            _join(self.prefix, topic),
            handler,
            qos=qos,
            middleware=[*self.middleware, *(middleware or [])],
            shared=shared,
            worker_count=worker_count,
            autoscale=autoscale,
        )

    def group(self, prefix: str = "", middleware: Sequence[Middleware] | None = None) -> RouterGroup:
        """A nested group: prefixes join with one '/', middleware lists concatenate."""
        return RouterGroup(self.router, _join(self.prefix, prefix), [*self.middleware, *(middleware or [])])


class Router:
    """Registered routes and the trie that finds the most specific one for a topic."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self._trie: TopicTrie[Route] = TopicTrie()
        self._by_filter: dict[tuple[str, ...], Route] = {}
        # Set by RouterRegistry: the package this router was loaded from, so that worker
        # processes can load the same routes themselves instead of receiving pickled handlers.
        self.source_package: str | None = None

    def __repr__(self) -> str:
        return f"<Router with {len(self.routes)} routes>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_router, (list(self.routes), self.source_package))

    def on(
        self,
        topic: str,
        handler: Handler,
        qos: int = 0,
        middleware: Sequence[Middleware] | None = None,
        shared: bool = False,
        worker_count: int = 1,
        autoscale: tuple[int, int] | None = None,
    ) -> Route:
        """Register a route. Raises ValueError naming the pattern when anything is wrong.

        ``autoscale=(min, max)`` sizes a shared route's pool on measured load (see
        engine/autoscale.py); ``worker_count`` is then the starting size, clamped into the range.
        """
        route = Route(
            topic, handler, qos=qos, middleware=middleware, shared=shared, worker_count=worker_count,
            autoscale=autoscale,
        )
        self.add_route(route)
        return route

    def add_route(self, route: Route) -> None:
        """Add an already built route (used when merging routers)."""
        key = _filter_key(route)
        self._check_not_duplicate(route, self._by_filter.get(key))
        self._by_filter[key] = route
        self.routes.append(route)
        self._trie.insert(route.pattern, route)
        self.source_package = None  # changed since loading: no longer just the package's routes

    def group(self, prefix: str = "", middleware: Sequence[Middleware] | None = None) -> RouterGroup:
        """A group of routes under ``prefix`` with shared middleware."""
        return RouterGroup(self, prefix, middleware)

    def include(self, other: Router) -> None:
        """Add every route of ``other`` to this router, in its registration order.

        All or nothing: when one route duplicates a route of this router, none is added.
        """
        for route in other.routes:
            self._check_not_duplicate(route, self._by_filter.get(_filter_key(route)))
        for route in other.routes:
            self.add_route(route)

    @staticmethod
    def _check_not_duplicate(route: Route, existing: Route | None) -> None:
        if existing is not None:
            raise ValueError(
                f"route {route.topic!r} duplicates {existing.topic!r} (both subscribe to "
                f"{route.mqtt_topic!r}); the second could never be called"
            )

    def match(self, topic: str) -> tuple[Route, dict[str, str]] | None:
        """The most specific route for ``topic`` and its captured parameters, or None."""
        levels = topic.split("/")
        route = self._trie.lookup_levels(levels)
        if route is None:
            return None
        return route, route.pattern.capture(levels)

    def matching_routes(self, topic: str) -> list[Route]:
        """Every route matching ``topic``, most specific first."""
        return list(self._trie.lookup_all(topic))

    async def dispatch(self, topic: str, payload: Any, client: Any) -> Any:
        """Run the most specific route for ``topic``; NoRouteError (a ValueError) when none."""
        # The body of match(), inlined: this is the hot path of every worker.
        levels = topic.split("/")
        route = self._trie.lookup_levels(levels)
        if route is None:
            raise NoRouteError(topic)
        result = route.invoke(topic, route.pattern.capture(levels), payload, client)
        # A plain function may still return an awaitable; None (the usual result) is not one.
        if result is not None and inspect.isawaitable(result):
            result = await result
        return result

    def get_total_workers_needed(self) -> int:
        """The sum of ``worker_count`` over the shared routes."""
        return sum(route.worker_count for route in self.routes if route.shared)

    @property
    def shared_routes(self) -> list[Route]:
        return [route for route in self.routes if route.shared]

    @property
    def unshared_routes(self) -> list[Route]:
        return [route for route in self.routes if not route.shared]

    def find_route(self, topic: str) -> Route | None:
        """The route registered with exactly this pattern (not a match against a topic)."""
        for route in self.routes:
            if route.topic == topic:
                return route
        return None


def _filter_key(route: Route) -> tuple[str, ...]:
    """Routes with equal keys match exactly the same topics: ``a/{x}`` and ``a/+`` are equal."""
    return tuple("+" if level.startswith("{") else level for level in route.pattern.levels)


def _rebuild_router(routes: Iterable[Route], source_package: str | None) -> Router:
    router = Router()
    for route in routes:
        router.add_route(route)
    router.source_package = source_package
    return router
