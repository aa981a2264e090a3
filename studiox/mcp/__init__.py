"""StudioX as an MCP server: the tools (`server`), served over streamable HTTP at /mcp
(`http`, mounted beside Django by `studiox.routing`) or over stdio (`stdio`, run by the
`mcp_stdio` management command)."""
