"""CommandQueue: work handed to the supervisor thread, and what follows it."""

from __future__ import annotations

from engine.supervisor.commands import CommandQueue


def test_a_read_only_call_is_not_followed_by_a_new_snapshot():
    queue = CommandQueue()
    published: list[str] = []
    changed = queue.submit(lambda: "scaled")
    viewed = queue.submit(lambda: "a detail", read_only=True)
    queue.run_pending(on_each=lambda: published.append("snapshot"))
    assert (changed.result(0), viewed.result(0)) == ("scaled", "a detail")
    assert published == ["snapshot"], "one new snapshot: after the change, not after the view"


def test_an_error_goes_back_to_the_caller():
    queue = CommandQueue()
    failing = queue.submit(lambda: 1 / 0)
    queue.run_pending()
    assert isinstance(failing.exception(0), ZeroDivisionError)
