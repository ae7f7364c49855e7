"""Example routers: every non-private module here that defines `router` is loaded by RouterRegistry."""
