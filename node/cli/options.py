"""The options every client command shares, with the environment variables scripts
rely on (``IDNODE_TARGET``, ``IDNODE_IDENTITY`` + ``IDNODE_SECRET`` or ``IDNODE_TOKEN``)."""

from __future__ import annotations

from typing import Annotated

import typer

Target = Annotated[str, typer.Option("--target", envvar="IDNODE_TARGET",
                                     help="gRPC address of the node.")]
Identity = Annotated[str, typer.Option("--identity", envvar="IDNODE_IDENTITY",
                                       help="Admin identity, e.g. 300:88.118/ADMIN.")]
Secret = Annotated[str, typer.Option("--secret", envvar="IDNODE_SECRET",
                                     help="The identity's secret (prefer the env variable).")]
Token = Annotated[str, typer.Option("--token", envvar="IDNODE_TOKEN",
                                    help="A bearer token, instead of identity and secret.")]

__all__ = ["Identity", "Secret", "Target", "Token"]
