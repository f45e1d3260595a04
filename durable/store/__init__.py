"""Persistence: the only place that talks SQL."""
