"""The protected weather MCP server: NWS tools behind RFC 7662 introspection (weather.py)."""
