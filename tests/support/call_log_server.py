"""A small MCP server for rate-limit tests: its tool `record_call` appends the time it was
called and the caller's key to a log file, one line per call. Streamable HTTP on loopback:

    python -m tests.support.call_log_server --port N --log FILE
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence

from mcp.server.mcpserver import MCPServer


def build_server(log_path: str) -> MCPServer:
    server = MCPServer("call-log", title="Call log", version="1.0.0", log_level="WARNING")

    def record_call(item: int, idempotency_key: str) -> dict:
        """Write down this call (its time and key); answer with both."""
        at = time.time()
        line = json.dumps({"at": at, "key": idempotency_key, "item": item}) + "\n"
        # One write of a short line in append mode: lines of concurrent calls never mix.
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        return {"item": item, "at": at}

    server.add_tool(record_call)
    return server


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.call_log_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    build_server(args.log).run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
