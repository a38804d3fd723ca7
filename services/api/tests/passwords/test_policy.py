"""The password policy: lengths in code points after NFC, the common and breached lists, context words,
zxcvbn's minimum score. The range API check has its own module (`test_pwned.py`)."""

import math
import random
import string
import time
import unicodedata
from importlib import resources
from typing import Any

import pytest
from zxcvbn import matching
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from app.core.config import Settings
from app.core.errors import PyauthError
from app.main import create_app
from app.passwords import policy, strength
from app.passwords.policy import (
    BREACHED_PASSWORDS_FILE,
    PasswordContainsContext,
    PasswordNotText,
    PasswordTooCommon,
    PasswordTooGuessable,
    PasswordTooLong,
    PasswordTooShort,
    breached_passwords,
    check_new_password,
    check_password_locally,
    common_passwords,
    normalize_password,
    refuse_oversized,
)

from .helpers import make_settings

GOOD_PASSWORD = "glacier violin marmalade"


def check(password: str, email: str | None = None, **overrides: Any) -> str:
    return check_password_locally(password, settings=make_settings(**overrides), email=email)


# The length tests use repetitive text, which the estimate would refuse first: they turn it off.
NO_ESTIMATE: dict[str, Any] = {"PASSWORD_MIN_SCORE": 0}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (PasswordTooLong, "password_too_long"),
        (PasswordTooShort, "password_too_short"),
        (PasswordTooCommon, "password_too_common"),
        (PasswordTooGuessable, "password_too_guessable"),
        (PasswordContainsContext, "password_contains_context"),
        (PasswordNotText, "password_not_text"),
    ],
)
def test_each_refusal_is_a_422_pyauth_error_with_its_own_code(error: type[PyauthError], code: str) -> None:
    assert issubclass(error, PyauthError)
    assert error.status_code == 422
    assert error.code == code
    assert error.message


@pytest.mark.parametrize(
    ("password", "email", "error"),
    [
        ("x" * 129, None, PasswordTooLong),
        ("short password", None, PasswordTooShort),
        ("1q2w3e4r5t6y7u8i9o0p", None, PasswordTooCommon),
        ("momsanaladventure", None, PasswordTooCommon),
        ("iloveyou12345678", None, PasswordTooGuessable),
        ("the marguerite password", "marguerite@example.com", PasswordContainsContext),
        ("glacier violin \ud800 marmalade", None, PasswordNotText),
    ],
)
def test_each_refusal_is_raised(password: str, email: str | None, error: type[PyauthError]) -> None:
    with pytest.raises(error) as raised:
        check(password, email)
    assert raised.value.detail


def test_a_good_password_is_returned_unchanged() -> None:
    assert check(GOOD_PASSWORD, "marguerite@example.com") == GOOD_PASSWORD


@pytest.mark.parametrize("length", [15, 64, 128])
def test_passwords_up_to_the_maximum_are_accepted(length: int) -> None:
    password = (GOOD_PASSWORD * 6)[:length]
    assert check(password, **NO_ESTIMATE) == password


def test_one_code_point_over_the_maximum_is_too_long() -> None:
    with pytest.raises(PasswordTooLong, match="at most 128 characters"):
        check((GOOD_PASSWORD * 6)[:129], **NO_ESTIMATE)


def test_one_code_point_under_the_minimum_is_too_short() -> None:
    with pytest.raises(PasswordTooShort, match="at least 15 characters"):
        check(GOOD_PASSWORD[:14])


def test_minimum_length_comes_from_settings() -> None:
    assert check("glacier violin", PASSWORD_MIN_LENGTH=14, **NO_ESTIMATE) == "glacier violin"


def test_128_four_byte_code_points_are_accepted() -> None:
    password = "".join(chr(0x1F600 + i % 64) for i in range(128))
    assert len(password.encode()) == 4 * 128
    assert check(password, **NO_ESTIMATE) == password


def test_length_counts_code_points_after_nfc() -> None:
    decomposed = "e\u0301" * 100  # 200 code points, 100 after NFC
    assert len(decomposed) == 200
    assert check(decomposed, **NO_ESTIMATE) == "\u00e9" * 100

    with pytest.raises(PasswordTooShort):
        check("e\u0301" * 14)  # 28 code points, 14 after NFC


def test_the_byte_limit_applies_to_the_raw_input() -> None:
    # Decomposed Hangul: 3 jamo of 3 bytes each compose into one syllable (each has a final consonant).
    syllables = "".join(chr(0xAC00 + 28 * i + 1 + i % 27) for i in range(57))
    decomposed = unicodedata.normalize("NFD", syllables)
    assert len(decomposed.encode()) == 513

    with pytest.raises(PasswordTooLong):
        check(decomposed)
    assert check(decomposed[:-3], **NO_ESTIMATE) == syllables[:-1]


