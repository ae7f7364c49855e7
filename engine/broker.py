"""Brokers we run ourselves: a private Mosquitto on a free port, and probes of a broker's port.

The private Mosquitto serves zero-setup runs (no broker configured, nothing on localhost:1883)
and the test suite, which needs brokers it can stop, kill, restart and reconfigure.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from .settings import Settings, SettingsError

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto")


def find_mosquitto() -> str | None:
    """The path of the mosquitto binary, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((path for path in MOSQUITTO_PATHS if os.access(path, os.X_OK)), None)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class BrokerStartError(RuntimeError):
    pass


class PrivateMosquitto:
    """A mosquitto process of our own, configured by a file we write, stopped by pid.

    ``listener_config`` replaces the default listener (``listener {port} {host}`` and anonymous
    access); ``{port}`` and ``{host}`` in it are filled in. ``extra_config`` lines are appended to
    the generated configuration (queue limits and the like). With ``persistence`` the broker
    saves sessions to ``workdir`` when stopped, so that a restart on the same port resumes them.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        persistence: bool = True,
        extra_config: str = "",
        listener_config: str | None = None,
        binary: str | None = None,
    ) -> None:
        found = binary or find_mosquitto()
        if found is None:
            raise BrokerStartError(
                "mosquitto is not installed (looked on PATH and in " + ", ".join(MOSQUITTO_PATHS) + ")"
            )
        self.binary: str = found
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="routemq-mosquitto-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self.persistence = persistence
        self.extra_config = extra_config
        self.listener_config = listener_config
        self.process: subprocess.Popen[bytes] | None = None
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def write_config(self) -> None:
        template = self.listener_config or "listener {port} {host}\nallow_anonymous true\n"
        listener = template.format(port=self.port, host=self.host)
        lines = [
            listener.rstrip("\n"),
            # Running as root, mosquitto would switch to the "mosquitto" user, who may not read
            # our working directory; stay who we are.
            f"user {getpass.getuser()}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp true",
            self.extra_config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> PrivateMosquitto:
        if self.process is not None and self.process.poll() is None:
            return self
        self.write_config()
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl+C in the terminal is ours to handle, not the broker's
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace").strip() if self.process.stderr else ""
                raise BrokerStartError(
                    f"mosquitto exited with {self.process.returncode} at start: {err or self._log_tail()}"
                )
            if port_open(self.host, self.port, timeout=0.2):
                return self
            time.sleep(0.02)
        self.kill()
        raise BrokerStartError(f"mosquitto did not open {self.address} within {timeout:g} s: {self._log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (mosquitto saves its database), then SIGKILL if it lingers; always reaped."""
        self._signal_and_reap(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: the broker dies without saving anything since its last autosave."""
        self._signal_and_reap(signal.SIGKILL, 5.0)

    def restart(self, timeout: float = 10.0) -> PrivateMosquitto:
        self.stop()
        return self.start(timeout)

    def _signal_and_reap(self, sig: signal.Signals, timeout: float) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            try:
                process.send_signal(sig)
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr:
            process.stderr.close()
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-3:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> PrivateMosquitto:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EmbeddedBroker:
    """rumqttd, embedded by the ``iotcore`` package, on a free local port (MQTT 3.1.1)."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        try:
            import iotcore
        except ImportError:
            raise BrokerStartError(
                "the embedded broker needs the iotcore package: pip install 'routemq-dash[embedded]'"
            ) from None
        self.host = host
        self.port = port or free_port(host)
        self._broker = iotcore.Broker(port=self.port, listen=host)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        try:
            self._broker.start()
        except (OSError, RuntimeError) as exc:
            raise BrokerStartError(f"the embedded broker did not start: {exc}") from None
        return self

    def stop(self) -> None:
        self._broker.stop()


@dataclass
class BrokerChoice:
    """Which broker this run uses, and the one we started for it (stop it on exit)."""

    settings: Settings
    kind: str  # "external", "private mosquitto", "embedded rumqttd"
    server: PrivateMosquitto | EmbeddedBroker | None
    note: str

    def stop(self) -> None:
        if self.server is not None:
            if isinstance(self.server, PrivateMosquitto):
                self.server.close()
            else:
                self.server.stop()


def broker_configured(env_file: str | os.PathLike[str] | None) -> bool:
    """True when MQTT_BROKER is set in the environment or in the .env file."""
    if os.environ.get("MQTT_BROKER"):
        return True
    return bool(env_file and os.path.exists(env_file) and dotenv_values(env_file).get("MQTT_BROKER"))


def parse_broker_option(value: str) -> tuple[str, int | None]:
    """``HOST`` or ``HOST:PORT`` (``[v6]:PORT`` too) from ``--broker``; ValueError when malformed."""
    host, port = value, None
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    if not host or (port is not None and not (port.isdigit() and 1 <= int(port) <= 65535)):
        raise ValueError(f"--broker {value!r}: expected HOST, HOST:PORT (port 1 to 65535) or 'embedded'")
    return host, int(port) if port is not None else None


def choose_broker(settings: Settings, requested: str | None, configured: bool) -> BrokerChoice:
    """The broker for this run.

    ``--broker embedded`` starts the embedded broker; ``--broker HOST[:PORT]`` and a configured
    MQTT_BROKER are used as given. Otherwise (a first run) the broker on localhost:1883 if one
    answers, else a private Mosquitto on a free port if the binary is installed, else the
    embedded broker. Brokers we start live as long as this run.
    """
    if requested == "embedded":
        return _embedded(settings, "--broker embedded")
    if requested:
        host, port = parse_broker_option(requested)
        chosen = settings.replace(broker=host, port=port or settings.port)
        return BrokerChoice(chosen, "external", None, f"using the broker at {chosen.broker_address} (--broker)")
    if configured:
        return BrokerChoice(settings, "external", None, f"using the configured broker at {settings.broker_address}")
    if port_open(settings.broker, settings.port):
        return BrokerChoice(settings, "external", None, f"using the broker answering on {settings.broker_address}")
    if find_mosquitto() is not None:
        server = PrivateMosquitto(persistence=False).start()
        chosen = settings.replace(broker=server.host, port=server.port)
        return BrokerChoice(
            chosen,
            "private mosquitto",
            server,
            f"no broker configured and nothing on {settings.broker_address}: "
            f"started a private mosquitto on {server.address} for this session",
        )
    return _embedded(settings, f"no broker configured, nothing on {settings.broker_address} and no mosquitto")


def _embedded(settings: Settings, why: str) -> BrokerChoice:
    if settings.protocol == "5":
        raise SettingsError(
            "MQTT_PROTOCOL=5 does not work with the embedded broker, which serves MQTT 3.1.1 here: "
            "set MQTT_PROTOCOL=3.1.1 or install mosquitto"
        )
    server = EmbeddedBroker().start()
    chosen = settings.replace(broker=server.host, port=server.port)
    return BrokerChoice(
        chosen,
        "embedded rumqttd",
        server,
        f"{why}: started the embedded rumqttd broker on {server.address} for this session",
    )
