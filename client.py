"""Claude-powered CLI for an OAuth-protected MCP server: `uv run python client.py --help`."""

import os
import sys

from secure_mcp.client.cli import main
from secure_mcp.common.settings import load_env_file

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], load_env_file(__file__, os.environ)))