def test_a_megabyte_password_is_refused_before_any_normalisation(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object) -> str:
        raise AssertionError("normalised a password that should have been refused first")

    monkeypatch.setattr(policy, "normalize_password", fail)
    huge = "a" * 1_000_000
    with pytest.raises(PasswordTooLong):
        refuse_oversized(huge, make_settings())
    with pytest.raises(PasswordTooLong):
        check(huge)
    with pytest.raises(PasswordTooLong):
        check("\u00e9" * 300)  # 300 code points but 600 bytes: refused on bytes


def test_refuse_oversized_accepts_what_fits() -> None:
    refuse_oversized("a" * 512, make_settings())
    with pytest.raises(PasswordTooLong):
        refuse_oversized("a" * 513, make_settings())


def test_normalize_password_is_nfc() -> None:
    assert normalize_password("Cafe\u0301") == "Caf\u00e9"
    assert normalize_password("Caf\u00e9") == "Caf\u00e9"


def test_the_common_list_holds_at_least_10000_passwords_and_loads_once() -> None:
    passwords = common_passwords()
    assert len(passwords) >= 10_000
    assert {"password", "123456", "qwerty"} <= passwords
    assert common_passwords() is passwords


@pytest.mark.parametrize("password", ["1q2w3e4r5t6y7u8i9o0p", "1Q2W3E4R5T6Y7U8I9O0P", "123456789987654321"])
def test_a_common_password_is_refused_whatever_its_case(password: str) -> None:
    with pytest.raises(PasswordTooCommon):
        check(password)


@pytest.mark.parametrize("password", ["password", "PassWord", "iloveyou"])
def test_short_common_passwords_are_refused_when_the_minimum_allows_them(password: str) -> None:
    with pytest.raises(PasswordTooCommon):
        check(password, PASSWORD_MIN_LENGTH=8)


@pytest.mark.parametrize(
    ("password", "email"),
    [
        ("i am MARGUERITE and i like tea", "marguerite@example.com"),
        ("down the WonderLand rabbit hole", "alice@wonderland.co.uk"),
        ("zoë and the lighthouse keeper", "Zoë@example.com"),
        ("my pyauth password is long", None),
        ("my PyAuth password is long", "marguerite@example.com"),
    ],
)
def test_context_words_are_refused_whatever_their_case(password: str, email: str | None) -> None:
    with pytest.raises(PasswordContainsContext):
        check(password, email)


def test_the_service_name_comes_from_settings() -> None:
    with pytest.raises(PasswordContainsContext):
        check("welcome to acme login land", SERVICE_NAME="Acme Login")
    assert check("my pyauth password is long", SERVICE_NAME="Acme Login") == "my pyauth password is long"


def test_context_words_shorter_than_three_characters_are_ignored() -> None:
    assert check("al and jo went to io land", "al@jo.io") == "al and jo went to io land"


def test_the_email_is_optional() -> None:
    assert check("marguerite likes tea a lot", None) == "marguerite likes tea a lot"


def test_refusals_are_checked_in_order() -> None:
    # Too short wins over too common and context; too long is checked before anything else.
    with pytest.raises(PasswordTooShort):
        check("pyauth", "pyauth@pyauth.io")
    with pytest.raises(PasswordTooLong):
        check("pyauth" * 30)


# NIST SP 800-63B-4 §3.1.1.2: a blocklist of commonly used, expected or compromised values, which at 15
# characters means the patterns people fall back on rather than short dictionary words.
@pytest.mark.parametrize(
    "password",
    [
        "iloveyou12345678",  # a common phrase and a run of digits
        "football1234567890",  # a common word and a run of digits
        "zxcvbnm,./asdfghjkl",  # keyboard walks
        "1qaz2wsx3edc4rfv5tgb",  # a keyboard walk in columns
        "monkeymonkeymonkey",  # a repeated word
        "Summer2024Summer2024",  # a repeated season and year
        "Jennifer19871987",  # a name and years
    ],
)
def test_what_people_choose_at_15_characters_is_refused_as_too_guessable_nist_800_63b(password: str) -> None:
    with pytest.raises(PasswordTooGuessable) as refused:
        check(password)
    assert password not in refused.value.detail


@pytest.mark.parametrize("password", ["momsanaladventure", "Mailcreated5240", "qwertyuiopasdfghjkl"])
def test_a_breached_password_is_refused_as_too_common(password: str) -> None:
    assert password.casefold() not in common_passwords()
    with pytest.raises(PasswordTooCommon, match="breaches"):
        check(password)


def test_the_breached_list_is_large_loaded_once_and_keeps_only_what_a_minimum_can_meet() -> None:
    passwords = breached_passwords()
    assert len(passwords) >= 150_000
    assert breached_passwords() is passwords
    # The setting's lowest allowed minimum is 8: shorter entries could never match.
    assert min(len(entry) for entry in passwords) == 8
    assert all(entry == normalize_password(entry).casefold() for entry in passwords)


