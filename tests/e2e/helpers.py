"""Helpers for the end-to-end tests: handlers the workers import, a load generator that runs in a
process of its own, and the record files that prove what was handled.

Handlers live at module level here, so worker processes import them by reference (pickle). This
module imports nothing heavy, because every worker of these tests imports it.

Records: a handler appends ``"<pid> <id>\\n"`` to the file named in the payload with one
``os.write`` on a descriptor opened with ``O_APPEND``. On a local file system a single append of
a short line is atomic: lines from concurrent workers never interleave. A reader may still see
the last line half written, so readers only count lines that end with a newline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_kept: list[bytes] = []  # memory a handler was asked to keep (grow_mb)


# ---------------------------------------------------------------------------------------------
# Handlers (run in the workers)
# ---------------------------------------------------------------------------------------------


def append_record(out: str, ident: object) -> None:
    """Append one ``pid id`` line to ``out`` with a single O_APPEND write."""
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()} {ident}\n".encode())
    finally:
        os.close(fd)


def record(payload: Any, client: Any, **params: Any) -> None:
    """Record ``payload["id"]`` in ``payload["out"]``. Optional behaviours, steered by the payload:
    ``hold``: a marker path; the first delivery writes it (our pid) and then blocks forever;
    ``grow_mb``: allocate and keep that many MB; ``sleep``: seconds to take before recording;
    ``work``: seconds to take after recording (a worker killed then has handled the message but
    not acknowledged it: the broker delivers it again, a duplicate)."""
    if not isinstance(payload, dict):
        raise TypeError(f"expected a JSON object, got {type(payload).__name__}")
    hold = payload.get("hold")
    if hold and not os.path.exists(hold):
        with open(hold, "w") as marker:
            marker.write(str(os.getpid()))
        while True:
            time.sleep(1)
    if payload.get("grow_mb"):
        _kept.append(b"x" * (int(payload["grow_mb"]) * 1024 * 1024))
    if payload.get("sleep"):
        time.sleep(float(payload["sleep"]))
    if payload.get("out"):
        append_record(payload["out"], payload.get("id"))
    if payload.get("work"):
        time.sleep(float(payload["work"]))


def objects_only(payload: Any, client: Any) -> None:
    """Accept JSON objects, refuse anything else (raises): the hostile-input tests' handler."""
    if not isinstance(payload, dict):
        raise ValueError(f"refusing a {type(payload).__name__} payload: only JSON objects are handled")


# ---------------------------------------------------------------------------------------------
# Record files (read by the tests)
# ---------------------------------------------------------------------------------------------


