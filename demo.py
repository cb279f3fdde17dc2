"""One command for the whole deployment: `uv run python demo.py [--nws-replay] [client flags]`."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dotenv import load_dotenv

from secure_mcp.client import cli, demo

# Only the `.env` next to this script: python-dotenv would otherwise search every parent folder.
ENV_FILE = Path(__file__).with_name(".env")


def run_client(argv: Sequence[str]) -> int:
    """client.py in this process, so Ctrl-C behaves exactly as in client.py."""
    return cli.main(argv, os.environ)


if __name__ == "__main__":
    load_dotenv(ENV_FILE)  # `.env` fills in what the environment does not set (children inherit it)
    sys.exit(demo.main(sys.argv[1:], os.environ, run_client))
