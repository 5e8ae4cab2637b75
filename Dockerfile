# syntax=docker/dockerfile:1
# idnode: a secondary node of an industrial-internet identifier resolution system.
#
#   docker build -t idnode .
#   docker run -p 50051:50051 -p 8080:8080 -p 2641:2641 -p 2641:2641/udp \
#     -e IDNODE_ADMIN_SECRET=... idnode
#
# deploy/docker-compose.yml runs it with Redis, Prometheus and Grafana.

# --- builder: a self-contained venv, dependencies from the hashed lock ------------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# The lock alone first, so source edits do not reinstall the dependencies. Every
# package is pinned by hash; wheels only, so nothing is compiled in the image.
COPY requirements-runtime.lock ./
RUN pip install --require-hashes --only-binary=:all: -r requirements-runtime.lock

# The project itself, without touching the locked dependencies.
COPY . .
RUN pip install --no-deps . \
    && idnode --help >/dev/null

# --- final: the venv on a clean slim image, running as a non-root user ------------------
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    IDNODE_DATA_DIR=/var/lib/idnode \
    IDNODE_GRPC_LISTEN=0.0.0.0:50051 \
    IDNODE_HTTP_LISTEN=0.0.0.0:8080 \
    IDNODE_HANDLE_LISTEN=0.0.0.0:2641 \
    IDNODE_LOG_FORMAT=json

# A fixed uid, so a volume's ownership means the same thing on every host.
RUN groupadd --system --gid 10001 idnode \
    && useradd --system --uid 10001 --gid idnode --home-dir /var/lib/idnode \
       --no-create-home --shell /usr/sbin/nologin idnode \
    && mkdir -p /var/lib/idnode \
    && chown idnode:idnode /var/lib/idnode \
    && chmod 0750 /var/lib/idnode

COPY --from=builder /opt/venv /opt/venv

USER idnode
WORKDIR /var/lib/idnode
VOLUME /var/lib/idnode

# gRPC, HTTP (Handle REST, /healthz, /readyz, /metrics), separate metrics listener.
EXPOSE 50051 8080 9100 2641 2641/udp

# `idnode health` reads the settings exactly as `serve` does (IDNODE_* variables, the
# config file) and probes /readyz on IDNODE_HTTP_LISTEN, or the gRPC health service on
# IDNODE_GRPC_LISTEN when HTTP is disabled (IDNODE_HTTP_LISTEN=""); exit 0 means ready.
# /readyz answers 503 until the node can serve (store open, keys loaded) and while it
# drains. No curl needed (the slim image has none).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["idnode", "health", "--timeout-seconds", "2"]

ENTRYPOINT ["idnode"]
CMD ["serve"]
