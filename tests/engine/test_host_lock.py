"""The host lock and the private directories: real files, real flocks, real processes.

The attack these tests stand for: with the lock in a shared directory, another local user could
pre-create the directory (mode 0777) with a symbolic link at the lock's name, so that we would
write into a file of ours through it, or hold the lock and keep us from starting.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.sessions import SessionLedger
from engine.settings import SettingsError
from engine.supervisor.host_lock import HostLock, ManagerConflict, private_directory

REPO = Path(__file__).resolve().parents[2]
IDENTITY = "127.0.0.1:1883/routemq/host/group"
NOBODY = 65534


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """XDG_STATE_HOME and XDG_RUNTIME_DIR of the test's own; the runtime one unset until a test sets it."""
    state, runtime = tmp_path / "state", tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return {"state": state, "runtime": runtime, "tmp": tmp_path}


@pytest.fixture
def locks() -> list[HostLock]:
    """Locks a test takes are released after it, whatever happens."""
    taken: list[HostLock] = []
    yield taken
    for lock in taken:
        lock.release()


def acquire(locks: list[HostLock], identity: str = IDENTITY) -> HostLock:
    lock = HostLock.acquire(identity, "group", "127.0.0.1:1883")
    locks.append(lock)
    return lock


def lock_name(identity: str = IDENTITY) -> str:
    return hashlib.sha1(identity.encode()).hexdigest()[:16] + ".lock"


def refusal(call) -> str:
    with pytest.raises(SettingsError) as caught:
        call()
    message = str(caught.value)
    assert message and "\n" not in message, f"not one line: {message!r}"
    return message


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def other_users_directory(path: Path) -> str:
    """Make ``path`` a directory we must refuse: another user's as root can make it, else writable by all.

    Returns the words the refusal must hold.
    """
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
        path.chmod(0o700)
        return f"belongs to uid {NOBODY}"
    path.chmod(0o777)
    return "is writable by other users"


# ---------------------------------------------------------------------------------------------
# One manager per identity
# ---------------------------------------------------------------------------------------------


def test_a_second_acquire_of_one_identity_conflicts_naming_the_holder(dirs, locks):
    first = acquire(locks)
    assert Path(first.path).read_text() == str(os.getpid())
    with pytest.raises(ManagerConflict) as caught:
        acquire(locks)
    message = str(caught.value)
    assert f"pid {os.getpid()}" in message and "'group'" in message and "127.0.0.1:1883" in message
    assert "\n" not in message
    acquire(locks, IDENTITY + "-other")  # another identity is another lock


def test_release_removes_the_file_and_lets_the_identity_be_acquired_again(dirs, locks):
    first = acquire(locks)
    path = Path(first.path)
    assert path.exists() and mode(path) == 0o600
    first.release()
    assert not path.exists(), "no stale lock file builds up"
    first.release()  # idempotent
    second = acquire(locks)
    assert second.path == first.path and Path(second.path).read_text() == str(os.getpid())


def test_a_stale_lock_file_left_by_a_dead_manager_is_taken_over(dirs, locks):
    directory = Path(private_directory("locks"))
    (directory / lock_name()).write_text("999999999")
    lock = acquire(locks)
    assert Path(lock.path).read_text() == str(os.getpid())


HOLD = """
import sys
from engine.supervisor.host_lock import HostLock, ManagerConflict
try:
    lock = HostLock.acquire(sys.argv[1], "group", "127.0.0.1:1883")
except ManagerConflict as exc:
    print("conflict:", exc, flush=True)
    sys.exit(0)
print("locked", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
"""


def run_child(identity: str = IDENTITY) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLD, identity], cwd=REPO, env=dict(os.environ),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )


def test_a_lock_held_by_another_process_conflicts_both_ways(dirs, locks):
    child = run_child()
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(ManagerConflict, match=f"pid {child.pid}"):
            acquire(locks)
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "released"
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    acquire(locks)
    second = run_child()
    out, _ = second.communicate(timeout=30)
    assert out.startswith("conflict: ") and f"pid {os.getpid()}" in out


