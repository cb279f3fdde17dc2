"""Secure MCP: an OAuth 2.1 authorization server, a protected weather MCP server, and a client."""
