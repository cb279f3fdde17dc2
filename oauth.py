"""OAuth 2.1 authorization server for the MCP weather server: `uv run python oauth.py --help`.

`uv run python oauth.py keys list|rotate` shows or rotates the JWT signing keys.
"""

import os
import sys

from secure_mcp.common.settings import load_env_file
from secure_mcp.oauth.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], load_env_file(__file__, os.environ)))
