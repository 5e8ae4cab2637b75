"""Verify gRPC status OK + response size. usage: check_client.py PORT"""
import sys, grpc
port = int(sys.argv[1])
with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
    grpc.channel_ready_future(ch).result(timeout=5)
    m = ch.unary_unary("/svc.Echo/Call", request_serializer=None, response_deserializer=None)
    ok = 0
    for _ in range(20):
        resp, call = m.with_call(b"r" * 20, timeout=5)
        assert call.code() == grpc.StatusCode.OK and len(resp) == 300, (call.code(), len(resp))
        ok += 1
    print(f"grpc {grpc.__version__}: {ok}/20 calls StatusCode.OK, resp {len(resp)} bytes")
