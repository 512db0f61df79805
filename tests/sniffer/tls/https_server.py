"""A small HTTPS server for the TLS tests: uvicorn (asyncio + Python's ``ssl``, so OpenSSL's
``SSL_read_ex``/``SSL_write_ex`` on memory BIOs). ``/status/N`` answers N; every other path
answers 200 with a short JSON body naming the path.

    python https_server.py PORT CERT KEY
"""

from __future__ import annotations

import json
import sys
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while True:  # drain the request body
        msg = await receive()
        if not msg.get("more_body"):
            break
    path: str = scope["path"]
    status = int(path.rsplit("/", 1)[1]) if path.startswith("/status/") else 200
    body = json.dumps({"path": path}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    import uvicorn

    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    uvicorn.run(
        app, host="0.0.0.0", port=port, ssl_certfile=cert, ssl_keyfile=key,
        log_level="warning", access_log=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
