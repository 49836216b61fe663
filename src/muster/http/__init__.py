"""The Consul-compatible HTTP API: an ASGI app served by uvicorn inside the agent's loop."""
