"""The ``idnode`` command: serve, client calls (register, resolve, verify), keys, top."""

from node.cli.main import main

__all__ = ["main"]
