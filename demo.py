"""One command for the whole deployment: `uv run python demo.py [--nws-replay] [client flags]`."""

import os
import sys

from secure_mcp.common.settings import load_env_file
from secure_mcp.demo.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], load_env_file(__file__, os.environ)))
