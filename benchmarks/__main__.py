"""Run every benchmark module listed in MODULES, one process each, in order."""

from __future__ import annotations

import subprocess
import sys

# add yours here: "benchmarks.<name>"
MODULES: list[str] = [
    "benchmarks.read_vs_tshark",
    "benchmarks.http1_parser",
    "benchmarks.protocols",
    "benchmarks.dashboard_live",
    "benchmarks.hub_ingest",
    "benchmarks.hub_query",
    "benchmarks.redaction",
    "benchmarks.live_capture",
    "benchmarks.tls_capture",
]


def main() -> int:
    failed = []
    for mod in MODULES:
        print(f"<!-- {mod} -->", flush=True)
        rc = subprocess.call([sys.executable, "-m", mod, *sys.argv[1:]])
        if rc:
            failed.append(mod)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
