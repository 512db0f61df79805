"""``kubeweir hub``, ``kubeweir query``, ``kubeweir export`` and ``kubeweir login``."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from hub.client import HubClient, HubError, config_dir, resolve_token, saved_hub

__all__ = ["export", "hub", "login", "query"]


@click.command(help="Serve the hub: ingest, storage, query API, live stream and dashboard.")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="YAML settings file (environment KUBEWEIR_HUB_* overrides it).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8443, show_default=True, type=click.IntRange(1, 65535))
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), help="PEM certificate.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="PEM private key.")
@click.option("--db", help="DuckDB file (or :memory:); overrides the config.")
@click.option("--log-level", default="info", show_default=True)
def hub(
    config: Path | None,
    host: str,
    port: int,
    tls_cert: str | None,
    tls_key: str | None,
    db: str | None,
    log_level: str,
) -> None:
    import uvicorn

    from hub.core.config import load_settings
    from hub.main import create_app

    if bool(tls_cert) != bool(tls_key):
        raise click.BadParameter("give both --tls-cert and --tls-key, or neither")
    overrides: dict[str, Any] = {"db": db} if db else {}
    try:
        settings = load_settings(config, **overrides)
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"bad configuration: {exc}") from exc
    if not tls_cert:
        settings = settings.model_copy(update={"cookie_secure": False})
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(
                f"kubeweir hub: serving plain HTTP on {host}; use --tls-cert/--tls-key "
                "outside loopback",
                err=True,
            )
    app = create_app(settings)
    uvicorn.run(
        app,
        host=host,
        port=port,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        log_level=log_level,
        proxy_headers=False,
    )


def _hub_url(url: str | None) -> str:
    url = url or os.environ.get("KUBEWEIR_HUB") or saved_hub()
    if not url:
        raise click.UsageError("no hub: give --hub URL (or set KUBEWEIR_HUB, or kubeweir login)")
    return url


def _client(url: str | None, token: str | None, ca_cert: str | None, insecure: bool) -> HubClient:
    tok = resolve_token(token)
    if not tok:
        raise click.UsageError("no token: give --token, set KUBEWEIR_TOKEN, or run kubeweir login")
    verify: bool | str = False if insecure else (ca_cert or True)
    return HubClient(_hub_url(url), tok, verify=verify)


_common = [
    click.option("--hub", "hub_url", help="Hub URL (default: $KUBEWEIR_HUB or kubeweir login)."),
    click.option("--token", help="API token (default: $KUBEWEIR_TOKEN or kubeweir login)."),
    click.option("--ca-cert", type=click.Path(dir_okay=False, exists=True), help="CA bundle."),
    click.option("--insecure", is_flag=True, help="Do not verify the hub's TLS certificate."),
    click.option("--from", "start", help="RFC 3339 or epoch seconds."),
    click.option("--to", "end", help="RFC 3339 or epoch seconds."),
]


def _with_common(f: Any) -> Any:
    for opt in reversed(_common):
        f = opt(f)
    return f


def _row(e: dict[str, Any]) -> str:
    t = datetime.fromtimestamp(e["ts"], UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]

    def ep(d: dict[str, Any]) -> str:
        name = d.get("pod") or d.get("ip", "")
        return f"{d.get('namespace')}/{name}" if d.get("namespace") else f"{name}:{d.get('port')}"

    el = "" if e.get("elapsed") is None else f"{e['elapsed'] * 1000:.1f}ms"
    return f"{t:<23} {e['proto']:<8} {ep(e['src']):<32} {ep(e['dst']):<32} {el:>9}  {e['summary']}"


@click.command(help="Query a hub with a CEL filter, newest first.")
@click.argument("cel", default="")
@_with_common
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.option(
    "--format", "fmt", type=click.Choice(["table", "ndjson"]), default="table", show_default=True
)
def query(
    cel: str,
    hub_url: str | None,
    token: str | None,
    ca_cert: str | None,
    insecure: bool,
    start: str | None,
    end: str | None,
    limit: int,
    fmt: str,
) -> None:
    try:
        with _client(hub_url, token, ca_cert, insecure) as c:
            if fmt == "table":
                click.echo(
                    f"{'TIME (UTC)':<23} {'PROTO':<8} {'SOURCE':<32} {'DESTINATION':<32} "
                    f"{'ELAPSED':>9}  SUMMARY"
                )
            for e in c.entries(cel, start=start, end=end, limit=limit):
                click.echo(_row(e) if fmt == "table" else json.dumps(e, ensure_ascii=False))
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot reach the hub: {exc}") from exc


@click.command(help="Export matching entries as HAR or PCAP.")
@click.argument("kind", type=click.Choice(["har", "pcap"]))
@click.argument("cel", default="")
@_with_common
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--limit", type=click.IntRange(1), help="At most this many entries.")
def export(
    kind: str,
    cel: str,
    hub_url: str | None,
    token: str | None,
    ca_cert: str | None,
    insecure: bool,
    start: str | None,
    end: str | None,
    output: Path,
    limit: int | None,
) -> None:
    try:
        with _client(hub_url, token, ca_cert, insecure) as c:
            data = c.export(kind, cel, limit=limit, **{"from": start, "to": end})
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot reach the hub: {exc}") from exc
    output.write_bytes(data)
    click.echo(f"kubeweir export: wrote {len(data)} bytes to {output}", err=True)


@click.command(help="Check an API token against a hub and store it for later commands.")
@click.option("--hub", "hub_url", required=True, help="Hub URL.")
@click.option("--token", prompt=True, hide_input=True, help="API token.")
@click.option("--ca-cert", type=click.Path(dir_okay=False, exists=True), help="CA bundle.")
@click.option("--insecure", is_flag=True, help="Do not verify the hub's TLS certificate.")
def login(hub_url: str, token: str, ca_cert: str | None, insecure: bool) -> None:
    verify: bool | str = False if insecure else (ca_cert or True)
    try:
        with HubClient(hub_url, token, verify=verify) as c:
            me = c.whoami()
    except HubError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot reach the hub: {exc}") from exc
    d = config_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = d / "token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    (d / "hub").write_text(hub_url + "\n")
    namespaces = ", ".join(me.get("namespaces", []))
    click.echo(f"logged in to {hub_url} as {me.get('name')} (namespaces: {namespaces})")
    if sys.stdin.isatty():
        click.echo(f"token stored in {path}", err=True)
