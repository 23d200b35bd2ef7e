"""`splatter-node` / `python -m runner`: configure from the environment and run the node."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

from .config import ConfigError, load_config
from .logs import configure_logging
from .node import Node


def main() -> int:
    try:
        config = load_config(os.environ, Path.cwd())
    except ConfigError as exc:
        print(f"splatter-node: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_format, config.log_level)
    try:
        node = Node(config)
    except OSError as exc:
        logging.getLogger("runner").error("cannot start: %s", exc)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: node.request_stop())
    node.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
