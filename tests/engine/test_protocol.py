"""engine/protocol.py: every message round-trips; framing survives any split; anything that is
not a message of the protocol is a ProtocolViolation; the worker's log lines are bounded."""

from __future__ import annotations

import json
import pickle
import socket
import threading

import pytest

from engine.protocol import (
    HEADER,
    MAX_FRAME,
    MAX_LOG_BYTES,
    MAX_LOG_LINE,
    Command,
    Failure,
    Fatal,
    FrameReader,
    Heartbeat,
    Hello,
    LogLine,
    Logs,
    ProtocolViolation,
    cut_line,
    encode,
    frame,
)
from engine.protocol_decode import decode, decode_command
from engine.worker.link import ManagerLink

MESSAGES = [
    Hello(pid=4321),
    Heartbeat(),
    Heartbeat(
        connected=True,
        subscribed=True,
        detail="connection lost (Unspecified error); reconnecting — ünïcode",
        received=10,
        handled=7,
        failed=2,
        by_route={"sensors/{id}/temp": (5, 1), "jobs/#": (2, 1)},
        in_flight=1,
        last_message_at=1_700_000_000.25,
        oldest_handler_age=0.5,
        clock=12.5,
        busy_seconds=3.25,
        logs=(LogLine(20, "routemq.worker", "hello"), LogLine(40, "app", "line\nwith \"quotes\" and \x01")),
        logs_dropped=3,
    ),
    Logs(),
    Logs(logs=(LogLine(30, "routemq.worker.output", "last words"),), logs_dropped=1),
    *(Fatal(failure, f"refused: {failure}") for failure in Failure),
]


def body(data: bytes) -> bytes:
    (length,) = HEADER.unpack_from(data)
    assert len(data) == HEADER.size + length
    return data[HEADER.size :]


def json_body(value: object) -> bytes:
    return json.dumps(value).encode()


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_worker_message_round_trips(message):
    assert decode(body(encode(message))) == message


def test_integral_floats_come_back_as_floats():
    beat = decode(body(encode(Heartbeat(last_message_at=5, oldest_handler_age=0))))  # type: ignore[arg-type]
    assert isinstance(beat, Heartbeat)
    assert beat.last_message_at == 5.0 and isinstance(beat.last_message_at, float)


@pytest.mark.parametrize("command", list(Command))
def test_every_command_round_trips(command):
    assert decode_command(body(encode(command))) is command


def test_a_command_is_not_a_worker_message_and_the_other_way_round():
    with pytest.raises(ProtocolViolation):
        decode(body(encode(Command.RETIRE)))
    with pytest.raises(ProtocolViolation):
        decode_command(body(encode(Hello(1))))
    with pytest.raises(ProtocolViolation):
        decode_command(json_body({"type": "command", "command": "stop"}))  # the old command is gone


# --- framing ------------------------------------------------------------------------------------


def test_frames_split_at_every_byte_boundary_come_out_whole():
    stream = b"".join(encode(message) for message in MESSAGES)
    bodies = [body(encode(message)) for message in MESSAGES]
    for cut in range(len(stream) + 1):
        reader = FrameReader()
        got = reader.feed(stream[:cut]) + reader.feed(stream[cut:])
        assert got == bodies, cut
        assert reader.pending == 0


def test_a_stream_fed_one_byte_at_a_time():
    stream = b"".join(encode(message) for message in MESSAGES)
    reader = FrameReader()
    got = []
    for i in range(len(stream)):
        got += reader.feed(stream[i : i + 1])
    assert [decode(b) for b in got] == MESSAGES


def test_several_frames_in_one_read_and_a_partial_one_kept():
    stream = b"".join(encode(message) for message in MESSAGES)
    extra = encode(Hello(7))
    reader = FrameReader()
    assert [decode(b) for b in reader.feed(stream + extra[:5])] == MESSAGES
    assert reader.pending == 5
    assert [decode(b) for b in reader.feed(extra[5:])] == [Hello(7)]


def test_an_empty_frame_is_a_frame():
    assert FrameReader().feed(frame(b"")) == [b""]


