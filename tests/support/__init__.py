"""Helpers shared by the tests, one home each.

- `processes`: real worker, scheduler and web server processes against the test database
  (`Processes`, `WebServer`, `process_env`, `eventually`, `stop`).
- `live`: pytest fixtures over those processes (`live_web`, `live_web_factory`, `live_worker`).
- `network`: loopback ports (`free_port`, `closed_port_url`, `listening`).
- `engine`: drive missions in-process as a worker would (`started`, `drain`, `make_due`).
- `api`: token clients and missions in a chosen state for the REST API and MCP tests.
- `pages`: signed-in Django test clients for the HTML pages and the admin.
- `decisions`: pending decisions on bare mission rows, no worker needed.
- `rail`: WebSocket readers of the real ASGI stack and observations as the engine writes them.
- `llm`: a real loopback HTTP server that answers like an LLM API, from scripted replies.

pytest collects fixtures from conftest.py files and from the test module itself:
tests/conftest.py offers `live_web`, `live_web_factory`, `live_worker`, `llm_server` and
`fast_polls` to every test; a module imports the autouse ones it wants (`fresh_throttles`,
`readers_let_go_of_the_database`).
"""
