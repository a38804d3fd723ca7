"""Whether `make bench` compares like with like, for the report: the argon2id ceiling hashes on as many
threads as the API does (its workers times each worker's hashing threads, as bench-api is configured), and
every configured API worker answered its share of each run (an under-fed worker, or its hashing thread,
shows as a worker with few or no requests)."""

from collections.abc import Mapping
from typing import Any

TIMES = "\N{MULTIPLICATION SIGN}"
# A worker that answered less than this share of an even split is under-fed.
UNDER_FED_SHARE = 0.5


def argon2_threads(ceilings: Mapping[str, Any], api_settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The argon2id ceilings' threads next to the API's (BENCH_API_SETTINGS, read from bench-api): None
    when neither ceiling ran or the API's settings are unknown."""
    measured = [ceiling for name, ceiling in ceilings.items() if name.startswith("argon2_")]
    workers, per_worker = api_settings.get("api_workers"), api_settings.get("hash_threads_per_worker")
    if not measured or workers is None or per_worker is None:
        return None
    threads = sorted({int(ceiling["threads"]) for ceiling in measured})
    api_threads = int(workers) * int(per_worker)
    return {
        "ceiling_threads": threads,
        "api_workers": int(workers),
        "api_threads_per_worker": int(per_worker),
        "api_threads": api_threads,
        "matches": threads == [api_threads],
    }


def argon2_threads_line(check: Mapping[str, Any]) -> str:
    threads = " and ".join(str(n) for n in check["ceiling_threads"])
    api = (
        f"the API's {check['api_workers']} workers {TIMES} {check['api_threads_per_worker']} hashing "
        f"thread(s) = {check['api_threads']}"
    )
    if check["matches"]:
        return f"The argon2id ceilings ran on {threads} threads, as many as the API hashes on ({api}): yes."
    return (
        f"The argon2id ceilings ran on {threads} threads, but {api}: **no**, so `login` and `register` are "
        "read against a ceiling with another number of hashing threads."
    )


def under_fed_workers(per_worker: Mapping[str, int], configured: int | None) -> list[str]:
    """What is uneven in one run's requests per worker: configured workers that answered nothing (a
    worker not in the metrics answered nothing since it started), and workers below `UNDER_FED_SHARE` of
    an even split. Empty when nothing is, or when the counts are unknown."""
    if not per_worker:
        return []
    notes = []
    workers = max(configured or 0, len(per_worker))
    silent = workers - sum(1 for count in per_worker.values() if count > 0)
    if silent:
        notes.append(f"{silent} of {workers} workers answered nothing")
    even = sum(per_worker.values()) / workers
    for pid, count in per_worker.items():
        if 0 < count < UNDER_FED_SHARE * even:
            notes.append(f"worker {pid} answered {count:,}, {count / even:.2f} of an even share")
    return notes


def workers_lines(runs: Mapping[str, Mapping[str, int]], configured: int | None) -> list[str]:
    """The report's lines under the per-worker table: which runs had a silent or under-fed worker."""
    uneven = {
        name: notes
        for name, per_worker in runs.items()
        if (notes := under_fed_workers(per_worker, configured))
    }
    if not any(runs.values()):
        return []
    if not uneven:
        return [
            f"Every one of the {configured or 'configured'} API workers answered at least "
            f"{UNDER_FED_SHARE:.2f} of an even share in every run."
        ]
    return [f"Under-fed in `{name}`: {'; '.join(notes)}." for name, notes in uneven.items()]