def test_racing_acquires_and_releases_never_hold_the_lock_twice(dirs):
    """Releases unlink the file while others open, lock and re-create it: the inode check keeps it exclusive."""
    holding: list[int] = []
    overlaps: list[int] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def contend() -> None:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                lock = HostLock.acquire(IDENTITY, "group", "broker")
            except ManagerConflict:
                continue
            except BaseException as exc:
                errors.append(exc)
                return
            with guard:
                holding.append(1)
                if len(holding) > 1:
                    overlaps.append(len(holding))
            time.sleep(0.0005)
            with guard:
                holding.pop()
            lock.release()

    threads = [threading.Thread(target=contend) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and not overlaps
    assert os.listdir(private_directory("locks")) == [], "every lock file was removed"


# ---------------------------------------------------------------------------------------------
# Where the lock lives, and what is refused
# ---------------------------------------------------------------------------------------------


def test_the_lock_lives_in_the_runtime_directory_when_there_is_one(dirs, locks, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(dirs["runtime"]))
    lock = acquire(locks)
    assert Path(lock.path).parent == dirs["runtime"] / "routemq-dash"
    assert mode(dirs["runtime"] / "routemq-dash") == 0o700


def test_without_a_runtime_directory_the_lock_lives_under_the_state_directory(dirs, locks):
    lock = acquire(locks)
    assert Path(lock.path).parent == dirs["state"] / "routemq-dash" / "locks"
    for made in (dirs["state"], dirs["state"] / "routemq-dash", dirs["state"] / "routemq-dash" / "locks"):
        assert mode(made) == 0o700, made
    assert not str(lock.path).startswith("/tmp/routemq-dash"), "never the old shared location"


def test_the_default_state_directory_is_made_private_from_home_down(tmp_path, monkeypatch, locks):
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    lock = acquire(locks)
    assert Path(lock.path).parent == tmp_path / ".local" / "state" / "routemq-dash" / "locks"
    assert mode(tmp_path / ".local") == 0o700 and mode(tmp_path / ".local" / "state") == 0o700


@pytest.mark.parametrize("where", ["state", "runtime"])
def test_a_pre_created_world_writable_directory_is_refused(dirs, locks, monkeypatch, where):
    if where == "runtime":
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(dirs["runtime"]))
        planted = dirs["runtime"] / "routemq-dash"
    else:
        planted = dirs["state"] / "routemq-dash"
    planted.mkdir(parents=True)
    planted.chmod(0o777)
    message = refusal(lambda: acquire(locks))
    assert message.startswith(f"{planted} is writable by other users (mode 0777)")
    assert f"chmod 700 {planted}" in message
    assert list(planted.iterdir()) == [], "nothing was written into it"


@pytest.mark.parametrize("where", ["state", "locks"])
def test_a_directory_of_another_user_is_refused(dirs, locks, where):
    planted = dirs["state"] / "routemq-dash"
    if where == "locks":
        planted.mkdir(parents=True, mode=0o700)
        planted = planted / "locks"
    words = other_users_directory(planted)
    message = refusal(lambda: acquire(locks))
    assert message.startswith(f"{planted} ") and words in message
    assert list(planted.iterdir()) == []


def test_a_symlinked_directory_is_refused(dirs, locks):
    elsewhere = dirs["tmp"] / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    dirs["state"].mkdir(mode=0o700)
    (dirs["state"] / "routemq-dash").symlink_to(elsewhere)
    message = refusal(lambda: acquire(locks))
    assert message.startswith(f"{dirs['state'] / 'routemq-dash'} is a symbolic link")
    assert list(elsewhere.iterdir()) == []


def test_a_symlink_at_the_lock_name_is_not_followed_and_is_refused(dirs, locks):
    """Refused rather than replaced: only we (or root) can write in our private directory, so a link
    there is a surprise the operator should look at, not something to clean up silently."""
    victim = dirs["tmp"] / "precious.txt"
    victim.write_text("precious")
    directory = Path(private_directory("locks"))
    (directory / lock_name()).symlink_to(victim)
    message = refusal(lambda: acquire(locks))
    assert message.startswith(f"{directory / lock_name()} is a symbolic link, not a lock file")
    assert victim.read_text() == "precious"
    assert (directory / lock_name()).is_symlink(), "left for the operator to look at"


def test_a_lock_file_of_another_kind_is_refused(dirs, locks):
    directory = Path(private_directory("locks"))
    os.mkfifo(directory / lock_name())
    assert "is not a regular file" in refusal(lambda: acquire(locks))


def test_a_lock_file_of_another_user_is_refused(dirs, locks):
    directory = Path(private_directory("locks"))
    planted = directory / lock_name()
    planted.write_text("1")
    if os.geteuid() != 0:
        # Without root we cannot give a file away; the directory check is what stops other users.
        planted.chmod(0o600)
        acquire(locks)
        return
    os.chown(planted, NOBODY, NOBODY)
    assert f"belongs to uid {NOBODY}" in refusal(lambda: acquire(locks))


