"""The demo shop's programs: small real servers and clients, one per "pod".

``python -m kubeweir.demo.services ROLE [--rate R]`` runs one of them inside a pod; names
(``orders``, ``payments.payments``, ``redis``...) resolve through the demo's DNS server
with the pod's search path, as in a cluster.

- ``catalog`` (HTTP/1.1): product list and details; details ask ``inventory`` over gRPC.
- ``orders`` (HTTP/1.1): places orders: Redis for ids and order records, ``inventory``
  (gRPC) to reserve stock, ``payments`` (HTTP/1.1, bearer token, card number) to charge,
  MQTT to announce the order.
- ``payments`` (HTTP/1.1): charges cards, records them in PostgreSQL.
- ``inventory`` (gRPC, ``shop.inventory.v1.Inventory``; messages are
  ``google.protobuf.Struct``, so no generated code is needed).
- ``frontend``: the visitors: a steady, bounded mix of calls to ``catalog`` and ``orders``
  with some 4xx/5xx and slow calls.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HTTP_PORT = 8080
GRPC_PORT = 50051
INVENTORY_SERVICE = "shop.inventory.v1.Inventory"

# Luhn-valid test card numbers (the card networks' documented test numbers).
CARDS = ("4111111111111111", "5555555555554444", "4012888888881881")
DECLINED_CARD = "4000000000000002"
PAYMENTS_TOKEN = "sk_test_demo_payments_7f3c9a"
"""The bearer token orders presents to payments (a demo secret for redaction to catch)."""

PRODUCTS: dict[int, dict[str, Any]] = {
    i: {"id": i, "name": name, "price": price}
    for i, (name, price) in enumerate(
        [
            ("kettle", 39.0),
            ("teapot", 24.5),
            ("mug", 9.9),
            ("grinder", 79.0),
            ("scale", 29.0),
            ("filter papers", 4.5),
            ("dripper", 19.0),
            ("beans 1kg", 32.0),
        ],
        start=1,
    )
}


# --- HTTP server plumbing ------------------------------------------------------------
Reply = tuple[int, Any]
Route = Callable[[str, str, dict[str, str], bytes], Reply | None]


def serve_http(route: Route, port: int = HTTP_PORT) -> None:
    """An HTTP/1.1 keep-alive server answering JSON from ``route(method, path, headers,
    body)``; None from the route is a 404."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _any(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                reply = route(self.command, self.path, headers, body)
            except Exception as exc:  # noqa: BLE001 - a demo server answers 500 and goes on
                reply = (500, {"error": f"{type(exc).__name__}: {exc}"})
            status, payload = reply if reply is not None else (404, {"error": "not found"})
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _any

        def log_message(self, format: str, *args: object) -> None:
            return None

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


class HttpClient:
    """A keep-alive HTTP/1.1 client for one service; reconnects (and so resolves the name
    again) every ``recycle`` calls, as connection pools do."""

    def __init__(self, host: str, port: int = HTTP_PORT, recycle: int = 15) -> None:
        self.host, self.port, self.recycle = host, port, recycle
        self._conn: http.client.HTTPConnection | None = None
        self._uses = 0
        self._lock = threading.Lock()

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Accept": "application/json", "User-Agent": "kubeweir-demo/1"}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        with self._lock:
            for attempt in range(2):
                if self._conn is None or self._uses >= self.recycle:
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                    self._uses = 0
                self._uses += 1
                try:
                    self._conn.request(method, path, body=data, headers=hdrs)
                    resp = self._conn.getresponse()
                    raw = resp.read()
                except (OSError, http.client.HTTPException):
                    self._conn.close()
                    self._conn = None
                    if attempt:
                        raise
                    continue
                try:
                    return resp.status, json.loads(raw or b"null")
                except ValueError:
                    return resp.status, raw.decode("utf-8", "replace")
        raise RuntimeError("unreachable")


# --- gRPC (Struct messages: real protobuf without generated code) ----------------------
def _struct(d: dict[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    s = struct_pb2.Struct()
    s.update(d)
    return s


def _grpc_codec() -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    from google.protobuf import struct_pb2

    return (lambda m: m.SerializeToString()), struct_pb2.Struct.FromString


def run_inventory(port: int = GRPC_PORT) -> None:
    from concurrent import futures

    import grpc

    stock = {pid: random.randint(3, 20) for pid in PRODUCTS}
    lock = threading.Lock()

    def get_stock(req: Any, ctx: Any) -> Any:
        pid = int(req["product"])
        if pid not in stock:
            ctx.abort(grpc.StatusCode.NOT_FOUND, f"no product {pid}")
        return _struct({"product": pid, "available": stock[pid]})

    def reserve(req: Any, ctx: Any) -> Any:
        pid, qty = int(req["product"]), int(req["quantity"])
        with lock:
            if pid not in stock:
                ctx.abort(grpc.StatusCode.NOT_FOUND, f"no product {pid}")
            if stock[pid] < qty:
                stock[pid] = random.randint(5, 20)  # restocked for the next visitor
                ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "out of stock")
            stock[pid] -= qty
            left = stock[pid]
        return _struct({"product": pid, "reserved": qty, "left": left})

    ser, de = _grpc_codec()
    handlers = {
        "GetStock": grpc.unary_unary_rpc_method_handler(
            get_stock, request_deserializer=de, response_serializer=ser
        ),
        "Reserve": grpc.unary_unary_rpc_method_handler(
            reserve, request_deserializer=de, response_serializer=ser
        ),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(INVENTORY_SERVICE, handlers),)
    )
    server.add_insecure_port(f"0.0.0.0:{port}")
    server.start()
    server.wait_for_termination()


