"""One manager per (broker, client-id prefix, host, share group), and the private directories we keep files in.

Two managers with the same settings on one host would share client ids and kick each other off
the broker, so the manager holds an exclusive ``flock`` on a lock file named after that identity
while it runs.

Where the lock lives matters: a lock in a shared directory (``/tmp``) lets another local user
pre-create the directory and plant a symbolic link at the lock's name, so that we truncate and
write into a file of ours, or simply hold the lock and keep us from starting. So every file of
ours lives in a directory that we created or that we checked: a real directory (not a link),
owned by us and writable by nobody else. The checks run on an open descriptor of the directory
and every file in it is opened relative to that descriptor, so a directory swapped between the
check and the use cannot redirect us.

* host locks: ``$XDG_RUNTIME_DIR/routemq-dash`` when ``XDG_RUNTIME_DIR`` is usable (the XDG
  runtime directory is the user's own and is emptied at log-out), else
  ``$XDG_STATE_HOME/routemq-dash/locks``;
* state (the session ledger, :mod:`engine.sessions`): ``$XDG_STATE_HOME/routemq-dash``, with
  ``XDG_STATE_HOME`` defaulting to ``~/.local/state``.

A directory that fails the checks is a :class:`~engine.settings.SettingsError` of one line naming
it, what is wrong and how to fix it (the command line turns that into exit code 2).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import stat
import threading
from dataclasses import dataclass

from ..settings import SettingsError

log = logging.getLogger("routemq.manager")

APP_DIRECTORY = "routemq-dash"
PURPOSES = ("locks", "state")

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LOCK_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
# The holder removes its lock file on release, so an open can find a file that is already gone
# (or replaced) by the time we lock it; a few rounds settle that race.
_LOCK_ATTEMPTS = 20


class ManagerConflict(RuntimeError):
    """Another manager on this host serves the same group on the same broker."""


# ---------------------------------------------------------------------------------------------
# Private directories
# ---------------------------------------------------------------------------------------------


@dataclass
class PrivateDirectory:
    """A checked directory of ours: its path (for messages) and an open descriptor (for use)."""

    path: str
    fd: int

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def __enter__(self) -> PrivateDirectory:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def private_directory(purpose: str) -> str:
    """The path of our directory for ``purpose`` ("locks" or "state"), created (0700) and checked.

    Raises :class:`SettingsError` (one line) when it cannot be used.
    """
    with open_private_directory(purpose) as directory:
        return directory.path


def open_private_directory(purpose: str) -> PrivateDirectory:
    """Like :func:`private_directory`, but open: use ``fd`` as ``dir_fd`` for the files in it."""
    if purpose == "state":
        return _open_state_directory()
    if purpose == "locks":
        runtime = _usable_runtime_directory()
        if runtime is not None:
            path = os.path.join(runtime, APP_DIRECTORY)
            return PrivateDirectory(path, _open_checked(path, "XDG_RUNTIME_DIR"))
        with _open_state_directory() as state:
            path = os.path.join(state.path, "locks")
            return PrivateDirectory(path, _open_checked(path, "XDG_STATE_HOME", state.fd))
    raise ValueError(f"unknown purpose {purpose!r}; expected one of {PURPOSES}")


def open_checked_directory(path: str, variable: str = "XDG_STATE_HOME") -> int:
    """An O_DIRECTORY descriptor of the existing directory ``path``, checked as private and ours.

    For files written long after the directory was first checked (the session ledger): the
    directory is opened again without following a link and checked again, so that a swap since
    then is noticed. ``variable`` is the setting the error message points at.
    """
    try:
        fd = os.open(path, _DIRECTORY_FLAGS)
    except OSError as exc:
        raise SettingsError(_cannot_open(path, variable, exc)) from None
    try:
        _check_ours(fd, path, variable)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_state_directory() -> PrivateDirectory:
    base, source = _state_home()
    path = os.path.join(base, APP_DIRECTORY)
    _make_parents(base, source)
    return PrivateDirectory(path, _open_checked(path, "XDG_STATE_HOME"))


def _state_home() -> tuple[str, str]:
    """``$XDG_STATE_HOME`` (or its default) and how to name it in a message."""
    value = os.environ.get("XDG_STATE_HOME", "")
    if value:
        source = f"XDG_STATE_HOME={_show(value)}"
        if not os.path.isabs(value):
            raise SettingsError(f"{source} is not valid: expected an absolute path (the default is ~/.local/state)")
        if os.path.lexists(value) and not os.path.isdir(value):
            raise SettingsError(f"{source} is not valid: it is not a directory; set it to a directory of yours")
        return value, source
    base = os.path.join(os.path.expanduser("~"), ".local", "state")
    if not os.path.isabs(base):  # no home directory to expand "~" to
        raise SettingsError("XDG_STATE_HOME is not set and there is no home directory: set XDG_STATE_HOME")
    return base, f"the state directory {_show(base)} (XDG_STATE_HOME is not set)"


def _make_parents(base: str, source: str) -> None:
    """Create ``base`` and its missing parents with mode 0700, as the XDG specification asks."""
    missing: list[str] = []
    current = base
    while not os.path.lexists(current) and os.path.dirname(current) != current:
        missing.append(current)
        current = os.path.dirname(current)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue  # made by someone else meanwhile: the leaf's own checks still apply
        except OSError as exc:
            raise SettingsError(
                f"{source} cannot be used: cannot create {_show(directory)}: {exc.strerror}; "
                "set XDG_STATE_HOME to a writable directory of yours"
            ) from None


def _usable_runtime_directory() -> str | None:
    """``$XDG_RUNTIME_DIR`` if it is a proper runtime directory, else None (with a warning)."""
    value = os.environ.get("XDG_RUNTIME_DIR", "")
    if not value:
        return None
    problem = _runtime_problem(value)
    if problem is None:
        return value
    log.warning(
        "XDG_RUNTIME_DIR=%s %s; keeping the host locks under the state directory instead",
        _show(value), problem,
    )
    return None


def _runtime_problem(value: str) -> str | None:
    if not os.path.isabs(value):
        return "is not an absolute path"
    try:
        info = os.stat(value)
    except OSError as exc:
        return f"cannot be used: {exc.strerror}"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if info.st_uid != os.geteuid():
        return f"belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()})"
    if info.st_mode & 0o022:
        return f"is writable by other users (mode {stat.S_IMODE(info.st_mode):04o})"
    if not os.access(value, os.W_OK | os.X_OK):
        return "is not writable"
    return None


def _open_checked(path: str, variable: str, parent_fd: int | None = None) -> int:
    """Create ``path`` (0700) unless it exists, open it without following a link, and check it.

    With ``parent_fd``, ``path``'s last component is made and opened relative to that (already
    checked) directory; ``path`` itself then only serves the messages.
    """
    target = os.path.basename(path) if parent_fd is not None else path
    created = False
    try:
        os.mkdir(target, 0o700, dir_fd=parent_fd)
        created = True
    except FileExistsError:
        pass  # checked below, whatever it is
    except OSError as exc:
        raise SettingsError(
            f"cannot create the directory {_show(path)}: {exc.strerror}; "
            f"set {variable} to a writable directory of yours"
        ) from None
    try:
        fd = os.open(target, _DIRECTORY_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        raise SettingsError(_cannot_open(path, variable, exc)) from None
    try:
        if created:
            os.fchmod(fd, 0o700)  # the umask may have taken bits we need, never ones we refuse
        _check_ours(fd, path, variable)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _cannot_open(path: str, variable: str, exc: OSError) -> str:
    shown = _show(path)
    # O_NOFOLLOW gives ELOOP for a link, but O_DIRECTORY gives ENOTDIR first for a link to a directory.
    if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and os.path.islink(path)):
        return (
            f"{shown} is a symbolic link, which is refused so that nobody can redirect our files there: "
            f"remove it, or set {variable} to another directory"
        )
    if exc.errno == errno.ENOTDIR:
        return f"{shown} is not a directory: remove or rename it, or set {variable} to another directory"
    return f"cannot open the directory {shown}: {exc.strerror}; set {variable} to a directory of yours"


def _check_ours(fd: int, path: str, variable: str) -> None:
    info = os.fstat(fd)
    shown = _show(path)
    if info.st_uid != os.geteuid():
        raise SettingsError(
            f"{shown} belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()}), and is refused: "
            f"remove it, or set {variable} to a directory of yours"
        )
    if info.st_mode & 0o022:
        raise SettingsError(
            f"{shown} is writable by other users (mode {stat.S_IMODE(info.st_mode):04o}) and is refused: "
            f"run chmod 700 {shown}, or remove it"
        )


def _show(path: str) -> str:
    """A path as it can go into a one-line message: quoted when it holds a line break or other control."""
    return path if path.isprintable() else repr(path)


# ---------------------------------------------------------------------------------------------
# The host lock
# ---------------------------------------------------------------------------------------------


class HostLock:
    """An exclusive lock per (broker, client-id prefix, host, group), held while a manager runs.

    ``flock`` belongs to the open file description, so a second manager conflicts whether it
    runs in another process or in this one. The lock file holds the holder's pid, for the
    message, and is removed on release.
    """

    def __init__(self, path: str, fd: int, directory: PrivateDirectory) -> None:
        self.path = path
        self._fd: int | None = fd
        self._directory = directory
        self._release_lock = threading.Lock()

    @classmethod
    def acquire(cls, identity: str, group: str, broker: str) -> HostLock:
        """Lock ``identity``; raise :class:`ManagerConflict` if another manager holds it.

        Raises :class:`SettingsError` if the lock directory or the lock file cannot be trusted.
        """
        directory = open_private_directory("locks")
        name = hashlib.sha1(identity.encode()).hexdigest()[:16] + ".lock"
        path = os.path.join(directory.path, name)
        try:
            fd = _lock(directory.fd, name, path, group, broker)
        except BaseException:
            directory.close()
            raise
        lock = cls(path, fd, directory)
        try:
            # Only now that it is ours: a conflicting manager reads the pid for its message.
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError as exc:
            lock.release()
            raise SettingsError(f"cannot write the lock file {_show(path)}: {exc.strerror}") from None
        return lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and unlock. Safe to call more than once."""
        with self._release_lock:
            fd, self._fd = self._fd, None
        if fd is None:
            return
        name = os.path.basename(self.path)
        try:
            # Unlinked while still locked: a manager that opened this file meanwhile finds it
            # unlinked once it gets the lock, and starts over with a new file.
            if _is_linked(fd, self._directory.fd, name):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=self._directory.fd)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the last descriptor drops the flock
            self._directory.close()

    def __repr__(self) -> str:
        return f"HostLock({self.path!r}, {'held' if self.held else 'released'})"


