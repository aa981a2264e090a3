"""Peers measured beside StudioX by `bench.production`; they run in bench/.venv-peers."""
