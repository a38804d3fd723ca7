"""How guessable a password is, by zxcvbn: its score (0-4) and its warning, on a bounded window.

zxcvbn knows what people choose (a common word and a run of digits, keyboard walks, repeats, dates,
l33t spellings) from its own frequency lists. pyauth runs its Rust implementation (`zxcvbn-rs-py`), the
same algorithm and lists as the Python port it replaced, at a third to a quarter of its CPU (a 26-character
passphrase 1.7 → 0.4 ms). On 3,000 sample passwords (breached ones, passphrases, words with digits, names
with years, l33t words) the two gave the same score to 99.5 %; at the default minimum of 4 the Rust port
accepted 2 the Python one refused and refused 5 it accepted. It holds the GIL for the whole call.

Its cost is not linear in the input: every substring is looked up in every list, and its l33t matcher
repeats that for each combination of substitutions, which grows with the number of distinct digits and
symbols that stand for letters (128 such characters cost 0.6 s of CPU, 40 a tenth of a second). So it sees
a window: the first `WINDOW` code points, cut shorter while the substring lookups that the l33t
substitutions multiply would exceed `WORK_BUDGET` (about 1.5 ms at most). A password longer than its window
is judged by the window: more characters after a guessable start do not make it accepted, and a window of
random text reaches the top score long before it is cut.
"""

from dataclasses import dataclass
from math import prod

from zxcvbn_rs_py import zxcvbn

WINDOW = 32
# Substitution combinations times window length squared: 8 combinations at the full window.
WORK_BUDGET = 8 * WINDOW * WINDOW
# The characters zxcvbn's l33t matcher reads as each letter. A combination picks one reading for each
# character present, so their number is the product, over the letters, of how many of its characters occur.
L33T_READINGS = {
    "a": "4@",
    "b": "8",
    "c": "({[<",
    "e": "3",
    "g": "69",
    "i": "1!|",
    "l": "1|7",
    "o": "0",
    "s": "$5",
    "t": "+7",
    "x": "%",
    "z": "2",
}


@dataclass(frozen=True)
class Strength:
    score: int
    warning: str
    window: int


def estimate(password: str) -> Strength:
    """zxcvbn's score of the password's window: CPU-bound, up to ~1.5 ms, holding the GIL throughout."""
    window = estimator_window(password)
    # No user inputs: the policy already refuses every context word as a substring before this runs.
    result = zxcvbn(window)
    warning = result.feedback.warning if result.feedback is not None else None
    text = "" if warning is None else str(warning)
    return Strength(score=int(result.score), warning=text, window=len(window))


def estimator_window(password: str) -> str:
    window = password[:WINDOW]
    while len(window) > 1 and lookup_work(window) > WORK_BUDGET:
        window = window[:-1]
    return window


def lookup_work(text: str) -> int:
    """What zxcvbn's estimate of `text` costs, in substring lookups: its l33t combinations times its length
    squared (`WORK_BUDGET` bounds it)."""
    present = set(text)
    combinations = prod(max(1, len(present.intersection(readings))) for readings in L33T_READINGS.values())
    return combinations * len(text) ** 2
