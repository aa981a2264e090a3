"""Serve StudioX's MCP tools over stdio, for MCP clients that launch a command."""

import os

import anyio
from django.core.management.base import BaseCommand, CommandError

from studiox.mcp_server import build_server, token_user

TOKEN_ENV = "STUDIOX_MCP_TOKEN"


class Command(BaseCommand):
    help = (
        "Run the StudioX MCP server on stdin/stdout as the owner of an API token "
        f"(--token or {TOKEN_ENV}; see create_api_token)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--token",
            default="",
            help=f"API token; defaults to ${TOKEN_ENV}. Prefer the env var:"
            " command lines are visible to other local users.",
        )

    def handle(self, *args, token: str, **options):
        key = token or os.environ.get(TOKEN_ENV, "")
        if not key:
            raise CommandError(f"Pass --token or set {TOKEN_ENV}.")
        user = token_user(key)
        if user is None:
            raise CommandError("The API token is not valid, or its user is inactive.")
        # stdout carries the protocol from here on: nothing else may write to it.
        anyio.run(build_server(stdio_user_id=user.pk).run_stdio_async)
