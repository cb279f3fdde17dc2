"""Claude-powered CLI for an OAuth-protected MCP server: `uv run python client.py --help`."""

from __future__ import annotations

import os
import sys

from dotenv import load_dotenv

from secure_mcp.client.cli import main

if __name__ == "__main__":
    load_dotenv()  # `.env` fills in what the environment does not set
    sys.exit(main(sys.argv[1:], os.environ))
