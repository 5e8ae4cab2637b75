"""gRPC benchmark server. usage: server.py MODEL HANDLER PORT
MODEL: aio | tp8 | tp32   HANDLER: empty | real"""
import sys, asyncio
from concurrent import futures
import grpc

model, handler, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
PAYLOAD = b"x" * 300
REQ = b"r" * 20

if handler == "real":
    from prometheus_client import Counter
    D = {REQ: PAYLOAD, b"other": b"y" * 300}
    C = Counter("resolve_requests", "resolves", ["method", "code"]).labels("Resolve", "OK")
    def work(req):
        v = D.get(req)
        C.inc()
        return v if v is not None else PAYLOAD
else:
    work = None

if model == "aio":
    if work is None:
        async def call(req, ctx):
            return PAYLOAD
    else:
        async def call(req, ctx):
            return work(req)
else:
    if work is None:
        def call(req, ctx):
            return PAYLOAD
    else:
        def call(req, ctx):
            return work(req)

gh = grpc.method_handlers_generic_handler("svc.Echo", {
    "Call": grpc.unary_unary_rpc_method_handler(call, request_deserializer=None, response_serializer=None)})

if model == "aio":
    async def main():
        s = grpc.aio.server()
        s.add_generic_rpc_handlers((gh,))
        s.add_insecure_port(f"127.0.0.1:{port}")
        await s.start()
        print("ready", flush=True)
        await s.wait_for_termination()
    asyncio.run(main())
else:
    n = int(model[2:])
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=n))
    s.add_generic_rpc_handlers((gh,))
    s.add_insecure_port(f"127.0.0.1:{port}")
    s.start()
    print("ready", flush=True)
    s.wait_for_termination()
