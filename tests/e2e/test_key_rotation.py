"""A key rotated while the node runs signs new answers; the old key stays published."""

from __future__ import annotations

import os
from collections.abc import Callable

from idnode.v1 import record_pb2, resolver_pb2
from node.app import Node
from node.security.signing import rotate
from node.verify import verify
from tests.conftest import Client
from tests.servers import wait_until


def test_rotation_is_picked_up_without_a_restart(node_factory: Callable[..., Node]) -> None:
    node = node_factory(store_check_interval_seconds=0.1)
    client = Client(f"127.0.0.1:{node.grpc_port}")
    client.register("88.118.8/ROT", ("URL", "x"))
    before = client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/ROT"))
    old_key = before.record.key_id

    new_key = rotate(node.settings.signing_key_dir, retire_after_seconds=3600)

    def published() -> list[record_pb2.SigningKey]:
        return list(client.resolver.GetSigningKeys(resolver_pb2.GetSigningKeysRequest()).keys)

    wait_until(lambda: any(k.key_id == new_key and k.active for k in published()), 10, 0.05,
               "the node never picked up the new key")
    keys = published()
    assert {k.key_id for k in keys} == {old_key, new_key}
    verify(before.record, keys)  # what the old key signed still verifies
    after = client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/ROT"))
    assert after.record.key_id == new_key
    verify(after.record, keys)
    nonce = os.urandom(16)
    with_nonce = client.resolver.Resolve(resolver_pb2.ResolveRequest(handle="88.118.8/ROT",
                                                                     nonce=nonce))
    verify(with_nonce.record, keys, nonce=nonce, nonce_signature=with_nonce.nonce_signature)
    client.close()
