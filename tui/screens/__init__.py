"""Screens pushed over the dashboard: a worker's and a route's details, the fleet and another manager of
it, the stop confirmation, the help."""
