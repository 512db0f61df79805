#!/usr/bin/env python3
"""Bring up a test node by hand: pods on a bridge with real servers, and (with --kube) an
emulated Kubernetes API holding their Pod objects, until Ctrl-C. Needs root.

    sudo .venv/bin/python scripts/node.py --kube /tmp/kw-kubeconfig
    sudo KUBEWEIR_SNIFFER_TOKEN=... .venv/bin/python -m kubeweir sniff \\
        --kubeconfig /tmp/kw-kubeconfig --node node-a --hub https://127.0.0.1:8443 ...
    sudo .venv/bin/python scripts/node.py --cleanup   # remove leftovers of crashed runs
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sniffer.testing.kube import KubeAPI  # noqa: E402
from sniffer.testing.node import TestNode, cleanup_leftovers, describe, require_root  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--node", default="node-a")
    ap.add_argument("--kube", type=Path, help="start the emulated API; write a kubeconfig here")
    ap.add_argument("--load", type=float, default=0.0, help="client calls per second (0: none)")
    ap.add_argument("--cleanup", action="store_true", help="only remove leftovers and exit")
    args = ap.parse_args()
    reason = require_root()
    if reason:
        sys.exit(f"scripts/node.py {reason}")
    removed = cleanup_leftovers()
    if removed:
        print(f"removed leftovers: {' '.join(removed)}")
    if args.cleanup:
        return
    kube = KubeAPI().start() if args.kube else None
    try:
        with TestNode(args.node) as node:
            web = node.add_pod("web", "shop", {"app": "web", "tier": "front"})
            red = node.add_pod("redis", "shop", {"app": "redis", "tier": "db"})
            dns = node.add_pod("dns", "kube-system", {"k8s-app": "kube-dns"})
            cli = node.add_pod("client", "shop", {"app": "client"})
            web.http_server(8080)
            red.redis_server()
            dns.dnsmasq({"web.shop.svc.cluster.local": web.ip})
            pods = [web, red, dns, cli]
            if kube is not None:
                for p in pods:
                    kube.create_pod(node.pod_object(p))
                kube.write_kubeconfig(args.kube)
                print(f"Kubernetes API (kmock) at {kube.url}; kubeconfig {args.kube}")
            print(describe(node, pods))
            print(f"try: ip netns exec {cli.netns} curl http://{web.ip}:8080/hello")
            if args.load > 0:
                n = int(args.load * 3600)
                cli.http_calls_start(f"http://{web.ip}:8080/load", n, rate=args.load)
                print(f"client: {args.load}/s to web for up to an hour")
            done = threading.Event()
            signal.signal(signal.SIGINT, lambda *_: done.set())
            signal.signal(signal.SIGTERM, lambda *_: done.set())
            print("Ctrl-C to tear down")
            done.wait()
    finally:
        if kube is not None:
            kube.close()
    print("torn down")


if __name__ == "__main__":
    main()
