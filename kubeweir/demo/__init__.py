"""The demo workload of ``kubeweir tap --demo``: a small shop in network namespaces."""

from kubeweir.demo.shop import DEMO_PROTOCOLS, Demo

__all__ = ["DEMO_PROTOCOLS", "Demo"]