# ---------------------------------------------------------------------------------------------
# Bad environment variables
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["a file", "a relative path", "missing", "world-writable", "another user's"])
def test_an_unusable_runtime_directory_falls_back_with_a_warning(dirs, locks, monkeypatch, caplog, kind):
    value: Path | str
    if kind == "a file":
        value = dirs["tmp"] / "file"
        value.write_text("")
    elif kind == "a relative path":
        value = "relative/run"
    elif kind == "missing":
        value = dirs["tmp"] / "no-such-dir"
    elif kind == "world-writable":
        value = dirs["tmp"] / "shared"
        value.mkdir()
        value.chmod(0o1777)
    else:
        value = dirs["tmp"] / "theirs"
        other_users_directory(value)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(value))
    with caplog.at_level(logging.WARNING, logger="routemq.manager"):
        lock = acquire(locks)
    assert Path(lock.path).parent == dirs["state"] / "routemq-dash" / "locks"
    warnings = [r.getMessage() for r in caplog.records if r.name == "routemq.manager"]
    assert len(warnings) == 1 and warnings[0].startswith(f"XDG_RUNTIME_DIR={value} ")
    assert "state directory instead" in warnings[0]


@pytest.mark.parametrize("kind", ["a file", "a relative path", "under a file"])
def test_an_unusable_state_directory_is_one_line_naming_the_variable(dirs, locks, monkeypatch, kind):
    if kind == "a file":
        value = str(dirs["tmp"] / "file")
        Path(value).write_text("")
    elif kind == "a relative path":
        value = "relative/state"
    else:
        (dirs["tmp"] / "file").write_text("")
        value = str(dirs["tmp"] / "file" / "state")
    monkeypatch.setenv("XDG_STATE_HOME", value)
    for call in (lambda: acquire(locks), lambda: private_directory("state"), lambda: SessionLedger.for_identity("x")):
        message = refusal(call)
        assert message.startswith(f"XDG_STATE_HOME={value} "), message


def test_an_unknown_purpose_is_a_programming_error(dirs):
    with pytest.raises(ValueError, match="unknown purpose"):
        private_directory("cache")


# ---------------------------------------------------------------------------------------------
# The session ledger shares the checked state directory
# ---------------------------------------------------------------------------------------------


def test_the_session_ledger_lives_in_the_private_state_directory(dirs):
    ledger = SessionLedger.for_identity(IDENTITY)
    assert ledger.path.parent == dirs["state"] / "routemq-dash" and mode(ledger.path.parent) == 0o700
    ledger.keep("client-1", "jobs/+", 0)
    assert mode(ledger.path) == 0o600
    again = SessionLedger.for_identity(IDENTITY)
    assert [s.client_id for s in again.sessions()] == ["client-1"]
    assert sorted(os.listdir(ledger.path.parent)) == [ledger.path.name], "no temporary file left behind"


def test_the_session_ledger_refuses_a_world_writable_state_directory(dirs):
    (dirs["state"] / "routemq-dash").mkdir(parents=True)
    (dirs["state"] / "routemq-dash").chmod(0o777)
    assert "is writable by other users" in refusal(lambda: SessionLedger.for_identity(IDENTITY))


def test_the_session_ledger_never_writes_or_reads_through_a_link(dirs, caplog):
    ledger = SessionLedger.for_identity(IDENTITY)
    victim = dirs["tmp"] / "precious.json"
    victim.write_text('{"sessions": [{"client_id": "planted", "pool": "p", "index": 0}]}')
    ledger.path.symlink_to(victim)
    ledger.path.with_suffix(".json.tmp").symlink_to(victim)
    with caplog.at_level(logging.WARNING, logger="routemq.sessions"):
        assert SessionLedger.for_identity(IDENTITY).sessions() == [], "the link was not read"
    assert "ignoring unreadable session ledger" in caplog.text
    ledger.keep("client-1", "jobs/+", 0)
    assert victim.read_text().startswith('{"sessions": [{"client_id": "planted"'), "the target is unchanged"
    assert not ledger.path.is_symlink() and "client-1" in ledger.path.read_text()


def test_the_session_ledger_does_not_write_into_a_directory_that_turned_unsafe(dirs, caplog):
    ledger = SessionLedger.for_identity(IDENTITY)
    ledger.path.parent.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="routemq.sessions"):
        ledger.keep("client-1", "jobs/+", 0)
    assert "cannot write the session ledger" in caplog.text and "is writable by other users" in caplog.text
    assert not ledger.path.exists()


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def test_a_refused_state_directory_is_exit_2_with_one_line_from_the_command(dirs):
    planted = dirs["state"] / "routemq-dash"
    planted.mkdir(parents=True)
    planted.chmod(0o777)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "WORKER_"))}
    done = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--no-ui", "--broker", "127.0.0.1:9", "--routers", "routers",
         "--env-file", str(dirs["tmp"] / "none.env")],
        cwd=REPO, env=environ, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"routemq-dash: error: {planted} is writable by other users")
