"""Run a hub for tests: ``python -m sniffer.testing.hub_main SETTINGS.json PORT CERT KEY``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import uvicorn

from hub.core.config import Settings
from hub.main import create_app


def main() -> None:
    cfg, port, cert, key = sys.argv[1:5]
    settings = Settings(**json.loads(Path(cfg).read_text()))
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=int(port),
        ssl_certfile=cert,
        ssl_keyfile=key,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
