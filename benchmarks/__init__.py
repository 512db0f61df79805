"""Reproducible measurements, each side by side with a peer where one exists.

Each ``benchmarks/<name>.py`` runs as ``python -m benchmarks.<name>`` and prints a markdown
section for ``BENCHMARKS.md``; ``python -m benchmarks`` runs those listed in
``benchmarks/__main__.py``.
"""