def test_the_shipped_lists_stay_under_a_mebibyte_with_their_licences() -> None:
    package = resources.files("app.passwords")
    for data, licence in [
        (BREACHED_PASSWORDS_FILE, "breached-passwords.LICENSE"),
        ("common-passwords.txt.gz", "common-passwords.LICENSE"),
    ]:
        assert len(package.joinpath(data).read_bytes()) < 1024 * 1024
        assert "Copyright" in package.joinpath(licence).read_text()


def test_the_minimum_score_comes_from_settings() -> None:
    # zxcvbn scores this 3: enough at a minimum of 3, refused at the default 4.
    assert check("sunshine2024!!!!", PASSWORD_MIN_SCORE=3) == "sunshine2024!!!!"
    with pytest.raises(PasswordTooGuessable):
        check("sunshine2024!!!!")
    assert check("monkeymonkeymonkey", PASSWORD_MIN_SCORE=0) == "monkeymonkeymonkey"


# Seeded, so that the samples are the same on every run: random draws, but no flaky test.
@pytest.mark.parametrize("alphabet", [string.ascii_lowercase, string.ascii_letters + string.digits])
def test_genuinely_random_15_character_passwords_pass_the_default_score(alphabet: str) -> None:
    draw = random.Random(len(alphabet))  # noqa: S311 - test samples, not secrets
    for _ in range(100):
        password = "".join(draw.choice(alphabet) for _ in range(15))
        assert check(password) == password


def test_random_passphrases_of_common_words_pass_the_default_score() -> None:
    # Three distinct words drawn from the 5,000 most frequent English words (a diceware-size list).
    words = [
        word for word in FREQUENCY_LISTS["english_wikipedia"][:5000] if word.isalpha() and len(word) >= 4
    ]
    draw = random.Random(16)  # noqa: S311 - test samples, not secrets
    checked = 0
    while checked < 100:
        password = " ".join(draw.sample(words, 3))
        if len(password) >= 15:
            assert check(password) == password
            checked += 1


def test_refusals_name_their_reason_in_order() -> None:
    # Common before context before guessable: the most specific reason is the one the user sees.
    with pytest.raises(PasswordTooCommon):
        check("passwordpassword")
    with pytest.raises(PasswordContainsContext):
        check("pyauthpyauthpyauth")
    with pytest.raises(PasswordTooGuessable):
        check("trustno1trustno1")


async def test_the_full_check_refuses_what_the_local_check_refuses() -> None:
    with pytest.raises(PasswordTooGuessable):
        await check_new_password("monkeymonkeymonkey", settings=make_settings(), email=None)
    assert await check_new_password(GOOD_PASSWORD, settings=make_settings(), email=None) == GOOD_PASSWORD


@pytest.mark.parametrize("length", [64, 128])
def test_the_estimate_is_bounded_on_long_symbol_dense_input(length: int) -> None:
    # Given whole, zxcvbn spends seconds on this: its l33t matcher tries every combination of substitutions
    # of twenty distinct digits and symbols. The window it is given keeps that bounded.
    password = ("!$%(+0123456789<@[{|" * 7)[:length]
    assert len(strength.estimator_window(password)) <= strength.WINDOW
    started = time.perf_counter()
    with pytest.raises(PasswordTooGuessable):
        check(password)
    assert time.perf_counter() - started < 1.0


def test_the_window_counts_the_substitutions_zxcvbns_l33t_matcher_tries() -> None:
    # The readings are zxcvbn's (its Python port's table, the algorithm both ports share): a character
    # missing here would let a window of such characters grow past the budget.
    assert {letter: set(chars) for letter, chars in matching.L33T_TABLE.items()} == {
        letter: set(chars) for letter, chars in strength.L33T_READINGS.items()
    }
    dense = "!$%(+0123456789<@[{|"
    for length in range(1, len(dense) + 1):
        text = dense[:length]
        subtable = matching.relevant_l33t_subtable(text, matching.L33T_TABLE)
        expected = math.prod(len(chars) for chars in subtable.values()) * length**2
        assert strength.lookup_work(text) == expected
    window = strength.estimator_window(dense * 2)
    assert strength.lookup_work(window) <= strength.WORK_BUDGET < strength.lookup_work(dense * 2)
    assert len(window) < strength.WINDOW


def test_the_estimate_gives_zxcvbns_warning_as_text() -> None:
    assert strength.estimate("zxcvbnm,./") == strength.Strength(
        score=1, warning="Straight rows of keys are easy to guess.", window=10
    )
    assert strength.estimate("x7#Kp!2qL9@vQ4$w").warning == ""


async def test_a_worker_reads_the_password_lists_before_it_takes_requests(settings: Settings) -> None:
    # The check runs on the event loop: the first request must not pay for reading ~200,000 entries.
    common_passwords.cache_clear()
    breached_passwords.cache_clear()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert common_passwords.cache_info().currsize == 1
        assert breached_passwords.cache_info().currsize == 1
