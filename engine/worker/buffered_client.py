"""BufferedClient: a paho client that reads its socket in 64 KiB gulps.

paho reads each packet with about three ``recv`` calls (the fixed header's first byte, the
remaining length a byte at a time, then the rest): some 4 µs a message of system calls and
their Python wrapping, a fifth of a small message's cost. Here one ``recv`` of up to READ_SIZE
bytes fills a buffer from which paho's small reads are served, so a burst of messages costs one
system call per 64 KiB instead of three per message.

This overrides ``Client._sock_recv``, a private method of paho-mqtt: the version is pinned to
the minor versions it was tested with (pyproject.toml), and
tests/engine/test_buffered_client.py fails loudly when the override stops being called (it
counts the reads it served against the messages received).

Data in the buffer is invisible to the selector: whoever reads must keep calling ``loop_read``
while :attr:`buffered` is non-zero (engine/worker/client_io.py does).
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt

READ_SIZE = 65536


class BufferedClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._buffer = b""
        self._offset = 0
        self._buffer_socket: Any = None  # the socket the buffer was read from
        self.socket_reads = 0  # recv calls on the socket (the test's evidence that the hook works)
        self.reads_served = 0  # paho's reads served

    @property
    def buffered(self) -> int:
        """Bytes read from the socket that paho has not taken yet."""
        if self._buffer_socket is not self.socket():
            return 0
        return len(self._buffer) - self._offset

    def _sock_recv(self, bufsize: int) -> bytes:
        self.reads_served += 1
        sock = self.socket()
        if sock is not self._buffer_socket:  # a new connection: what was left belongs to the old one
            self._buffer, self._offset, self._buffer_socket = b"", 0, sock
        if self._offset >= len(self._buffer):
            data = super()._sock_recv(max(bufsize, READ_SIZE))  # raises BlockingIOError when empty
            self.socket_reads += 1
            if len(data) <= bufsize:  # all of it is asked for (or the end of the stream): no copy
                return data
            self._buffer, self._offset = data, 0
        start = self._offset
        self._offset = min(start + bufsize, len(self._buffer))
        return self._buffer[start : self._offset]
