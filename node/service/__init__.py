"""The application core: what the node does, whichever door a request came through.

Every front door (gRPC in ``node.rpc``, HTTP in ``node.web``, later the Handle native
protocol) calls these use cases and only translates wire ⇄ domain and errors ⇄ status:
resolve (views, signing, caching), writes (with every post-commit effect: cache
invalidation, beacon, metrics, audit line), follow (the change feed and its rights) and
admin (prefixes, statistics).
"""