def test_a_frame_over_the_limit_is_refused_from_its_header_alone():
    reader = FrameReader()
    with pytest.raises(ProtocolViolation, match="limit"):
        reader.feed(HEADER.pack(MAX_FRAME + 1))  # refused before a byte of the body is read
    assert FrameReader().feed(frame(b"x" * 10)) == [b"x" * 10]
    assert FrameReader(limit=10).feed(frame(b"x" * 10)) == [b"x" * 10]
    with pytest.raises(ProtocolViolation):
        FrameReader(limit=10).feed(frame(b"x" * 11))


# --- what is not a message ------------------------------------------------------------------------

GOOD_BEAT = json.loads(body(encode(MESSAGES[2])))

NOT_MESSAGES = {
    "garbage": b"\xff\xfe\x00garbage",
    "empty": b"",
    "a pickle": pickle.dumps(Hello(1)),
    "a pickle of a dict": pickle.dumps({"type": "hello", "pid": 1}),
    "a JSON list": json_body([1, 2]),
    "a JSON string": json_body("hello"),
    "no type": json_body({"pid": 1}),
    "unknown type": json_body({"type": "exec", "code": "import os"}),
    "hello without pid": json_body({"type": "hello"}),
    "pid a string": json_body({"type": "hello", "pid": "1"}),
    "pid a bool": json_body({"type": "hello", "pid": True}),
    "pid negative": json_body({"type": "hello", "pid": -1}),
    "pid a float": json_body({"type": "hello", "pid": 1.5}),
    "fatal with an unknown failure": json_body({"type": "fatal", "failure": "boom", "reason": "x"}),
    "fatal reason not a string": json_body({"type": "fatal", "failure": "auth", "reason": 3}),
    "logs not a list": json_body({"type": "logs", "logs": "x", "logs_dropped": 0}),
    "a log line of two": json_body({"type": "logs", "logs": [[20, "a"]], "logs_dropped": 0}),
    "a log level a bool": json_body({"type": "logs", "logs": [[True, "a", "b"]], "logs_dropped": 0}),
    "a log message not a string": json_body({"type": "logs", "logs": [[20, "a", 5]], "logs_dropped": 0}),
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
}


def _beat(**changes: object) -> bytes:
    return json_body({**GOOD_BEAT, **changes})


BAD_BEATS = {
    "connected a string": _beat(connected="yes"),
    "connected a number": _beat(connected=1),
    "handled a bool": _beat(handled=True),
    "received a bool": _beat(received=False),
    "failed a string": _beat(failed="2"),
    "in_flight a float": _beat(in_flight=1.0),
    "logs_dropped negative": _beat(logs_dropped=-1),
    "detail a number": _beat(detail=5),
    "last_message_at a string": _beat(last_message_at="now"),
    "oldest_handler_age a bool": _beat(oldest_handler_age=True),
    "busy_seconds negative": _beat(busy_seconds=-1.0),
    "busy_seconds missing": json_body({k: v for k, v in GOOD_BEAT.items() if k != "busy_seconds"}),
    "clock a string": _beat(clock="12"),
    "clock infinite": _beat(clock=1e400),
    "by_route a list": _beat(by_route=[]),
    "by_route counts of three": _beat(by_route={"a": [1, 2, 3]}),
    "by_route a bool count": _beat(by_route={"a": [True, 0]}),
    "by_route a string count": _beat(by_route={"a": ["1", 0]}),
    "logs missing": json_body({k: v for k, v in GOOD_BEAT.items() if k != "logs"}),
    "handled missing": json_body({k: v for k, v in GOOD_BEAT.items() if k != "handled"}),
}


@pytest.mark.parametrize("data", [*NOT_MESSAGES.values(), *BAD_BEATS.values()], ids=[*NOT_MESSAGES, *BAD_BEATS])
def test_anything_else_is_a_protocol_violation(data):
    with pytest.raises(ProtocolViolation):
        decode(data)


def test_a_pickle_in_a_frame_runs_nothing():
    class Trap:
        def __reduce__(self):
            return (exec, ("raise SystemExit('ran code')",))

    with pytest.raises(ProtocolViolation):
        decode(pickle.dumps(Trap()))


def test_the_fields_of_a_good_heartbeat_are_all_checked():
    assert decode(_beat()) == MESSAGES[2]
    assert len(BAD_BEATS) >= 12