class Inventory:
    """The gRPC client of the inventory service."""

    def __init__(self, target: str = f"inventory:{GRPC_PORT}") -> None:
        import grpc

        self._grpc = grpc
        self.channel = grpc.insecure_channel(target)
        ser, de = _grpc_codec()
        self._get = self.channel.unary_unary(
            f"/{INVENTORY_SERVICE}/GetStock", request_serializer=ser, response_deserializer=de
        )
        self._reserve = self.channel.unary_unary(
            f"/{INVENTORY_SERVICE}/Reserve", request_serializer=ser, response_deserializer=de
        )

    def stock(self, product: int) -> tuple[str, dict[str, Any]]:
        return self._call(self._get, {"product": product})

    def reserve(self, product: int, quantity: int) -> tuple[str, dict[str, Any]]:
        return self._call(self._reserve, {"product": product, "quantity": quantity})

    def _call(self, stub: Any, req: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        try:
            reply = stub(_struct(req), timeout=3)
        except self._grpc.RpcError as exc:
            return exc.code().name, {"message": exc.details()}
        return "OK", dict(reply)


# --- the services ----------------------------------------------------------------------
def run_catalog() -> None:
    inventory = Inventory()
    detail = re.compile(r"^/api/products/(\d+)$")

    def route(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply | None:
        path = path.split("?", 1)[0]
        if random.random() < 0.08:
            time.sleep(random.uniform(0.3, 0.9))  # a slow call now and then
        if method == "GET" and path == "/api/products":
            return 200, {"products": list(PRODUCTS.values())}
        m = detail.match(path)
        if method == "GET" and m:
            pid = int(m.group(1))
            if random.random() < 0.04:
                return 500, {"error": "catalog cache unavailable"}
            if pid not in PRODUCTS:
                return 404, {"error": f"no product {pid}"}
            code, stock = inventory.stock(pid)
            return 200, {**PRODUCTS[pid], "stock": stock.get("available"), "inventory": code}
        return None

    serve_http(route)


def run_payments() -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = psycopg.connect(
                "host=postgres.payments.svc.cluster.local port=5432 user=postgres "
                "dbname=postgres application_name=payments connect_timeout=5",
                autocommit=True,
            )
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # the database may still be starting
    conn.execute(
        "CREATE TABLE IF NOT EXISTS charges (id serial PRIMARY KEY, order_id int, "
        "amount numeric(10,2), last4 text, status text, at timestamptz DEFAULT now())"
    )
    lock = threading.Lock()

    def route(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply | None:
        if method == "GET" and path == "/healthz":
            return 200, {"ok": True}
        if method != "POST" or path != "/api/charges":
            return None
        if headers.get("authorization") != f"Bearer {PAYMENTS_TOKEN}":
            return 401, {"error": "bad credentials"}
        req = json.loads(body or b"{}")
        card = str(req.get("card", {}).get("number", ""))
        if random.random() < 0.05:
            return 503, {"error": "card network timeout"}
        if random.random() < 0.1:
            time.sleep(random.uniform(0.4, 1.0))
        status = "declined" if card == DECLINED_CARD else "captured"
        with lock:
            row = conn.execute(
                "INSERT INTO charges (order_id, amount, last4, status) VALUES (%s, %s, %s, %s) "
                "RETURNING id",
                (req.get("order"), req.get("amount"), card[-4:], status),
            ).fetchone()
            if random.random() < 0.2:
                conn.execute("SELECT status, count(*) FROM charges GROUP BY status").fetchall()
        charge = row[0] if row else None
        if status == "declined":
            return 402, {"charge": charge, "status": status, "reason": "card declined"}
        return 201, {"charge": charge, "status": status}

    serve_http(route)


def run_orders() -> None:
    import paho.mqtt.client as mqtt
    import redis
    from paho.mqtt.enums import CallbackAPIVersion

    store = redis.Redis(host="redis", port=6379, socket_timeout=3)
    inventory = Inventory()
    payments = HttpClient("payments.payments")
    events = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"orders-{os.getpid()}")
    events.connect_async("events", 1883, keepalive=30)
    events.loop_start()
    detail = re.compile(r"^/api/orders/(\d+)$")

    def place(headers: dict[str, str], body: bytes) -> Reply:
        if not headers.get("authorization", "").startswith("Bearer "):
            return 401, {"error": "login required"}
        req = json.loads(body or b"{}")
        pid, qty = int(req.get("product", 0)), int(req.get("quantity", 1))
        if pid not in PRODUCTS:
            return 422, {"error": f"no product {pid}"}
        code, res = inventory.reserve(pid, qty)
        if code != "OK":
            return 409, {"error": res.get("message", code)}
        oid = int(store.incr("orders:seq"))
        amount = round(float(PRODUCTS[pid]["price"]) * qty, 2)
        status, charge = payments.call(
            "POST",
            "/api/charges",
            {"order": oid, "amount": amount, "card": req.get("card", {})},
            {"Authorization": f"Bearer {PAYMENTS_TOKEN}"},
        )
        if status >= 500:
            return 503, {"error": "payments unavailable", "order": oid}
        order: dict[str, Any] = {"id": oid, "product": pid, "quantity": qty, "amount": amount}
        order["status"] = "paid" if status == 201 else "payment_failed"
        store.set(f"order:{oid}", json.dumps(order), ex=600)
        store.lpush("orders:recent", oid)
        store.ltrim("orders:recent", 0, 49)
        events.publish("shop/orders/created", json.dumps(order), qos=1)
        return (201 if status == 201 else 402), order

    def route(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply | None:
        path = path.split("?", 1)[0]
        if method == "POST" and path == "/api/orders":
            return place(headers, body)
        m = detail.match(path)
        if method == "GET" and m:
            raw = store.get(f"order:{m.group(1)}")
            return (200, json.loads(raw)) if raw else (404, {"error": "no such order"})
        if method == "GET" and path == "/api/orders":
            ids = store.lrange("orders:recent", 0, 9)
            return 200, {"recent": [int(i) for i in ids]}
        return None

    serve_http(route)


def run_frontend(rate: float) -> None:
    """Visitors: about ``rate`` calls per second, forever."""
    catalog = HttpClient("catalog")
    orders = HttpClient("orders")
    users = ["ada", "grace", "linus", "barbara"]
    placed: list[int] = []

    def visit() -> None:
        user = random.choice(users)
        auth = {"Authorization": f"Bearer eyJhbGciOiJIUzI1NiJ9.{user}-session.c2lnbmF0dXJl"}
        r = random.random()
        if r < 0.25:
            catalog.call("GET", "/api/products")
        elif r < 0.5:
            pid = random.choice([*PRODUCTS, 42])  # 42: no such product (404)
            catalog.call("GET", f"/api/products/{pid}")
        elif r < 0.8:
            card = DECLINED_CARD if random.random() < 0.1 else random.choice(CARDS)
            body = {
                "product": random.choice(list(PRODUCTS)),
                "quantity": random.randint(1, 3),
                "email": f"{user}@example.com",
                "card": {"number": card, "exp": "12/30", "cvc": "123"},
            }
            headers = auth if random.random() < 0.95 else {}  # some forget to log in: 401
            status, reply = orders.call("POST", "/api/orders", body, headers)
            if isinstance(reply, dict) and isinstance(reply.get("id"), int):
                placed.append(reply["id"])
                del placed[:-20]
        elif r < 0.95 and placed:
            orders.call("GET", f"/api/orders/{random.choice(placed)}", headers=auth)
        else:
            orders.call("GET", f"/api/orders/{random.randint(90000, 99999)}", headers=auth)

    period = 1.0 / max(rate, 0.1)
    while True:
        started = time.monotonic()
        try:
            visit()
        except Exception:  # noqa: BLE001, S110 - a failed visit is traffic too; go on
            time.sleep(0.5)
        time.sleep(max(0.0, period * random.uniform(0.5, 1.5) - (time.monotonic() - started)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m kubeweir.demo.services")
    ap.add_argument("role", choices=["catalog", "orders", "payments", "inventory", "frontend"])
    ap.add_argument("--rate", type=float, default=3.0, help="frontend: calls per second")
    ap.add_argument("--run", default="", help="tag of the demo run (for ps)")
    args = ap.parse_args(argv)
    if args.role == "frontend":
        run_frontend(min(args.rate, 20.0))
    elif args.role == "inventory":
        run_inventory()
    else:
        {"catalog": run_catalog, "orders": run_orders, "payments": run_payments}[args.role]()


if __name__ == "__main__":
    main()
