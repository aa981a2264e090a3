"""Missions that ship with StudioX. Each module registers itself with @mission on import."""

from missions.library import customer_refund  # noqa: F401
