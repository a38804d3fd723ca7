"""Interleaved repetitions (issue 13: "each must hold on three interleaved repetitions").

`make bench` measures its closed-loop runs BENCH_REPETITIONS times (3 by default), each time every
ceiling right before the scenarios it bounds, so a ceiling and its scenarios always share the same minutes
of a shared host. A ratio target is met only when it holds in every repetition; the side-by-side and
`verify` targets likewise. The report's main table shows the first repetition's numbers (the open-loop
runs follow it) and every repetition's ratio; any repetition's errors or timeouts fail the gate.

A repetition is kept as its judged rows: `entry()` makes one from what the driver judged (its
`verdicts`, the side-by-side row and the `verify` row), `judge()` folds them into the report.
"""

from typing import Any

# One value a target measured in each repetition, in order (None: not measured in that one).
Values = list[float | None]


def entry(
    scenarios: dict[str, dict[str, Any]],
    ceilings: dict[str, dict[str, Any]],
    side_by_side: dict[str, Any] | None,
    verify: dict[str, Any] | None,
) -> dict[str, Any]:
    """One repetition as the report keeps it: its scenario rows, its HTTP ceilings' runs (for the gate),
    and its side-by-side and `verify` rows where they were measured."""
    kept: dict[str, Any] = {"scenarios": scenarios, "ceilings": ceilings}
    if side_by_side is not None:
        kept["side_by_side"] = side_by_side
    if verify is not None:
        kept["verify"] = verify
    return kept


def judge(report: dict[str, Any], repetitions: list[dict[str, Any]], ceiling_names: dict[str, str]) -> None:
    """Fold `repetitions` (the first is the report's own) into `report`: each scenario row gets every
    repetition's ratio (`ratios`), and its `meets_ratio` and `meets_all` hold only where they hold in every
    repetition; the side-by-side and `verify` verdicts likewise; `report["repetitions"]` keeps the other
    repetitions' rows (for the gate) and the target lines (for the report)."""
    for scenario, row in report["scenarios"].items():
        rows = [repetition["scenarios"].get(scenario) for repetition in repetitions]
        row["ratios"] = [None if other is None else other["ratio"] for other in rows]
        others = [other for other in rows[1:] if other is not None]
        if row["meets_ratio"] is not None:
            row["meets_ratio"] = _holds(row["ratios"], row["target_ratio"])
        for index, also in enumerate(row.get("also", [])):
            also["ratios"] = [_also_ratio(other, index) for other in rows]
            also["meets_ratio"] = _holds(also["ratios"], also["target_ratio"])
        row["meets_all"] = (
            row["meets_all"]
            and len(others) == len(rows) - 1
            and all(other["meets_all"] for other in others)
            and all(also["meets_ratio"] for also in row.get("also", []))
        )
    if "side_by_side" in report:
        times = [repetition.get("side_by_side", {}).get("times") for repetition in repetitions]
        report["side_by_side"]["times_each"] = times
        report["side_by_side"]["meets_target"] = _holds(times, report["side_by_side"]["target_times"])
    if "verify" in report:
        verify = report["verify"]
        ratios = [repetition.get("verify", {}).get("ratio") for repetition in repetitions]
        verify["ratios"] = ratios
        if "error" not in verify:
            fetches_each = [repetition.get("verify", {}).get("meets_fetches") for repetition in repetitions]
            verify["meets_ratio"] = _holds(ratios, verify["target_ratio"])
            verify["meets_fetches"] = all(fetches_each)
            verify["meets_all"] = verify["meets_ratio"] and verify["meets_fetches"]
    report["repetitions"] = {
        "count": len(repetitions),
        "others": repetitions[1:],
        "targets": target_lines(report, ceiling_names),
    }


def target_lines(report: dict[str, Any], ceiling_names: dict[str, str]) -> list[dict[str, Any]]:
    """Every target judged per repetition: what it compares, each repetition's value, the target, and
    whether it holds in every one."""
    lines = []
    for scenario, row in report["scenarios"].items():
        if row["target_ratio"] is not None:
            lines.append(_line(f"`{scenario}` / {ceiling_names[row['ceiling']]}", row["ratios"], row))
        for also in row.get("also", []):
            lines.append(_line(f"`{scenario}` / {ceiling_names[also['ceiling']]}", also["ratios"], also))
    if "side_by_side" in report:
        side = report["side_by_side"]
        lines.append(
            {
                "what": "`me` / the plain FastAPI app (times its req/s)",
                "values": side["times_each"],
                "target": side["target_times"],
                "met": side["meets_target"],
            }
        )
    if "verify" in report and "ratios" in report["verify"]:
        verify = report["verify"]
        lines.append(
            {
                "what": f"`verify` / {ceiling_names['pyjwt_verify']}",
                "values": verify["ratios"],
                "target": verify.get("target_ratio"),
                "met": verify["meets_ratio"],
            }
        )
    return lines


