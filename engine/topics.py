"""Topic-filter grammar: parse route patterns, validate them, and match topics with a trie.

A route pattern is an MQTT topic filter in which a level may also be ``{name}``:

- ``{name}`` matches exactly one level and captures it as ``name``;
- ``+`` matches exactly one level;
- ``#`` matches the rest of the topic (zero or more levels) and may only be the last level;
- every other character is literal (``.``, ``(``, ``$``, ``*`` mean themselves).

As in MQTT, a pattern whose first level is a wildcard does not match a topic whose first level
starts with ``$`` (``$SYS/...``).

When several patterns match one topic, the most specific wins: patterns are compared level by
level from the left and at the first level where they differ a literal beats a one-level wildcard
(``+`` or ``{name}``), which beats ``#``. Patterns that are equally specific are tied and the one
registered first wins. Matching walks a trie over levels, so its cost depends on the depth of the
topic, not on how many patterns are registered.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

# Keyword arguments the router passes to every handler; a captured name may not shadow them.
RESERVED_PARAM_NAMES = frozenset({"payload", "client"})


class TopicPatternError(ValueError):
    """A route pattern that is not valid; the message names the pattern and the problem."""

    def __init__(self, pattern: str, problem: str) -> None:
        super().__init__(f"invalid route pattern {pattern!r}: {problem}")
        self.pattern = pattern
        self.problem = problem


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A parsed route pattern.

    ``levels`` holds one entry per level: a literal string, ``"+"``, ``"#"`` or ``"{name}"``.
    ``params`` maps level index to captured name.
    """

    text: str
    levels: tuple[str, ...]
    params: tuple[tuple[int, str], ...]

    @property
    def mqtt_filter(self) -> str:
        """The MQTT subscription filter: every ``{name}`` becomes ``+``."""
        names = dict(self.params)
        return "/".join("+" if i in names else level for i, level in enumerate(self.levels))

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.params)

    def match(self, topic: str) -> dict[str, str] | None:
        """The captured parameters if ``topic`` matches this pattern alone, else None."""
        levels = topic.split("/")
        if not _matches_levels(self.levels, levels):
            return None
        return self.capture(levels)

    def capture(self, levels: list[str]) -> dict[str, str]:
        """The parameters captured from the levels of a topic this pattern matches."""
        params: dict[str, str] = {}
        for index, name in self.params:  # a plain loop: cheaper than a comprehension on 3.11
            params[name] = levels[index]
        return params


def parse_pattern(pattern: str) -> TopicPattern:
    """Parse and validate a route pattern, raising :class:`TopicPatternError` on any problem."""
    _check_whole(pattern)
    levels = tuple(pattern.split("/"))
    params: list[tuple[int, str]] = []
    seen: set[str] = set()
    for index in range(len(levels)):
        name = _check_level(pattern, levels, index)
        if name is None:
            continue
        if name in seen:
            raise TopicPatternError(pattern, f"the parameter {{{name}}} appears twice")
        seen.add(name)
        params.append((index, name))
    return TopicPattern(pattern, levels, tuple(params))


def _check_whole(pattern: str) -> None:
    if not isinstance(pattern, str):
        raise TopicPatternError(repr(pattern), f"a pattern must be a string, not {type(pattern).__name__}")
    if pattern == "":
        raise TopicPatternError(pattern, "a pattern may not be empty")
    if "\x00" in pattern:
        raise TopicPatternError(pattern, "a pattern may not contain the NUL character")
    if len(pattern.encode("utf-8")) > 65535:
        raise TopicPatternError(pattern[:40] + "...", "a pattern may not be longer than 65535 bytes")
    if pattern.startswith("$share/") or pattern == "$share":
        raise TopicPatternError(
            pattern, "do not write $share/<group>/ yourself: register the route with shared=True"
        )


