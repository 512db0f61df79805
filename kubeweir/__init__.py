"""kubeweir: Kubernetes traffic capture and inspection."""

from kubeweir import _native

_native.check()  # refuse to run compiled modules older than their source
