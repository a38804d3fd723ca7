"""How guessable a password is, by zxcvbn: its score (0-4) and its warning, on a bounded window.

zxcvbn knows what people choose (a common word and a run of digits, keyboard walks, repeats, dates,
l33t spellings) from its own frequency lists. Its cost is not linear in the input: every substring is
looked up in every list, and its l33t matcher repeats that for each combination of substitutions, which
grows with the number of distinct digits and symbols (128 characters of them cost 9 s of CPU, 20 a quarter
of a second). So it sees a window: the first `WINDOW` code points, cut shorter while the substring lookups
that the l33t substitutions multiply would exceed `WORK_BUDGET`. A password longer than its window is
judged by the window: more characters after a guessable start do not make it accepted, and a window of
random text reaches the top score long before it is cut.
"""

from dataclasses import dataclass
from math import prod

from zxcvbn import matching, zxcvbn

WINDOW = 32
# Substitution combinations times window length squared: 8 combinations at the full window.
WORK_BUDGET = 8 * WINDOW * WINDOW


@dataclass(frozen=True)
class Strength:
    score: int
    warning: str
    window: int


def estimate(password: str) -> Strength:
    """zxcvbn's score of the password's window. CPU-bound (milliseconds): call it off the event loop."""
    window = estimator_window(password)
    # No user inputs: zxcvbn keeps them in a module-level dictionary, shared by concurrent calls, and the
    # policy already refuses every context word as a substring before this runs.
    result = zxcvbn(window, max_length=WINDOW)
    return Strength(
        score=int(result["score"]), warning=str(result["feedback"]["warning"]), window=len(window)
    )


def estimator_window(password: str) -> str:
    window = password[:WINDOW]
    while len(window) > 1 and _work(window) > WORK_BUDGET:
        window = window[:-1]
    return window


def _work(text: str) -> int:
    substitutions = matching.relevant_l33t_subtable(text, matching.L33T_TABLE).values()
    return prod(len(chars) for chars in substitutions) * len(text) ** 2
