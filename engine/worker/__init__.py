"""The worker: the child process that serves one slot (see ARCHITECTURE.md)."""
