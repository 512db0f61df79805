"""``kubeweir tap``: the hub and a sniffer on this host as one process tree (standalone mode).

The hub runs in-process under uvicorn on 127.0.0.1 only, over HTTPS with a self-signed
certificate made on the first run and reused after; DuckDB lives in ``--data-dir``. The
sniffer agent runs in threads of the same process with a shared ingest token made for
this run. Without a cluster, targeting is the demo's pod registry (``--demo``) and/or
address ranges (``--target-cidr``); endpoints are named from the registry, else by
reverse DNS. The viewer logs in with a one-time link, as Jupyter prints one.
"""

from __future__ import annotations

import contextlib
import datetime
import hmac
import ipaddress
import json
import logging
import os
import queue
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import click

from sniffer.targeting import PodInfo, Rules, Targeting

__all__ = ["OneTimeLogin", "TapTargeting", "ensure_certificate", "missing_capabilities", "tap"]

log = logging.getLogger("kubeweir.tap")

DEFAULT_DATA_DIR = Path("~/.local/share/kubeweir").expanduser()
MAX_CIDR_HOSTS = 256
"""Addresses that ``--target-cidr`` may name in all (each is a term of the kernel filter)."""

# --- capabilities ------------------------------------------------------------------------
_CAPS = {
    "CAP_NET_RAW": (13, "to capture packets (an AF_PACKET socket)"),
    "CAP_NET_ADMIN": (12, "to create the demo's bridge, veth pairs, addresses and routes"),
    "CAP_SYS_ADMIN": (21, "to create network namespaces (`ip netns add` mounts them)"),
    "CAP_SETUID": (7, "to run the demo's PostgreSQL as the postgres user"),
    "CAP_DAC_OVERRIDE": (1, "to write /run/kubeweir-testnode and /etc/netns (demo state)"),
}


def missing_capabilities(demo: bool, status: str | None = None) -> list[tuple[str, str]]:
    """The capabilities this process lacks for ``kubeweir tap`` (``--demo`` needs more),
    each with what it is needed for; read from ``CapEff`` in ``/proc/self/status``."""
    if status is None:
        status = Path("/proc/self/status").read_text()
    eff = 0
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            eff = int(line.split()[1], 16)
    names = ["CAP_NET_RAW"]
    if demo:
        names += ["CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SETUID", "CAP_DAC_OVERRIDE"]
    return [(n, _CAPS[n][1]) for n in names if not eff & (1 << _CAPS[n][0])]


