"""The identifier registry: the domain model and its storage.

Nothing in here knows about gRPC, HTTP, Redis or metrics; ``node`` adapts it to the wire.
"""
