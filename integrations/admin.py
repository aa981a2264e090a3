"""Django's admin autodiscovery imports this module: each integration registers its own admin."""

import integrations.mcp_client.admin  # noqa: F401