# --- TLS -------------------------------------------------------------------------------
def ensure_certificate(directory: Path) -> tuple[Path, Path, str]:
    """The hub's self-signed certificate for 127.0.0.1/localhost: made on the first run,
    reused while it has more than a day to live. Returns (cert, key, SHA-256 fingerprint)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = directory / "hub.pem", directory / "hub.key"
    now = datetime.datetime.now(datetime.UTC)
    if cert_path.is_file() and key_path.is_file():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if cert.not_valid_after_utc > now + datetime.timedelta(days=1):
                return cert_path, key_path, cert.fingerprint(hashes.SHA256()).hex(":")
        except ValueError:
            log.warning("the stored certificate is unreadable: making a new one")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeweir tap (127.0.0.1)")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, cert.fingerprint(hashes.SHA256()).hex(":")


# --- the one-time login link -------------------------------------------------------------
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Any]

LINK_PATH = "/tap/login"
HUB_TOKEN_LOGIN = "/auth/token-login"
"""The hub's route that trades a viewer token for a session cookie: the only place the
standalone mode touches the hub's session machinery."""

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>kubeweir tap</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto}}</style></head>
<body><h1>{title}</h1><p>{text}</p></body></html>"""


class OneTimeLogin:
    """ASGI wrapper of the hub: ``/tap/login?token=...`` works once and grants a session
    for the tap's viewer (through the hub's token-login route, with a viewer token that
    never leaves this process); a second use gets a clear refusal page. The hub's own
    token-login route is closed to the outside."""

    def __init__(self, app: ASGIApp, viewer_token: str) -> None:
        self.app = app
        self._viewer_token = viewer_token
        self.link_token = secrets.token_urlsafe(32)
        self._used = False
        self._lock = threading.Lock()

    def link(self, base_url: str) -> str:
        return f"{base_url}{LINK_PATH}?{urlencode({'token': self.link_token})}"

    @property
    def used(self) -> bool:
        return self._used

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http" and scope["path"] == HUB_TOKEN_LOGIN:
            await _page(
                send,
                403,
                "Log in with the link",
                "kubeweir tap accepts only the one-time login link it printed.",
            )
            return
        if scope["type"] == "http" and scope["path"] == LINK_PATH:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (query.get("token") or [""])[0]
            if not hmac.compare_digest(given.encode(), self.link_token.encode()):
                await _page(
                    send,
                    403,
                    "Not a login link of this run",
                    "This link was not printed by the kubeweir tap that is running now. "
                    "Use the link it printed when it started.",
                )
                return
            with self._lock:
                first, self._used = not self._used, True
            if not first:
                await _page(
                    send,
                    410,
                    "This login link was already used",
                    "The link printed by kubeweir tap works once, for one browser. "
                    "Use the browser that opened it, or restart kubeweir tap for a new link.",
                )
                return
            qs = urlencode({"token": self._viewer_token, "next": "/"}).encode()
            scope = dict(scope, path=HUB_TOKEN_LOGIN, raw_path=HUB_TOKEN_LOGIN.encode())
            scope["query_string"] = qs
        await self.app(scope, receive, send)


async def _page(send: Callable[[Any], Awaitable[None]], status: int, title: str, text: str) -> None:
    body = _PAGE.format(title=title, text=text).encode()
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- targeting without a cluster ---------------------------------------------------------
def cidr_hosts(cidrs: Iterable[str]) -> list[str]:
    """The addresses that ``--target-cidr`` values name (at most ``MAX_CIDR_HOSTS``)."""
    out: list[str] = []
    for text in cidrs:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise click.BadParameter(f"{text!r}: {exc}", param_hint="--target-cidr") from exc
        if net.num_addresses > MAX_CIDR_HOSTS:
            raise click.BadParameter(
                f"{text} holds {net.num_addresses} addresses; at most {MAX_CIDR_HOSTS} "
                "in all (a /24): name smaller ranges",
                param_hint="--target-cidr",
            )
        hosts = [str(h) for h in (net.hosts() if net.num_addresses > 2 else net)]
        out.extend(h for h in hosts if h not in out)
    if len(out) > MAX_CIDR_HOSTS:
        raise click.BadParameter(
            f"{len(out)} addresses in all; at most {MAX_CIDR_HOSTS}", param_hint="--target-cidr"
        )
    return out


class TapTargeting(Targeting):
    """Targeting from a pod registry and address ranges; addresses that no pod names get
    the name a reverse DNS lookup gives (looked up off the capture thread, cached)."""

    def __init__(
        self,
        node: str,
        pods: Iterable[PodInfo] = (),
        hosts: Iterable[str] = (),
        reverse_lookups: bool = True,
        cache_max: int = 4096,
        services: dict[str, str] | None = None,
    ) -> None:
        super().__init__(node, Rules())
        self._services = dict(services or {})
        """ip -> the Service that selects the pod there (the demo's headless services)."""
        self._merged: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        extra = [
            PodInfo(uid=f"host/{ip}", name="", namespace="", ips=(ip,), node=node) for ip in hosts
        ]
        self.set_pods([*pods, *extra])
        self._names: dict[str, str] = {}
        self._pending: queue.Queue[str] = queue.Queue(maxsize=256)
        self._asked: set[str] = set()
        self._cache_max = cache_max
        self._resolver: threading.Thread | None = None
        if reverse_lookups:
            self._resolver = threading.Thread(target=self._resolve, name="rdns", daemon=True)
            self._resolver.start()

    def endpoint_info(self, ip: str) -> dict[str, Any]:
        info = super().endpoint_info(ip)
        if info.get("pod"):
            service = self._services.get(ip)
            if not service:
                return info
            cached = self._merged.get(ip)
            if cached is None or cached[0] is not info:  # the registry changed
                cached = (info, {**info, "service": service})
                self._merged[ip] = cached
            return cached[1]
        if self._resolver is None:
            return info
        name = self._names.get(ip)
        if name:
            return {**info, "workload": name}
        if ip not in self._asked and len(self._asked) < self._cache_max:
            self._asked.add(ip)
            with contextlib.suppress(queue.Full):
                self._pending.put_nowait(ip)
        return info

    def _resolve(self) -> None:
        while True:
            ip = self._pending.get()
            try:
                name = socket.gethostbyaddr(ip)[0]
            except (OSError, UnicodeError):
                continue
            self._names[ip] = name


# --- running -------------------------------------------------------------------------------
class _Stop(Exception):
    """A signal arrived while starting up: unwind and clean up."""


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_port(port: int | None) -> int:
    if port is not None:
        if not _port_free(port):
            raise click.ClickException(f"port {port} on 127.0.0.1 is in use; give another --port")
        return port
    for candidate in range(8443, 8463):
        if _port_free(candidate):
            return candidate
    raise click.ClickException("ports 8443-8462 on 127.0.0.1 are all in use; give --port")


class _Hub:
    """The hub app under uvicorn in a thread of this process."""

    def __init__(self, app: Any, port: int, cert: Path, key: Path, log_level: str) -> None:
        import uvicorn

        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
            log_level=log_level,
            access_log=False,
            proxy_headers=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="hub", daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise click.ClickException("the hub failed to start (its error is above)")
            if time.monotonic() > deadline:
                raise click.ClickException(f"the hub did not start within {timeout:.0f}s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def _hub_settings(data_dir: Path, ingest: str, viewer: str) -> Any:
    from pydantic import SecretStr

    from hub.core.config import Settings, ViewerTokenConfig

    who = os.environ.get("SUDO_USER") or os.environ.get("USER") or "local"
    return Settings(
        db=str(data_dir / "kubeweir.duckdb"),
        ingest_token=SecretStr(ingest),
        viewer_tokens={
            viewer: ViewerTokenConfig(
                name=f"{who} (kubeweir tap)",
                namespaces=["*"],
                permissions=["view-bodies", "download-pcap", "admin"],
            )
        },
        cookie_secure=True,
        enrich=False,
    )


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def run(
    *,
    demo: bool,
    interface: str,
    target_cidr: tuple[str, ...],
    data_dir: Path,
    port: int | None,
    capture: str,
    rate: float,
    reverse_lookups: bool,
    log_level: str,
) -> None:
    """Start everything, wait for SIGINT/SIGTERM, tear everything down."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not demo and not target_cidr:
        raise click.UsageError("nothing to capture: give --demo and/or --target-cidr CIDR")
    missing = missing_capabilities(demo)
    if missing:
        lines = "\n".join(f"  {name}: {why}" for name, why in missing)
        raise click.ClickException(
            f"kubeweir tap{' --demo' if demo else ''} lacks these capabilities:\n{lines}\n"
            "Run it as root (sudo), or in a container with these capabilities added."
        )
    hosts = cidr_hosts(target_cidr)
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert, key, fingerprint = ensure_certificate(data_dir / "tls")
    port = _pick_port(port)
    node = socket.gethostname()
    state_file = data_dir / "tap.json"

    stop = threading.Event()
    phase = {"starting": True}

    def on_signal(signum: int, _frame: Any) -> None:
        first = not stop.is_set()
        stop.set()
        if phase["starting"] and first:
            raise _Stop(signal.Signals(signum).name)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    shop: Any = None
    hub: _Hub | None = None
    agent: Any = None
    try:
        pods: list[PodInfo] = []
        if demo:
            from kubeweir.demo import Demo
            from sniffer.testing.node import cleanup_leftovers

            removed = cleanup_leftovers()
            if removed:
                click.echo(f"removed leftovers of an earlier run: {' '.join(removed)}", err=True)
            shop = Demo(node, data_dir / "demo-logs", rate=rate)
            shop.up()
            pods = shop.registry()
        targeting = TapTargeting(
            node,
            pods,
            hosts,
            reverse_lookups=reverse_lookups,
            services=shop.services() if shop is not None else None,
        )

        from hub.main import create_app

        ingest, viewer = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        login = OneTimeLogin(create_app(_hub_settings(data_dir, ingest, viewer)), viewer)
        hub = _Hub(login, port, cert, key, "warning" if log_level == "info" else log_level)
        hub.start()
        url = f"https://127.0.0.1:{port}"

        from pydantic import SecretStr

        from sniffer.agent import Agent
        from sniffer.settings import SnifferSettings

        settings = SnifferSettings(
            hub=url,
            ca_file=cert,
            token=SecretStr(ingest),
            node=node,
            capture=capture,  # type: ignore[arg-type]
            interface=interface,
            ring_mb=16,
            spool_dir=data_dir / "spool",
            listen="127.0.0.1:0",
            batch_age=0.5,
            heartbeat_interval=5.0,
        )
        agent = Agent(settings, targeting).start()
        click.echo(
            f"sniffer: {agent.source.name} on {interface} ({agent.source_reason}), "
            f"{len(targeting.targets)} addresses",
            err=True,
        )
        state: dict[str, Any] = {"pid": os.getpid(), "url": url, "node": node}
        if shop is not None:
            shop.start()
            state["demo"] = {
                "tag": shop.tag,
                "bridge": shop.node.bridge,
                "netns": [p.netns for p in shop.pods.values()],
                "links": [shop.node.bridge, *(p.host_if for p in shop.pods.values())],
                "pids": shop.pids(),
                "pods": [f"{p.namespace}/{p.name} {p.ip}" for p in shop.pods.values()],
            }
            click.echo(
                f"demo: {len(shop.pods)} pods on bridge {shop.node.bridge} "
                f"({shop.node.network}), logs in {data_dir / 'demo-logs'}",
                err=True,
            )
        _write_state(state_file, state)
        phase["starting"] = False
        if stop.is_set():
            raise _Stop("signal")
        click.echo(
            f"\nkubeweir tap: hub at {url} (DuckDB in {data_dir})\n"
            f"certificate: self-signed, {cert} (SHA-256 {fingerprint[:23]}...)\n"
            "Open this link to log in; it works once, for one browser:\n\n"
            f"    {login.link(url)}\n\n"
            "Ctrl-C stops everything and removes what it made.",
        )
        sys_flush()
        stop.wait()
    except _Stop:
        pass
    finally:
        phase["starting"] = False
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, lambda *_: click.echo("still cleaning up...", err=True))
        click.echo("kubeweir tap: stopping", err=True)
        _teardown(shop, agent, hub)
        state_file.unlink(missing_ok=True)
        for s, h in old.items():
            signal.signal(s, h)


def sys_flush() -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()


def _teardown(shop: Any, agent: Any, hub: _Hub | None) -> None:
    """Demo first (no new traffic), then the sniffer (flushes to the hub), then the hub."""
    steps: list[tuple[str, Callable[[], None]]] = []
    if shop is not None:
        steps.append(("demo", shop.close))
    if agent is not None:
        steps.append(("sniffer", lambda: agent.stop(drain_timeout=3.0)))
    if hub is not None:
        steps.append(("hub", hub.stop))
    for what, step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001 - every step runs whatever the previous did
            log.exception("stopping the %s failed", what)


@click.command("tap")
@click.option("--demo", is_flag=True, help="Start the demo shop (pods in network namespaces).")
@click.option(
    "--interface",
    default="any",
    show_default=True,
    help="Device to capture on (any: every device; the demo's traffic enters on its veths).",
)
@click.option(
    "--target-cidr",
    multiple=True,
    help=f"Capture these addresses (repeatable; at most {MAX_CIDR_HOSTS} in all).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="DuckDB, TLS certificate, spool and demo logs.",
)
@click.option("--port", type=click.IntRange(1, 65535), help="HTTPS port (default: 8443 or next).")
@click.option(
    "--capture", type=click.Choice(["auto", "afpacket", "ebpf"]), default="auto", show_default=True
)
@click.option("--rate", default=3.0, show_default=True, help="Demo visitors' calls per second.")
@click.option("--no-reverse-lookup", is_flag=True, help="Do not name addresses by reverse DNS.")
@click.option("--log-level", default="warning", show_default=True)
def tap(
    demo: bool,
    interface: str,
    target_cidr: tuple[str, ...],
    data_dir: Path,
    port: int | None,
    capture: str,
    rate: float,
    no_reverse_lookup: bool,
    log_level: str,
) -> None:
    """Standalone: the hub and a sniffer on this host, dashboard on https://127.0.0.1.

    Prints a one-time login link. With --demo, a small shop of "pods" (network
    namespaces on a bridge) calls itself over HTTP, gRPC, DNS, Redis, PostgreSQL and
    MQTT so there is traffic to look at. Ctrl-C (or SIGTERM) removes everything it made.
    """
    run(
        demo=demo,
        interface=interface,
        target_cidr=target_cidr,
        data_dir=data_dir,
        port=port,
        capture=capture,
        rate=min(max(rate, 0.1), 20.0),
        reverse_lookups=not no_reverse_lookup,
        log_level=log_level,
    )