def _lock(dir_fd: int, name: str, path: str, group: str, broker: str) -> int:
    """A descriptor of the lock file ``name`` in ``dir_fd``, exclusively locked and still linked there."""
    for _ in range(_LOCK_ATTEMPTS):
        fd = _open_lock_file(dir_fd, name, path)
        if fd is None:
            continue  # removed between our two opens: try again
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if _is_linked(fd, dir_fd, name):
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise _conflict(holder, group, broker) from None
            os.close(fd)  # a holder releasing it right now: the next round finds the new file, or none
            continue
        if _is_linked(fd, dir_fd, name):
            return fd
        os.close(fd)  # the previous holder removed it before we locked it
    raise _conflict("?", group, broker)


def _conflict(holder: str, group: str, broker: str) -> ManagerConflict:
    return ManagerConflict(
        f"another manager (pid {holder}) on this host already runs share group {group!r} on {broker}; "
        "set another MQTT_GROUP_NAME or MQTT_CLIENT_ID, or stop it first"
    )


def _open_lock_file(dir_fd: int, name: str, path: str) -> int | None:
    """Open (creating it if absent) the lock file, never through a link; None if it just vanished."""
    try:
        return os.open(name, _LOCK_FLAGS | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=dir_fd)
    except FileExistsError:
        pass
    except OSError as exc:
        raise SettingsError(f"cannot create the lock file {_show(path)}: {exc.strerror}") from None
    try:
        fd = os.open(name, _LOCK_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SettingsError(
                f"{_show(path)} is a symbolic link, not a lock file, and is not followed: remove it"
            ) from None
        raise SettingsError(f"cannot open the lock file {_show(path)}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        what = "is not a regular file" if not stat.S_ISREG(info.st_mode) else f"belongs to uid {info.st_uid}"
        raise SettingsError(f"{_show(path)} {what}, so it is not our lock file: remove it")
    return fd


def _is_linked(fd: int, dir_fd: int, name: str) -> bool:
    """Whether ``name`` in ``dir_fd`` is still the file open as ``fd`` (not removed, not replaced)."""
    try:
        there = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    here = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino)
