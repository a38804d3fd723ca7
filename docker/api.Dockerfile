# The API image, built from services/api with its uv.lock. The build context is the repository root (only
# services/api and libs/ are sent, see .dockerignore): the test image installs libs/pyauth-resource, a
# path dependency of the dev group, which uv finds at ../../libs from /srv/pyauth, i.e. /libs.
# Stages: base (Debian's python3) → deps (venv from the lock) → runtime (venv + code, non-root)
#         deps → test-deps (adds the dev group); base → test-browser (chromium) → test (runtime's files +
#         the dev venv + tests + dev tools).
# The host's CA bundle arrives as the BuildKit secret `pypi_ca` only where a TLS-intercepting proxy
# needs it; it is never written to a layer, and an empty secret means "use the defaults".

FROM debian:trixie-slim AS base
# glibc's allocator keeps the memory a password hash used for the next one (README "Configuration",
# GLIBC_TUNABLES): argon2id asks for its whole memory cost in one block, and glibc serves a block above 32 MiB
# with a fresh mmap, faulted in page by page and unmapped after. At 64 MiB, t=3, p=4 that was 16,385 page
# faults and ~40 ms of kernel CPU a hash (~160 ms in all); with these settings none after the first. One
# arena, so that the hashing threads allocate from the main heap (a thread's own arena cannot hold 64 MiB);
# no mmap for large blocks; freed memory at the heap's top kept up to 1 GiB rather than trimmed.
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pyauth \
    && useradd --system --uid 10001 --gid pyauth --home-dir /srv/pyauth --shell /usr/sbin/nologin pyauth
# The healthchecks of the API and of the test services (an HTTP GET in bash, no interpreter to start).
COPY --chmod=0755 docker/http-ok.sh /usr/local/bin/http-ok

FROM base AS deps
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
ENV UV_PYTHON=/usr/bin/python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
ARG UV_VERSION=0.13.9
RUN --mount=type=secret,id=pypi_ca,target=/run/secrets/pypi_ca \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/pypi_ca ]; then export PIP_CERT=/run/secrets/pypi_ca; fi \
    && python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --disable-pip-version-check "uv==${UV_VERSION}" \
    && ln -s /opt/uv/bin/uv /usr/local/bin/uv
WORKDIR /srv/pyauth
RUN --mount=type=secret,id=pypi_ca,target=/run/secrets/pypi_ca \
    --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=services/api/pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=services/api/uv.lock,target=uv.lock \
    --mount=type=bind,source=libs,target=/libs \
    if [ -s /run/secrets/pypi_ca ]; then export SSL_CERT_FILE=/run/secrets/pypi_ca; fi \
    && uv sync --locked --no-dev --no-install-project

FROM deps AS test-deps
RUN --mount=type=secret,id=pypi_ca,target=/run/secrets/pypi_ca \
    --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=services/api/pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=services/api/uv.lock,target=uv.lock \
    --mount=type=bind,source=libs,target=/libs \
    if [ -s /run/secrets/pypi_ca ]; then export SSL_CERT_FILE=/run/secrets/pypi_ca; fi \
    && uv sync --locked --no-install-project

FROM base AS runtime
WORKDIR /srv/pyauth
COPY --from=deps /opt/venv /opt/venv
COPY services/api/alembic.ini services/api/pyproject.toml ./
COPY services/api/migrations ./migrations
COPY services/api/app ./app
USER pyauth
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD ["http-ok", "8000", "/health/ready"]
CMD ["python3", "-m", "app"]

# The browser of the browser tests (tests/browser): Debian's chromium and chromedriver, and a font for the
# screenshots. Its own stage on base, so a change to the code or the lock never reinstalls it.
FROM base AS test-browser
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# The runtime's files on the browser stage, plus the dev venv, the tests and the tools.
FROM test-browser AS test
WORKDIR /srv/pyauth
COPY --from=runtime /srv/pyauth /srv/pyauth
COPY --from=test-deps /opt/venv /opt/venv
COPY services/api/tests ./tests
COPY services/api/tools ./tools
# Bytecode made once here, not in every process of a run (PYTHONDONTWRITEBYTECODE): a collection writes the
# app's and pytest's assertion-rewritten tests' (about 1.5 CPU-s less per xdist worker), compileall the rest
# (migrations, modules the CLIs and servers that tests start import). README "Tests" has the numbers.
RUN PYTHONDONTWRITEBYTECODE= python3 -m pytest --collect-only -q -p no:cacheprovider >/dev/null \
    && python3 -m compileall -q app migrations tests tools \
    && chown -R pyauth:pyauth /srv/pyauth
USER pyauth
CMD ["python3", "-m", "pytest"]
