# Muster server image.  ENTRYPOINT is `muster`, so a StatefulSet's `args:` list
# (`agent -server -bootstrap-expect=3 ...`) runs verbatim, as with Consul's image.
#
#   docker build -t muster:0.1.0 .
#
# Runs as a non-root user (uid 100, gid 1000, like consul-k8s) and writes only to
# /consul/data (the PVC) and /tmp, so `readOnlyRootFilesystem: true` works.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MUSTER_CONFIG_DIR=/consul/config

RUN groupadd --system --gid 1000 consul \
 && useradd --system --uid 100 --gid 1000 --home-dir /consul --no-create-home --shell /usr/sbin/nologin consul

# Install the package from the build context (no network fetch at run time).
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir '.[fast]' \
 && rm -rf /build \
 && mkdir -p /consul/data /consul/config /consul/tls \
 && chown -R 100:1000 /consul

WORKDIR /consul
USER 100:1000
VOLUME ["/consul/data"]
# 8300 server RPC, 8301/8302 gossip, 8500 HTTP, 8443 HTTPS (seed), 8600 DNS
EXPOSE 8300 8301 8301/udp 8302 8302/udp 8500 8443 8600 8600/udp
ENTRYPOINT ["muster"]
CMD ["agent", "-dev", "-client=0.0.0.0"]
