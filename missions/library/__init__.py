"""Missions that ship with StudioX. Each module registers itself with @mission on import."""
