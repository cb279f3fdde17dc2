"""Chat with Claude over the MCP tools: conversions, the agent loop, the prompt and its commands."""
