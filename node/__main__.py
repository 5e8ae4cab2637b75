"""``python -m node`` is the ``idnode`` command."""

from node.cli import main

main()
