"""Screens pushed over the dashboard: a worker's and a route's details, the stop confirmation, the help."""
