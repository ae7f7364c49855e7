"""The topic grammar (the router's contract), most-specific-route selection, subscription planning.

The properties check the engine against ``paho.mqtt.client.topic_matches_sub``, an independent
implementation of MQTT matching. On the edges that matter they agree with the MQTT spec, which
is why paho is a fair oracle here:

- ``#`` also matches the parent level (MQTT 3.1.1 section 4.7.1.2: ``sport/#`` matches ``sport``);
  paho's ``iter_match`` checks for a ``#`` child once the topic is used up, so it does too.
- A filter whose *first* level is a wildcard does not match a topic starting with ``$``
  (section 4.7.2); paho applies that rule at level 0 only (``normal or i > 0``), so ``$SYS/#``
  and ``a/+`` against ``a/$x`` still match, as the spec says they must.
- ``+`` matches an empty level (``a//c`` matches ``a/+/c``), in paho as in the spec.

The one place we restrict the input to stay inside the spec is the empty topic, which MQTT
forbids (a topic name is at least one character), so the strategies never produce it.
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub
from paho.mqtt.matcher import MQTTMatcher

from engine.router import NoRouteError, Router
from engine.topics import (
    TopicPatternError,
    TopicTrie,
    filter_matches,
    filters_overlap,
    parse_pattern,
    plan_subscriptions,
)


def handler(**kwargs):
    return kwargs


def as_mqtt(pattern: str) -> str:
    """The subscription filter, computed independently of the engine: ``{name}`` -> ``+``."""
    return re.sub(r"\{[^/]*\}", "+", pattern)


def specificity(pattern: str) -> tuple[int, ...]:
    """Reference ranking: per level from the left, literal 2 > one-level wildcard 1 > ``#`` 0.

    A pattern without ``#`` ends with 3: among patterns matching one topic, a pattern that ends
    where the topic ends is compared only with a ``#`` matching zero further levels, and wins.
    Bigger tuples are more specific.
    """
    ranks: list[int] = []
    for level in pattern.split("/"):
        if level == "#":
            ranks.append(0)
            return tuple(ranks)
        ranks.append(1 if level == "+" or level.startswith("{") else 2)
    ranks.append(3)
    return tuple(ranks)


# --------------------------------------------------------------------------------------------
# Grammar
# --------------------------------------------------------------------------------------------


def test_a_named_parameter_matches_exactly_one_level_and_captures_it():
    route = Router().on("a/{x}/c", handler)
    assert route.matches("a/b/c") == {"x": "b"}
    assert route.matches("a//c") == {"x": ""}
    assert route.matches("a/b/d/c") is None
    assert route.matches("a/c") is None


def test_plus_matches_exactly_one_level_including_an_empty_one():
    route = Router().on("a/+/c", handler)
    assert route.matches("a/b/c") == {}
    assert route.matches("a//c") == {}
    assert route.matches("a/c") is None
    assert route.matches("a/b/x/c") is None


@pytest.mark.parametrize("topic", ["a", "a/b", "a/b/c/d", "a/"])
def test_hash_matches_the_rest_including_zero_levels(topic):
    assert Router().on("a/#", handler).matches(topic) == {}


def test_hash_does_not_match_a_different_first_level():
    assert Router().on("a/#", handler).matches("ab") is None
    assert Router().on("a/#", handler).matches("b/a") is None


@pytest.mark.parametrize(
    ("pattern", "same", "different"),
    [
        ("a.b", "a.b", "aXb"),
        ("a*", "a*", "aaa"),
        ("(x)", "(x)", "x"),
        ("$x", "$x", "x"),
        ("x$", "x$", "x"),
        ("[ab]", "[ab]", "a"),
        ("a|b", "a|b", "a"),
        ("^a", "^a", "a"),
        ("a\\d", "a\\d", "a1"),
        ("a?", "a?", "a"),
    ],
)
def test_every_other_character_is_literal(pattern, same, different):
    route = Router().on(pattern, handler)
    assert route.matches(same) == {}
    assert route.matches(different) is None
    assert route.mqtt_topic == pattern


@pytest.mark.parametrize("pattern", ["#", "+/x", "{first}/x", "+/#"])
def test_a_wildcard_first_level_never_matches_a_dollar_topic(pattern):
    router = Router()
    route = router.on(pattern, handler)
    assert route.matches("$SYS/x") is None
    assert router.match("$SYS/x") is None


def test_a_literal_dollar_first_level_matches_dollar_topics():
    router = Router()
    router.on("$SYS/#", handler)
    assert router.match("$SYS/x") is not None
    assert router.match("$SYS") is not None  # '#' matches zero levels after $SYS
    assert router.on("$SYS/+", handler).matches("$SYS/broker") == {}


def test_dollar_in_a_later_level_is_an_ordinary_character():
    assert Router().on("a/+", handler).matches("a/$x") == {}
    assert Router().on("a/#", handler).matches("a/$x/y") == {}


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("a/#/b", "'#' must be the last level"),
        ("#/b", "'#' must be the last level"),
        ("a/b#", "mixes a wildcard"),
        ("a/#b", "mixes a wildcard"),
        ("a/+b", "mixes a wildcard"),
        ("a/b+", "mixes a wildcard"),
        ("a/{}/c", "without a name"),
        ("a/{id}/{id}", "appears twice"),
        ("a/{id", "not a parameter"),
        ("a/id}", "not a parameter"),
        ("a/{id}x", "not a parameter"),
        ("a/{{id}}", "not a parameter"),
        ("a/{1d}", "not a Python identifier"),
        ("a/{a b}", "not a Python identifier"),
        ("{payload}", "clashes with the handler keyword"),
        ("a/{client}", "clashes with the handler keyword"),
        ("", "may not be empty"),
        ("$share/g/x", "shared=True"),
        ("$share", "shared=True"),
        ("a/\x00", "NUL"),
    ],
)
def test_malformed_patterns_are_rejected_at_registration_naming_pattern_and_problem(pattern, problem):
    router = Router()
    with pytest.raises(ValueError) as caught:
        router.on(pattern, handler)
    message = str(caught.value)
    assert repr(pattern) in message
    assert problem in message
    assert isinstance(caught.value, TopicPatternError)
    assert router.routes == []


def test_a_pattern_longer_than_mqtt_allows_is_rejected():
    with pytest.raises(ValueError, match="longer than 65535 bytes"):
        parse_pattern("a" * 65536)


def test_a_pattern_must_be_a_string():
    with pytest.raises(ValueError, match="must be a string"):
        Router().on(42, handler)  # type: ignore[arg-type]


def test_subscription_filter_replaces_every_parameter_with_plus():
    route = Router().on("sensors/{site}/x/{id}/#", handler)
    assert route.mqtt_topic == "sensors/+/x/+/#"
    assert parse_pattern("sensors/{site}/x/{id}/#").param_names == ("site", "id")


# --------------------------------------------------------------------------------------------
# The most specific route wins
# --------------------------------------------------------------------------------------------

SPECIFICITY_CASES = [
    # (patterns, topic, winner or None)
    (["a/+/c", "a/b/#"], "a/b/c", "a/b/#"),  # level 2: literal 'b' beats '+' though '#' is broad
    (["#", "a/#"], "a/x", "a/#"),
    (["#", "a/#"], "b", "#"),
    (["a/#"], "a", "a/#"),  # '#' matches zero levels
    (["a/#", "a"], "a", "a"),  # ending where the topic ends beats a '#' matching nothing
    (["a/{x}", "a/b"], "a/b", "a/b"),
    (["a/{x}", "a/b"], "a/c", "a/{x}"),
    (["+/b/c", "a/+/c", "a/b/+"], "a/b/c", "a/b/+"),
    (["a/+/#", "a/+/c"], "a/b/c", "a/+/c"),
    (["a/+", "a/#"], "a/b", "a/+"),
    (["+/+", "a/#"], "a/b", "a/#"),  # compared from the left: level 1 decides
    (["#", "+/#", "+/+"], "x/y", "+/+"),
    (["#", "$SYS/#"], "$SYS/x", "$SYS/#"),
    (["#", "+/x"], "$SYS/x", None),
    (["a/b/c"], "a/b", None),
    (["a/b"], "a/b/c", None),
]


@pytest.mark.parametrize(("patterns", "topic", "winner"), SPECIFICITY_CASES)
@pytest.mark.parametrize("order", ["as listed", "reversed"])
def test_the_most_specific_route_wins_whatever_the_registration_order(patterns, topic, winner, order):
    router = Router()
    for pattern in patterns if order == "as listed" else reversed(patterns):
        router.on(pattern, handler)
    found = router.match(topic)
    if winner is None:
        assert found is None
    else:
        assert found is not None
        assert found[0].topic == winner


@pytest.mark.parametrize(("patterns", "topic", "winner"), SPECIFICITY_CASES)
def test_the_reference_ranking_agrees_with_the_concrete_cases(patterns, topic, winner):
    # Keeps the reference ranking used by the property tests below honest.
    matching = [p for p in patterns if topic_matches_sub(as_mqtt(p), topic)]
    expected = max(matching, key=specificity) if matching else None
    assert expected == winner


def test_equally_specific_patterns_tie_and_the_first_registered_wins():
    # Router rejects a second route with the same filter, so ties only reach the trie itself.
    trie: TopicTrie[str] = TopicTrie()
    trie.insert(parse_pattern("a/{x}"), "first")
    trie.insert(parse_pattern("a/+"), "second")
    trie.insert(parse_pattern("a/#"), "hash-1")
    trie.insert(parse_pattern("a/#"), "hash-2")
    assert trie.lookup("a/b") == "first"
    assert list(trie.lookup_all("a/b")) == ["first", "second", "hash-1", "hash-2"]
    assert trie.lookup("a") == "hash-1"
    assert len(trie) == 4


async def test_dispatching_a_topic_no_route_matches_raises_no_route_error():
    router = Router()
    router.on("#", handler)
    with pytest.raises(NoRouteError, match=re.escape("'$SYS/uptime'")):
        await router.dispatch("$SYS/uptime", b"", None)


def test_matching_routes_lists_every_match_most_specific_first():
    router = Router()
    for pattern in ["#", "a/#", "+/b", "a/b", "a/+"]:
        router.on(pattern, handler)
    assert [r.topic for r in router.matching_routes("a/b")] == ["a/b", "a/+", "a/#", "+/b", "#"]


# --------------------------------------------------------------------------------------------
# Properties against paho
# --------------------------------------------------------------------------------------------

LITERAL_LEVELS = ("a", "b", "$s", "")
TOPIC_LEVELS = ("a", "b", "$s", "", "z")


@st.composite
def route_patterns(draw: st.DrawFn) -> str:
    """Valid route patterns: 0-3 levels of literals, '+' and '{name}', then maybe '#'."""
    levels: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["literal", "literal", "plus", "param"]))
        if kind == "literal":
            levels.append(draw(st.sampled_from(LITERAL_LEVELS)))
        elif kind == "plus":
            levels.append("+")
        else:
            levels.append(f"{{p{len(levels)}}}")
    if not levels or draw(st.booleans()):
        levels.append("#")
    pattern = "/".join(levels)
    assume(pattern != "")  # a single empty level
    return pattern


random_topics = (
    st.lists(st.sampled_from(TOPIC_LEVELS), min_size=1, max_size=5).map("/".join).filter(lambda t: t != "")
)


@st.composite
def topics_near(draw: st.DrawFn, pattern: str) -> str:
    """A topic built from ``pattern`` (wildcards filled in), which usually matches it."""
    levels: list[str] = []
    for level in pattern.split("/"):
        if level == "#":
            levels.extend(draw(st.lists(st.sampled_from(TOPIC_LEVELS), max_size=2)))
        elif level == "+" or level.startswith("{"):
            levels.append(draw(st.sampled_from(TOPIC_LEVELS)))
        else:
            levels.append(level)
    topic = "/".join(levels)
    assume(topic != "")
    return topic


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_single_route_matches_exactly_the_topics_paho_matches(data):
    pattern = data.draw(route_patterns(), label="pattern")
    topic = data.draw(st.one_of(random_topics, topics_near(pattern)), label="topic")
    router = Router()
    route = router.on(pattern, handler)
    expected = topic_matches_sub(as_mqtt(pattern), topic)

    found = router.match(topic)
    assert (found is not None) == expected
    assert (route.matches(topic) is not None) == expected
    assert filter_matches(route.mqtt_topic, topic) == expected
    if found is not None:
        levels = topic.split("/")
        captured = {
            level[1:-1]: levels[i] for i, level in enumerate(pattern.split("/")) if level.startswith("{")
        }
        assert found[1] == captured
        assert route.matches(topic) == captured


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.lists(route_patterns(), min_size=1, max_size=8), st.data())
def test_the_chosen_route_matches_and_no_matching_route_is_more_specific(patterns, data):
    router = Router()
    registered = []
    filters = set()
    for pattern in patterns:
        if as_mqtt(pattern) in filters:
            continue  # the same filter twice is a duplicate, rejected (tested elsewhere)
        filters.add(as_mqtt(pattern))
        registered.append(router.on(pattern, handler))
    target = data.draw(st.sampled_from(registered), label="near")
    topic = data.draw(st.one_of(random_topics, topics_near(target.topic)), label="topic")

    matching = [r for r in registered if topic_matches_sub(r.mqtt_topic, topic)]
    found = router.match(topic)
    if not matching:
        assert found is None
        assert router.matching_routes(topic) == []
        return
    assert found is not None
    chosen = found[0]
    assert chosen in matching
    best = max(specificity(r.topic) for r in matching)
    assert specificity(chosen.topic) == best, [r.topic for r in matching]
    assert chosen is next(r for r in matching if specificity(r.topic) == best)  # first registered
    # Every match, most specific first; sorted() is stable, so ties keep registration order.
    ranked = sorted(matching, key=lambda r: specificity(r.topic), reverse=True)
    assert router.matching_routes(topic) == ranked


# --------------------------------------------------------------------------------------------
# Subscription planning
# --------------------------------------------------------------------------------------------


def test_overlapping_filters_are_merged_into_one_covering_filter_with_the_highest_qos():
    assert plan_subscriptions([("a/+/c", 0), ("a/b/+", 2)]) == [("a/+/+", 2)]


def test_disjoint_filters_are_kept_as_they_are_in_order():
    plan = [("sensors/+/temperature", 1), ("devices/+/commands/+", 2), ("a/b", 0)]
    assert plan_subscriptions(plan) == plan


def test_the_same_filter_twice_is_subscribed_once_with_the_highest_qos():
    assert plan_subscriptions([("a/b", 1), ("a/b", 0), ("a/b", 2)]) == [("a/b", 2)]


def test_a_hash_filter_absorbs_the_filters_it_covers():
    assert plan_subscriptions([("a", 0), ("a/b/c", 1), ("a/#", 0)]) == [("a/#", 1)]


def test_a_dollar_filter_never_merges_with_a_wildcard_first_level():
    plan = [("#", 0), ("$SYS/#", 1), ("+/x", 2)]
    result = plan_subscriptions(plan)
    assert sorted(result) == sorted([("#", 2), ("$SYS/#", 1)])


def test_merging_cascades_until_nothing_overlaps():
    # 'x/+' overlaps neither a/b nor c/d, then '+/b' joins it with a/b, and '+/d' with c/d too.
    result = plan_subscriptions([("a/b", 0), ("c/d", 1), ("x/+", 0), ("+/b", 0), ("+/d", 2)])
    assert result == [("+/+", 2)]


def test_filters_overlap_is_symmetric_on_the_dollar_rule():
    assert not filters_overlap("#", "$SYS/x")
    assert not filters_overlap("$SYS/x", "+/x")
    assert filters_overlap("$SYS/#", "$SYS/+")
    assert filters_overlap("a/#", "a")
    assert not filters_overlap("a/+", "a")


mqtt_filters = route_patterns().map(as_mqtt)


@st.composite
def related_filters(draw: st.DrawFn) -> list[str]:
    """Variations of one topic (levels made '+', or cut by '#'): these overlap often."""
    base = draw(st.lists(st.sampled_from(LITERAL_LEVELS), min_size=1, max_size=4))
    filters = []
    for _ in range(draw(st.integers(2, 5))):
        levels = [draw(st.sampled_from([level, "+"])) for level in base]
        cut = draw(st.integers(0, len(levels)))
        if cut < len(levels) or draw(st.booleans()):
            levels = [*levels[:cut], "#"]
        filters.append("/".join(levels))
    return [f for f in filters if f != ""] or ["#"]


filter_sets = st.one_of(
    st.lists(mqtt_filters, min_size=1, max_size=6),
    related_filters(),
)
# Every topic of up to 5 levels over these symbols: enough to witness any overlap or gap between
# filters of at most 4 levels over LITERAL_LEVELS ('z' stands for every level no filter names).
TOPIC_UNIVERSE = [
    "/".join(levels)
    for size in range(1, 6)
    for levels in itertools.product(TOPIC_LEVELS, repeat=size)
    if "/".join(levels) != ""
]


def _matcher(filters: list[str]) -> MQTTMatcher:
    matcher = MQTTMatcher()
    for mqtt_filter in filters:
        matcher[mqtt_filter] = mqtt_filter
    return matcher


@settings(max_examples=100, deadline=None)
@given(filter_sets, st.data())
def test_planned_subscriptions_never_overlap_cover_every_input_and_keep_the_highest_qos(filters, data):
    inputs = [(f, data.draw(st.integers(0, 2), label=f"qos of {f}")) for f in filters]
    plan = plan_subscriptions(inputs)
    outputs = [f for f, _ in plan]
    qos_of = dict(plan)
    assert len(set(outputs)) == len(outputs)
    out_matcher = _matcher(outputs)
    in_matcher = _matcher([f for f, _ in inputs])
    covering: dict[str, set[str]] = {f: set() for f, _ in inputs}  # input -> outputs seen
    for topic in TOPIC_UNIVERSE:
        hits = list(out_matcher.iter_match(topic))
        assert len(hits) <= 1, f"{topic!r} matches {hits}: a client would receive it {len(hits)} times"
        for mqtt_filter in in_matcher.iter_match(topic):
            assert hits, f"{topic!r} matches input {mqtt_filter!r} but no planned subscription"
            covering[mqtt_filter].add(hits[0])
    # Outputs do not overlap, so all topics of one input land in exactly one output.
    owner = {}
    for mqtt_filter, seen in covering.items():
        assert len(seen) == 1, (mqtt_filter, seen)
        owner[mqtt_filter] = next(iter(seen))
    for output in outputs:
        merged = [qos for f, qos in inputs if owner[f] == output]
        assert merged, f"{output!r} covers no input"
        assert qos_of[output] == max(merged)
