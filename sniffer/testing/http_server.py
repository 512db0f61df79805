"""A small HTTP/1.1 keep-alive server for test pods: every path answers 200 with a short
JSON body naming the path (``python -m sniffer.testing.http_server --port 8080``)."""

from __future__ import annotations

import argparse
import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"path": self.path, "ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--bind", default="::", help="'::' serves IPv4 and IPv6")
    args = ap.parse_args()
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 256
    server_cls = ThreadingHTTPServer
    if ":" in args.bind:

        class _Dual(ThreadingHTTPServer):
            address_family = socket.AF_INET6

        server_cls = _Dual
    server_cls((args.bind, args.port), _Handler).serve_forever()


if __name__ == "__main__":
    main()
