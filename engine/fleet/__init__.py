"""The fleet: every manager of a group seen and steered over the broker (issue 14)."""
