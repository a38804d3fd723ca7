# The load generator of `make bench`: wrk (C, with its Lua scripting) to drive the API and the ceiling apps
# inside the compose network, Debian's python3 (standard library only) to set up the scenarios and write
# the report, with python3-uvloop for the open-loop generator (bench/openloop.py; it falls back on
# asyncio's own loop without it), and gnuplot to draw the chart. Everything comes from Debian's packages.
# The ceilings themselves (argon2id, the minimal ASGI apps) run in the API image, with the API's own venv.

FROM debian:trixie-slim
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends wrk python3 python3-uvloop gnuplot-nox fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 bench \
    && useradd --system --uid 10001 --gid bench --home-dir /bench --shell /usr/sbin/nologin bench
WORKDIR /bench
USER bench
CMD ["python3", "/bench/driver.py"]