def _check_level(pattern: str, levels: tuple[str, ...], index: int) -> str | None:
    """Check one level; the name of the parameter it captures, if it is one."""
    level = levels[index]
    position = f"level {index + 1} ({level!r})"
    if level == "#":
        if index != len(levels) - 1:
            raise TopicPatternError(pattern, f"'#' must be the last level, but it is {position}")
        return None
    if level == "+":
        return None
    if "#" in level or "+" in level:
        raise TopicPatternError(
            pattern, f"{position} mixes a wildcard with other characters; '+' and '#' must fill a level"
        )
    if "{" in level or "}" in level:
        return _parse_param(pattern, level, position)
    return None


def _parse_param(pattern: str, level: str, position: str) -> str:
    if not (level.startswith("{") and level.endswith("}")) or level.count("{") != 1 or level.count("}") != 1:
        raise TopicPatternError(
            pattern, f"{position} is not a parameter: write a whole level as {{name}}, braces balanced"
        )
    name = level[1:-1]
    if name == "":
        raise TopicPatternError(pattern, f"{position} is a parameter without a name")
    if not name.isidentifier():
        raise TopicPatternError(pattern, f"parameter name {name!r} is not a Python identifier")
    if name in RESERVED_PARAM_NAMES:
        raise TopicPatternError(
            pattern, f"parameter name {name!r} clashes with the handler keyword {name}="
        )
    return name


def _matches_levels(filter_levels: tuple[str, ...], topic_levels: list[str]) -> bool:
    if topic_levels and topic_levels[0].startswith("$") and filter_levels and _is_wild(filter_levels[0]):
        return False
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= len(topic_levels):
            return False
        if level != "+" and not level.startswith("{") and level != topic_levels[i]:
            return False
    return len(filter_levels) == len(topic_levels)


def _is_wild(level: str) -> bool:
    return level in ("+", "#") or level.startswith("{")


def filter_matches(mqtt_filter: str, topic: str) -> bool:
    """MQTT matching of a plain filter (``+``/``#`` only) against a topic."""
    return _matches_levels(tuple(mqtt_filter.split("/")), topic.split("/"))


# --------------------------------------------------------------------------------------------
# The trie
# --------------------------------------------------------------------------------------------


class _Node(Generic[T]):
    __slots__ = ("exact", "hash_values", "literal", "values", "wild")

    def __init__(self) -> None:
        self.literal: dict[str, _Node[T]] = {}
        self.wild: _Node[T] | None = None  # "+" and "{name}" share this child
        self.values: list[T] = []  # patterns that end exactly here
        self.hash_values: list[T] = []  # patterns that end with "#" right after this node


@dataclass(slots=True)
class TopicTrie(Generic[T]):
    """Maps patterns to values; :meth:`lookup` returns the value of the most specific match."""

    _root: _Node[T] = field(default_factory=_Node)
    _size: int = 0

    def __len__(self) -> int:
        return self._size

    def insert(self, pattern: TopicPattern, value: T) -> None:
        node = self._root
        for level in pattern.levels:
            if level == "#":
                node.hash_values.append(value)
                self._size += 1
                return
            if level == "+" or level.startswith("{"):
                if node.wild is None:
                    node.wild = _Node()
                node = node.wild
            else:
                child = node.literal.get(level)
                if child is None:
                    child = node.literal[level] = _Node()
                node = child
        node.values.append(value)
        self._size += 1

    def lookup(self, topic: str) -> T | None:
        """The value of the most specific pattern matching ``topic``, or None."""
        return self.lookup_levels(topic.split("/"))

    def lookup_levels(self, levels: list[str]) -> T | None:
        """:meth:`lookup` for a topic already split on ``/`` (the router needs the levels too)."""
        # MQTT: a wildcard in the first level never matches a topic that starts with "$".
        return _lookup(self._root, levels, 0, levels[0].startswith("$"))

    def lookup_all(self, topic: str) -> Iterator[T]:
        """Every matching value, most specific first (ties in insertion order)."""
        levels = topic.split("/")
        yield from _lookup_all(self._root, levels, 0, levels[0].startswith("$"))


