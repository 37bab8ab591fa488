"""``python -m tiermem`` runs the CLI (same as the ``tiermem`` console script)."""

from tiermem.cli import main

main()
