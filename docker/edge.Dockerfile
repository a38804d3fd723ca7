# The edge proxy of compose.swarm.yaml: HAProxy from Debian trixie's own package. It terminates TLS with the
# certificate of a Swarm secret, finds the API's tasks by DNS (Docker's resolver, `tasks.api`), sets
# X-Forwarded-For to the client's address and is the stack's only published port.
FROM debian:trixie-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/*
COPY --chmod=0644 edge-haproxy.cfg /etc/haproxy/haproxy.cfg
USER haproxy
EXPOSE 8443
HEALTHCHECK --interval=3s --timeout=2s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8443"]
CMD ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
