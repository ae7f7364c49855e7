"""The supervisor: the manager-side objects that run and watch worker processes (see ARCHITECTURE.md)."""
