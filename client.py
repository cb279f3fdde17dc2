"""Claude-powered CLI for an OAuth-protected MCP server: `uv run python client.py --help`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dotenv import load_dotenv

from secure_mcp.client.cli import main

# Only the `.env` next to this script: python-dotenv would otherwise search every parent folder.
ENV_FILE = Path(__file__).with_name(".env")

if __name__ == "__main__":
    load_dotenv(ENV_FILE)  # `.env` fills in what the environment does not set
    sys.exit(main(sys.argv[1:], os.environ))