# --- log lines are bounded ----------------------------------------------------------------------


def test_cut_line_marks_the_cut():
    assert cut_line("short") == "short"
    assert cut_line("x" * MAX_LOG_LINE) == "x" * MAX_LOG_LINE
    cut = cut_line("x" * (MAX_LOG_LINE + 5))
    assert cut.startswith("x" * MAX_LOG_LINE) and cut.endswith("[5 more characters cut]")


class Manager:
    """The manager's end of a worker's link: every frame the worker sends, decoded, in a thread."""

    def __init__(self) -> None:
        self.mine, self.theirs = socket.socketpair()
        self.link = ManagerLink(self.mine)
        self.messages: list[object] = []
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        reader = FrameReader()
        while data := self.theirs.recv(65536):
            self.messages.extend(decode(body) for body in reader.feed(data))

    def lines(self) -> list[LogLine]:
        """Every log line sent, once the worker's end is closed for writing."""
        self.mine.shutdown(socket.SHUT_WR)
        self._thread.join(timeout=10)
        return [line for m in self.messages if isinstance(m, Logs) for line in m.logs]

    def close(self) -> None:
        self.mine.close()
        self.theirs.close()


@pytest.fixture
def manager():
    end = Manager()
    yield end
    end.close()


def test_a_log_line_is_sent_at_once_not_with_the_next_heartbeat(manager):
    manager.link.add_log(40, "app", "last words before os._exit")
    assert manager.link.take_logs() == ((), 0)  # nothing left for the heartbeat
    assert manager.lines() == [LogLine(40, "app", "last words before os._exit")]


def test_a_5_mb_log_line_is_cut_to_max_log_line_with_the_marker(manager):
    manager.link.add_log(40, "app", "y" * 5_000_000)
    lines = manager.lines()
    assert len(lines) == 1
    message = lines[0].message
    assert message.startswith("y" * MAX_LOG_LINE)
    assert message == "y" * MAX_LOG_LINE + f" …[{5_000_000 - MAX_LOG_LINE} more characters cut]"


@pytest.mark.parametrize(
    "text", ["plain text " * 50, "\x01" * 3000, "ü€😀" * 500], ids=["ascii", "controls", "unicode"]
)
def test_a_flood_of_log_lines_is_bounded_in_bytes_the_rest_counted(manager, text):
    sent = 20_000
    for i in range(sent):
        manager.link.add_log(20, "routemq.worker", f"{i} {text}")
    _, dropped = manager.link.take_logs()
    lines = manager.lines()
    assert 0 < len(lines) < sent
    assert len(lines) + dropped == sent
    as_sent = [[line.level, line.logger, line.message] for line in lines]
    log_bytes = len(json.dumps(as_sent, ensure_ascii=False).encode())
    assert log_bytes <= MAX_LOG_BYTES  # per heartbeat interval
    assert manager.link.take_logs() == ((), 0)  # the count restarts with each heartbeat
    data = encode(Heartbeat(logs_dropped=dropped))
    beat = decode(FrameReader().feed(data)[0])
    assert isinstance(beat, Heartbeat) and beat.logs_dropped == dropped


def test_unencodable_log_text_is_escaped_not_fatal(manager):
    manager.link.add_log(30, "app", "bad \udcff name")
    assert [line.message for line in manager.lines()] == ["bad \\udcff name"]


def test_the_spec_frame_and_a_command_sent_with_it_are_both_read():
    from engine.protocol import RoutesSource, WorkerSpec
    from engine.settings import Settings

    spec = WorkerSpec("s#0", "cid", "g", None, RoutesSource(pickled=b"x"), Settings(), sys_path=("/x",))
    mine, theirs = socket.socketpair()
    try:
        theirs.sendall(frame(pickle.dumps(spec)) + encode(Command.RETIRE))
        theirs.shutdown(socket.SHUT_WR)
        link = ManagerLink(mine)
        assert link.read_spec() == spec
        commands: list[Command] = []
        gone: list[bool] = []
        link._read_commands(commands.append, lambda: gone.append(True))
        assert commands == [Command.RETIRE] and gone == [True]
        assert link.manager_gone
    finally:
        mine.close()
        theirs.close()
