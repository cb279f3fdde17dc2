"""Protected MCP weather server (OAuth 2.1 resource server): `uv run python weather.py --help`."""

import os
import sys

from secure_mcp.common.settings import load_env_file
from secure_mcp.weather.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], load_env_file(__file__, os.environ)))
