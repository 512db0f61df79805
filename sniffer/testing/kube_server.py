"""The emulated Kubernetes API (``KubeAPI``) as a process of its own, e.g. inside a test pod:

    python -m sniffer.testing.kube_server --pods pods.yaml --kubeconfig kubeconfig --url-file url

Loads the Pod objects of a YAML file (one document per pod, or a list), writes a
kubeconfig pointing at itself and then its URL (the URL file appears last: once it
exists, the server is ready), and serves on 127.0.0.1 until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any

import yaml

from sniffer.testing.kube import KubeAPI


def _pods(path: Path) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(path.read_text()):
        if isinstance(doc, list):
            pods.extend(doc)
        elif isinstance(doc, dict):
            pods.append(doc)
        elif doc is not None:
            raise SystemExit(f"{path}: expected Pod objects, got {type(doc).__name__}")
    return pods


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--pods", type=Path, help="YAML file of Pod objects to create")
    ap.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for this server here")
    ap.add_argument("--url-file", type=Path, required=True, help="write the server URL here")
    args = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with KubeAPI() as kube:
        for pod in _pods(args.pods) if args.pods else []:
            kube.create_pod(pod)
        if args.kubeconfig:
            kube.write_kubeconfig(args.kubeconfig)
        tmp = args.url_file.with_name(args.url_file.name + ".tmp")
        tmp.write_text(kube.url + "\n")
        tmp.replace(args.url_file)
        stop.wait()


if __name__ == "__main__":
    main()
