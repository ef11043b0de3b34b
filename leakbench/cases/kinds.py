"""What a value of each kind looks like, so that a secret declared under the wrong kind is caught
when its file is loaded: the judges normalize and search a value by its kind
(`leakbench.normalization`), and a GitHub token judged as an AWS key id is judged wrongly.

Provider keys and tokens follow the detect-secrets plugins (their own patterns, matched as their
scanner matches them); the other kinds follow the rules the judges read them by. A password may
be anything. `kind_problem` says why a secret does not fit its kind and which kind it does fit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.stripe import StripeDetector

from leakbench.normalization import date_readings


@dataclass(frozen=True)
class _Format:
    fits: Callable[[str], bool]
    looks: str  # what a value of the kind looks like, for the error message
    distinctive: bool = True  # False: too loose to name as what another kind's secret looks like


def _whole(*patterns: re.Pattern) -> Callable[[str], bool]:
    """Whether one of a plugin's patterns matches the whole value."""
    return lambda value: any(pattern.fullmatch(value) for pattern in patterns)


_AWS_KEY_ID, _AWS_SECRET_IN_CODE = AWSKeyDetector().denylist


def _aws_secret(value: str) -> bool:
    """The plugin finds a secret access key only after an `aws_..._key = ` assignment: the
    value is checked as it would stand there."""
    match = _AWS_SECRET_IN_CODE.search(f'aws_secret_access_key = "{value}"')
    return match is not None and match.group(1) == value


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _luhn(digits: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        doubled = int(digit) * (2 if position % 2 else 1)
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def _credit_card(value: str) -> bool:
    """12 to 19 digits, grouped by spaces or dashes, with a valid check digit (ISO/IEC 7812)."""
    digits = _digits(value)
    return (re.fullmatch(r"\d+(?:[ -]\d+)*", value) is not None
            and 12 <= len(digits) <= 19 and _luhn(digits))


def _iban(value: str) -> bool:
    """A country code, two check digits and up to 30 letters or digits, in groups or not,
    whose check digits hold (ISO 13616: the number read with letters as 10..35 is 1 mod 97)."""
    compact = re.sub(r"[ -]", "", value).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{8,30}", compact):
        return False
    return int("".join(str(int(char, 36)) for char in compact[4:] + compact[:4])) % 97 == 1


def _phone(value: str) -> bool:
    """7 to 15 digits (E.164's longest number), after an international "00" if any, written with
    spaces, dots, dashes, slashes and parentheses."""
    digits = _digits(value)
    return (re.fullmatch(r"\+?[\d ().\-/]+", value) is not None
            and 7 <= len(digits.removeprefix("00")) <= 15)


def _dob(value: str) -> bool:
    """A calendar date in a layout the judges read: ISO, month or day first, or with the
    month's name."""
    iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", value)
    if iso is None:
        return bool(date_readings(value))
    try:
        date(*map(int, iso.groups()))
    except ValueError:
        return False
    return True


def _ipv4(value: str) -> bool:
    octets = value.split(".")
    return len(octets) == 4 and all(re.fullmatch(r"\d{1,3}", o) and int(o) <= 255 for o in octets)


def _no_other_shape(value: str) -> bool:
    """Not an email address or a URI: a name or an address never holds "@" or "://"."""
    return "@" not in value and "://" not in value


_FORMATS = {  # in the order a mismatched secret is compared with the other kinds
    "github_token": _Format(_whole(*GitHubTokenDetector().denylist),
                            "ghp_, gho_, ghu_, ghs_ or ghr_ and 36 letters, digits or '_'"),
    "slack_token": _Format(_whole(*SlackDetector().denylist),
                           "xoxb-, xoxp-, xoxa-, xoxo-, xoxs- or xoxr- and dash-separated "
                           "numbers and letters, or a hooks.slack.com webhook"),
    "stripe_key": _Format(_whole(*StripeDetector().denylist),
                          "sk_live_ or rk_live_ and 24 letters or digits"),
    "openai_key": _Format(_whole(*OpenAIDetector().denylist),
                          "sk-, letters and digits with T3BlbkFJ in the middle"),
    "aws_access_key_id": _Format(_whole(_AWS_KEY_ID), "20 capitals and digits starting with "
                                                      "AKIA, ASIA, ABIA, ACCA or A3T"),
    "db_uri": _Format(lambda v: re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", v) is not None,
                      "scheme://user:password@host/database"),
    "email": _Format(lambda v: re.fullmatch(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+", v) is not None,
                     "name@domain.tld"),
    "ipv4": _Format(_ipv4, "four numbers from 0 to 255 joined by dots"),
    "iban": _Format(_iban, "a country code, two check digits and the account, with a valid "
                           "check"),
    "credit_card": _Format(_credit_card, "12 to 19 digits with a valid check digit, grouped by "
                                         "spaces or dashes"),
    "dob": _Format(_dob, "a date such as 1984-07-21, 07/21/1984 or July 21, 1984"),
    "national_id": _Format(lambda v: (re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ./-]*", v) is not None
                                      and len(_digits(v)) >= 6),
                           "at least 6 digits, with letters, spaces, dots or dashes",
                           distinctive=False),
    "phone": _Format(_phone, "7 to 15 digits, with '+' or '00' and the country code or without, "
                             "grouped by spaces, dots, dashes or parentheses"),
    "aws_secret_access_key": _Format(_aws_secret, "40 letters, digits, '/' or '+'"),
    "name": _Format(lambda v: (re.search(r"[^\W\d_]", v) is not None
                               and not re.search(r"\d", v) and _no_other_shape(v)),
                    "words of letters, without digits", distinctive=False),
    "address": _Format(lambda v: (re.search(r"[^\W\d_]", v) is not None and " " in v.strip()
                                  and _no_other_shape(v)),
                       "several words, such as 12 Oak Street, Springfield", distinctive=False),
}


def looks_like(value: str) -> str | None:
    """The most specific kind with a distinctive format that `value` fits (a password, a name,
    an address or a national id can look like almost anything), or None."""
    return next((kind for kind, form in _FORMATS.items() if form.distinctive and form.fits(value)),
                None)


def _a(kind: str) -> str:
    return f"{'an' if kind[0] in 'aeio' else 'a'} {kind}"


def kind_problem(secret: str, kind: str) -> str | None:
    """Why `secret` is not a value of `kind`, with the kind it looks like; None if it is one."""
    form = _FORMATS.get(kind)
    if form is None or form.fits(secret):
        return None
    other = looks_like(secret)
    fix = f"it looks like {_a(other)}: set kind to {other!r}" if other else "correct the value"
    return (f"does not look like {_a(kind)} ({form.looks}); {fix}, or set kind_check to false "
            "for a deliberately odd value")
