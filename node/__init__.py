"""The running idnode service: settings, composition root, resolve pipeline, caches,
signing, gRPC servicers, HTTP endpoints, metrics and the CLI."""

__version__ = "0.1.0"
