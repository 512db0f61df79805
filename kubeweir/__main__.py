"""``python -m kubeweir``: the same as the ``kubeweir`` command."""

from kubeweir.cli import main

main()
