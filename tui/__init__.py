"""The Textual dashboard of routemq-dash: watch and steer a WorkerManager from the terminal.

The UI only reads immutable snapshots and events from the engine and calls its methods (see
:mod:`tui.engine_port`); it never touches a worker process itself.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("routemq-dash")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
