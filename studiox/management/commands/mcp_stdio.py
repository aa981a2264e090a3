"""Serve StudioX's MCP tools over stdio, for MCP clients that launch a command."""

from django.core.management.base import BaseCommand, CommandError

from studiox.mcp.stdio import TOKEN_ENV, StdioRefused, serve_stdio


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
        try:
            serve_stdio(token=token)
        except StdioRefused as exc:
            raise CommandError(str(exc)) from exc