def read_records(path: Path) -> list[tuple[int, str]]:
    """Complete ``pid id`` lines of ``path`` (a line still being written is left for later)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records = []
    for line in data.split(b"\n")[:-1]:  # the piece after the last newline is not a whole line
        pid, ident = line.decode().split(" ", 1)
        records.append((int(pid), ident))
    return records


def handled_ids(path: Path) -> set[str]:
    return {ident for _, ident in read_records(path)}


def duplicates(path: Path) -> Counter[str]:
    """Ids handled more than once, with how many times."""
    counts = Counter(ident for _, ident in read_records(path))
    return Counter({ident: n for ident, n in counts.items() if n > 1})


# ---------------------------------------------------------------------------------------------
# Load: a QoS 1 publisher in its own process
# ---------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    published: int  # messages published, bursts included
    paced: int  # messages published at the steady rate
    acked: list[str]  # ids whose PUBACK came back: the broker took responsibility for them
    publishing_seconds: float  # time spent publishing at the steady rate (pauses excluded)

    @property
    def rate(self) -> float:
        """The steady rate achieved, in messages a second."""
        return self.paced / self.publishing_seconds if self.publishing_seconds else 0.0


class LoadPublisher:
    """Publishes ``rate`` QoS 1 messages a second for ``duration`` seconds, from a process of its
    own (so that it neither competes with the manager's supervisor thread for the GIL nor slows
    down when the test is busy). Each payload is ``{"id": <unique>, "out": <records file>}`` plus
    ``extra``, published to ``<topic_prefix><i % 7>``.

    A message counts as published once its PUBACK came back (paho resends unacknowledged ones
    after a reconnect, so a broker outage costs nothing but time). ``pause()`` stops publishing
    and returns once every message published so far has been acknowledged; ``resume()`` goes
    on; ``burst(n)`` publishes n messages at once, then pauses the same way. Commands go over the
    child's stdin, answers come back on its stdout.
    """

    def __init__(self, broker: Any, topic_prefix: str, out: Path, *, rate: float, duration: float,
                 workdir: Path, extra: dict[str, Any] | None = None) -> None:
        self.result_path = workdir / f"load-{uuid.uuid4().hex[:8]}.json"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.helpers", "publish", broker.host, str(broker.port), topic_prefix,
             str(out), str(rate), str(duration), str(self.result_path), json.dumps(extra or {})],
            cwd=Path(__file__).resolve().parents[2],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._expect("ready")

    def _send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def _expect(self, word: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the load publisher exited (code {self.process.wait()}) before saying {word!r}")
        answer = json.loads(line)
        assert answer["say"] == word, answer
        return answer

    def pause(self) -> dict[str, Any]:
        """Stop publishing; return when every message so far is acknowledged (``{"published", "acked"}``)."""
        self._send("pause")
        return self._expect("paused")

    def burst(self, count: int, **extra: Any) -> dict[str, Any]:
        """Publish ``count`` messages at once (``extra`` added to their payloads, e.g. ``sleep``),
        then pause as ``pause()`` does."""
        self._send(f"burst {count} {json.dumps(extra)}")
        return self._expect("paused")

    def resume(self) -> None:
        self._send("resume")
        self._expect("resumed")

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def result(self, timeout: float = 60.0) -> LoadResult:
        """Wait for the publisher to finish (its duration, then its last acknowledgements)."""
        self._expect("done")
        code = self.process.wait(timeout)
        assert code == 0, f"the load publisher failed with exit code {code}"
        data = json.loads(self.result_path.read_text())
        return LoadResult(data["published"], data["paced"], data["acked"], data["publishing_seconds"])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> LoadPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _publish_main(host: str, port: str, topic_prefix: str, out: str, rate: str, duration: str,
                  result_path: str, extra_json: str) -> None:
    """The publisher process (see LoadPublisher)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    def say(word: str, **fields: Any) -> None:
        print(json.dumps({"say": word, **fields}), flush=True)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"e2e-load-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)  # no limit: during an outage, everything waits for the broker
    client.reconnect_delay_set(1, 1)
    # PUBACKs, by message id. (MQTTMessageInfo.is_published() raises for a message first published
    # while disconnected, even once it has been resent and acknowledged, so it cannot be used.)
    acked_mids: set[int] = set()
    client.on_publish = lambda client, userdata, mid, reason, properties: acked_mids.add(mid)
    client.connect(host, int(port))
    client.loop_start()

    commands: list[str] = []
    wake = threading.Event()

    def read_commands() -> None:
        for line in sys.stdin:
            commands.append(line.strip())
            wake.set()

    threading.Thread(target=read_commands, daemon=True).start()
    per_second, total_seconds = float(rate), float(duration)
    sent: list[tuple[str, int]] = []  # (id, message id)
    run = uuid.uuid4().hex[:6]

    def count_acked() -> int:
        return sum(mid in acked_mids for _, mid in sent)

    def all_acked(timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while count_acked() < len(sent):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    every_payload = json.loads(extra_json)

    def publish(**extra: Any) -> None:
        if len(sent) >= 65_535:  # acknowledgements are told apart by message id, which would wrap
            raise SystemExit("too many messages for one publisher run")
        ident = f"{run}-{len(sent)}"
        body = json.dumps({"id": ident, "out": out, **every_payload, **extra})
        sent.append((ident, client.publish(f"{topic_prefix}{len(sent) % 7}", body, qos=1).mid))

    say("ready")
    total = round(per_second * total_seconds)
    paced = 0  # messages published at the steady rate (bursts come on top)
    origin = time.monotonic()  # paced message i is due at origin + i / rate; pauses move the origin
    while paced < total:
        while commands:
            command, count, extra = ([*commands.pop(0).split(" ", 2), "0", "{}"])[:3]
            if command not in ("pause", "burst"):
                continue
            paused_at = time.monotonic()
            for _ in range(int(count)):
                publish(**json.loads(extra))
            all_acked(60)
            say("paused", published=len(sent), acked=count_acked())
            while "resume" not in commands:
                wake.wait(0.1)
                wake.clear()
            commands.remove("resume")
            origin += time.monotonic() - paused_at
            say("resumed")
        delay = origin + paced / per_second - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing the load, not waiting for anything
        publish()
        paced += 1
    elapsed = time.monotonic() - origin  # pauses excluded
    all_acked(60)
    acked = [ident for ident, mid in sent if mid in acked_mids]
    Path(result_path).write_text(
        json.dumps({"published": len(sent), "paced": paced, "acked": acked, "publishing_seconds": elapsed})
    )
    client.disconnect()
    client.loop_stop()
    say("done", published=len(sent), acked=len(acked))


if __name__ == "__main__":
    if sys.argv[1:2] == ["publish"]:
        _publish_main(*sys.argv[2:])