def gate_runs(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The other repetitions' runs, labelled, for the gate: scenarios, HTTP ceilings, the side-by-side app."""
    runs: list[tuple[str, dict[str, Any]]] = []
    for number, repetition in enumerate(report.get("repetitions", {}).get("others", []), start=2):
        suffix = f" (repetition {number})"
        runs += [(f"scenario {name}{suffix}", row) for name, row in repetition["scenarios"].items()]
        runs += [(f"ceiling {name}{suffix}", row) for name, row in repetition["ceilings"].items()]
        if "side_by_side" in repetition:
            runs.append((f"side by side{suffix}", repetition["side_by_side"]["side_by_side"]))
    return runs


def other_verifies(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The other repetitions' `verify` rows, labelled, for the gate."""
    return [
        (f"verify (repetition {number})", repetition["verify"])
        for number, repetition in enumerate(report.get("repetitions", {}).get("others", []), start=2)
        if "verify" in repetition
    ]


def ratio_cell(row: dict[str, Any]) -> str:
    """The main table's ratio: `0.39` for one repetition, `0.39 · 0.41 · 0.40` for each of several."""
    ratios = row.get("ratios") or [row["ratio"]]
    return " · ".join(_value(ratio) for ratio in ratios)


def markdown(report: dict[str, Any]) -> list[str]:
    repetitions = report.get("repetitions")
    if not repetitions or repetitions["count"] < 2:
        return []
    count = repetitions["count"]
    header = " | ".join(f"{number}" for number in range(1, count + 1))
    lines = [
        "",
        f"## Each target in each of the {count} repetitions",
        "",
        f"The closed-loop runs ran {count} times (BENCH_REPETITIONS), one repetition after the other, each "
        "with its ceilings measured right before the scenarios they bound. A target is met only when it "
        "holds in every repetition. The tables above show the first repetition's numbers; the open-loop "
        "runs follow it.",
        "",
        f"| target | {header} | lowest | target | met in every one |",
        f"|---|{'--:|' * count}--:|--:|:-:|",
    ]
    for line in repetitions["targets"]:
        values = line["values"]
        measured = [value for value in values if value is not None]
        lowest = _value(min(measured)) if measured else "—"
        cells = " | ".join(_value(value) for value in values)
        target = "—" if line["target"] is None else f"≥ {line['target']:.2f}"
        met = "yes" if line["met"] else "**no**"
        lines.append(f"| {line['what']} | {cells} | {lowest} | {target} | {met} |")
    return lines


def console_lines(report: dict[str, Any]) -> list[str]:
    """Each target's value in each repetition, for the terminal (the table above shows the first's)."""
    repetitions = report.get("repetitions")
    if not repetitions or repetitions["count"] < 2:
        return []
    lines = [f"each of the {repetitions['count']} repetitions (a target is met when it holds in every one):"]
    for line in repetitions["targets"]:
        values = " / ".join(_value(value) for value in line["values"])
        target = "-" if line["target"] is None else f">= {line['target']:.2f}"
        what = line["what"].replace("`", "")
        lines.append(f"  {what}: {values} ({target}: {'yes' if line['met'] else 'NO'})")
    return lines


def _line(what: str, values: Values, row: dict[str, Any]) -> dict[str, Any]:
    return {"what": what, "values": values, "target": row["target_ratio"], "met": row["meets_ratio"]}


def _also_ratio(row: dict[str, Any] | None, index: int) -> float | None:
    if row is None or index >= len(row.get("also", [])):
        return None
    ratio: float = row["also"][index]["ratio"]
    return ratio


def _holds(values: Values, target: float | None) -> bool:
    """Whether every repetition measured a value at or above `target`."""
    return target is not None and all(value is not None and value >= target for value in values)


def _value(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"
