"""The call monitor: analysis, replay, the live relay and the staff console around the policy core."""
