"""Screens pushed over the dashboard: the stop confirmation and the help."""
