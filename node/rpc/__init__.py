"""The gRPC front door: the handler table, one servicer per idnode.v1 service, and the
protobuf ⇄ domain conversions. Nothing here decides; it calls ``node.service``."""
