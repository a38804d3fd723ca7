"""Audit the installed dependency set (the image's venv, installed from uv.lock) with pip-audit.

Fails on any known vulnerability. Where the vulnerability service cannot be reached (a closed network),
it says plainly how many packages went unaudited instead of reporting a clean result it does not have;
`--strict` turns that into a failure too.
"""

import json
import subprocess
import sys
import sysconfig


def main() -> int:
    strict = "--strict" in sys.argv[1:]
    site_packages = sysconfig.get_paths()["purelib"]
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--path",
            site_packages,
            "--progress-spinner",
            "off",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(
            f"dependency audit: pip-audit gave no report (exit {result.returncode}): {result.stderr[-500:]}"
        )
        return 1 if strict else 0
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    for dependency in vulnerable:
        ids = ", ".join(v["id"] for v in dependency["vulns"])
        print(f"dependency audit: {dependency['name']} {dependency['version']}: {ids}")
    audited = len(dependencies) - len(skipped)
    print(f"dependency audit: {audited} audited, {len(vulnerable)} vulnerable, {len(skipped)} not audited")
    if skipped and audited == 0:
        print("dependency audit: WARNING: the vulnerability service was unreachable; nothing was audited")
    if vulnerable:
        return 1
    return 1 if strict and skipped else 0


if __name__ == "__main__":
    sys.exit(main())
