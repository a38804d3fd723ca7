"""One scrape for every uvicorn worker: the Prometheus text of this process, or of all of them.

With `API_WORKERS` processes, a scrape reaches whichever worker accepts it. So that it still sees the
whole server, set PROMETHEUS_MULTIPROC_DIR to an empty directory that all workers share and that is
emptied whenever the server starts (compose mounts a tmpfs there): each worker then writes its values
to its own files in it, and a scrape merges the files. Counters and histograms of a worker that has
exited stay counted; its gauges leave the sum (`mark_process_dead`).

The mode is read once, at import, as prometheus-client itself does when the first metric is made.
"""

import contextlib
import os
import re
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

# The classic text format (0.0.4) that every Prometheus-compatible scraper reads, whatever it asks for.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS_DIR: str | None = os.environ.get(MULTIPROCESS_DIR_VARIABLE) or None

# prometheus-client's file names for gauges that only count while their process lives.
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]*_(\d+)\.db")


def render(multiprocess_dir: str | None = MULTIPROCESS_DIR) -> bytes:
    """The Prometheus text exposition: of every process writing to `multiprocess_dir`, else of this one."""
    if multiprocess_dir is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def mark_process_dead(pid: int, multiprocess_dir: str | None = MULTIPROCESS_DIR) -> None:
    """Take an exited worker's gauges out of the sums. Its counters and histograms stay."""
    if multiprocess_dir is not None:
        multiprocess.mark_process_dead(pid, multiprocess_dir)  # type: ignore[no-untyped-call]


def forget_dead_processes(multiprocess_dir: str | None = MULTIPROCESS_DIR) -> list[int]:
    """Drop the gauges of workers that died without cleaning up (killed, crashed), whose files would
    otherwise stay in the sums until the directory is emptied. Returns their process ids."""
    if multiprocess_dir is None:
        return []
    dead = set()
    for path in Path(multiprocess_dir).iterdir():
        match = _LIVE_GAUGE_FILE.fullmatch(path.name)
        if match and not _is_running(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        with contextlib.suppress(FileNotFoundError):  # another worker starting at the same time got it
            mark_process_dead(pid, multiprocess_dir)
    return sorted(dead)


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
