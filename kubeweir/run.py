"""``python -m kubeweir.run``: write a small sample capture with ``kubeweir.pcapgen`` and
print its entries as a table through ``kubeweir read`` (no root, no network). ``make run``
runs ``kubeweir tap --demo`` (``kubeweir/tap.py``) instead."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR, DNSRR

from kubeweir import pcapgen


def sample_packets() -> list[object]:
    """A few conversations of several protocols and shapes, in time order."""
    t = pcapgen.T0
    pkts: list[object] = []
    pkts += pcapgen.http_conversation(3, t0=t)
    pkts += pcapgen.http_conversation(
        2, chunked_gzip=True, client=("10.0.0.3", 41000), server=("10.0.0.4", 8080), t0=t + 1
    )
    pkts += pcapgen.http_conversation(2, pipelining=True, ipv6=True, t0=t + 2)
    pkts += pcapgen.tcp_session(
        [("c", b"*2\r\n$3\r\nGET\r\n$5\r\norder\r\n"), ("s", b"$2\r\n42\r\n")],
        client=("10.0.0.5", 42000),
        server=("10.0.0.6", 6379),
        t0=t + 3,
    )
    q = DNS(id=0x1234, rd=1, qd=DNSQR(qname="orders.shop.svc.cluster.local", qtype="A"))
    a = DNS(
        id=0x1234,
        qr=1,
        rd=1,
        ra=1,
        qd=DNSQR(qname="orders.shop.svc.cluster.local", qtype="A"),
        an=DNSRR(rrname="orders.shop.svc.cluster.local", type="A", ttl=30, rdata="10.96.0.12"),
    )
    pkts += pcapgen.udp_exchange([("c", bytes(q)), ("s", bytes(a))], t0=t + 4)
    pkts += pcapgen.tcp_session(
        [("c", b"\x00\x01binary-protocol"), ("s", b"\x00\x02ok")],
        client=("10.0.0.7", 43000),
        server=("10.0.0.8", 7777),
        t0=t + 5,
    )
    return pkts


def main() -> int:
    from kubeweir.cli import main as cli

    with tempfile.TemporaryDirectory(prefix="kubeweir-run-") as tmp:
        path = Path(tmp) / "sample.pcap"
        pcapgen.write_pcap(path, sample_packets())  # type: ignore[arg-type]
        sys.stderr.write(f"sample capture written by kubeweir.pcapgen: {path}\n")
        try:
            cli(["read", str(path), "--format", "table"], prog_name="kubeweir")
        except SystemExit as exc:
            return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
