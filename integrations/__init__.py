"""StudioX's calls out to other systems, one package each: `llm` (the providers behind
`ctx.llm`) and `mcp_client` (the MCP servers behind `ctx.call_tool`, with their admin).

The MCP server StudioX itself offers is not here: it is a way in, beside the REST API, in
`studiox.mcp`.
"""