def _lookup(node: _Node[T], levels: list[str], depth: int, dollar: bool) -> T | None:
    # Depth-first in specificity order: literal child, then one-level wildcard, then "#".
    # The first complete match found is the most specific one.
    end = len(levels)
    # Fast path: while a node offers nothing but literal children there is no alternative to
    # come back to, so descend without recursing.
    while depth < end and node.wild is None and not node.hash_values:
        child = node.literal.get(levels[depth])
        if child is None:
            return None
        node = child
        depth += 1
    if depth == end:
        return _value_at_end(node, dollar and depth == 0)
    child = node.literal.get(levels[depth])
    if child is not None:
        found = _lookup(child, levels, depth + 1, dollar)
        if found is not None:
            return found
    wildcard_allowed = not (dollar and depth == 0)
    if wildcard_allowed and node.wild is not None:
        found = _lookup(node.wild, levels, depth + 1, dollar)
        if found is not None:
            return found
    if wildcard_allowed and node.hash_values:
        return node.hash_values[0]
    return None


def _value_at_end(node: _Node[T], wildcard_barred: bool) -> T | None:
    """The value for a topic whose levels all matched down to ``node``: its own, else a "#" below."""
    if node.values:
        return node.values[0]
    if node.hash_values and not wildcard_barred:
        return node.hash_values[0]
    return None


def _lookup_all(node: _Node[T], levels: list[str], depth: int, dollar: bool) -> Iterator[T]:
    wildcard_allowed = not (dollar and depth == 0)
    if depth == len(levels):
        yield from node.values
        if wildcard_allowed:
            yield from node.hash_values
        return
    child = node.literal.get(levels[depth])
    if child is not None:
        yield from _lookup_all(child, levels, depth + 1, dollar)
    if wildcard_allowed and node.wild is not None:
        yield from _lookup_all(node.wild, levels, depth + 1, dollar)
    if wildcard_allowed:
        yield from node.hash_values


# --------------------------------------------------------------------------------------------
# Subscription planning
# --------------------------------------------------------------------------------------------


def filters_overlap(a: str, b: str) -> bool:
    """True when some topic matches both MQTT filters."""
    la, lb = a.split("/"), b.split("/")
    if (la[0].startswith("$") and _is_wild(lb[0])) or (lb[0].startswith("$") and _is_wild(la[0])):
        # A "$" literal first level and a wildcard first level never share a topic.
        return False
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else None
        y = lb[i] if i < len(lb) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if x != y and x != "+" and y != "+":
            return False
    return True


def _generalise(a: str, b: str) -> str:
    """The narrowest filter built level-wise that covers both overlapping filters."""
    la, lb = a.split("/"), b.split("/")
    out: list[str] = []
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else None
        y = lb[i] if i < len(lb) else None
        if x == "#" or y == "#" or x is None or y is None:
            out.append("#")
            break
        out.append(x if x == y else "+")
    return "/".join(out)


def plan_subscriptions(filters: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Turn the filters of several routes into subscriptions that never overlap.

    A client subscribed to two overlapping filters may receive a matching message once per
    filter (Mosquitto does), and would then handle it twice. Overlapping filters are therefore
    merged into one filter that covers both (``a/+/c`` and ``a/b/+`` become ``a/+/+``); the
    router then picks the one route that handles each message and ignores topics no route wants.
    The QoS of a merged subscription is the highest of its parts.
    """
    plan: list[tuple[str, int]] = []
    for mqtt_filter, qos in filters:
        merged_filter, merged_qos = mqtt_filter, qos
        changed = True
        while changed:
            changed = False
            for entry in plan:
                if filters_overlap(entry[0], merged_filter):
                    plan.remove(entry)
                    if entry[0] != merged_filter:
                        merged_filter = _generalise(entry[0], merged_filter)
                    merged_qos = max(merged_qos, entry[1])
                    changed = True
                    break
        plan.append((merged_filter, merged_qos))
    return plan


def route_slug(topic: str) -> str:
    """A readable, unique name for a route pattern, safe in a client id or a topic level."""
    readable = re.sub(r"[^A-Za-z0-9]+", "_", topic).strip("_")[:24] or "root"
    return f"{readable}-{hashlib.sha1(topic.encode()).hexdigest()[:6]}"
