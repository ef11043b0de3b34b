"""The values a user types on the command line, parsed and validated one option at a time.

Pure on purpose (no pytest, no torch): everything here can be tested without starting a pytest
run. Every problem is an `OptionError` whose message is one line starting with the option's name,
so that the plugin can show it as a usage error. leakbench.run_options puts a run's options
together; leakbench.engine_options parses the engine arguments.
"""

from __future__ import annotations

import math
import operator
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import algorithms
import attacks
from leakbench.cases import (
    COPY_LEVELS,
    FORGET_FILE,
    FORMAT_FAMILIES,
    HOLDOUT_FILE,
    copies_label,
)

ALGORITHMS = tuple(algorithms.registry())  # the registry's order: built-in, then entry points
DEFAULT_ALGORITHMS = "none,ga,gd,kl"  # the study's table: baseline, GA, GA+GD, GA+KL
DEFAULT_MODEL = "tiny"
# The attacks every run makes unless told otherwise: quant, and relearn5, the cheapest attack that
# tells a model that forgot from one that hides (docs/PERFORMANCE.md, "Attacks"); the others are
# opt-in with --attacks.
DEFAULT_ATTACKS = "quant,relearn5"

METRIC_GROUPS = {
    "ma": "memorization accuracy and extraction strength of the secrets, teacher-forced "
          "(CodeEraser, OpenUnlearning)",
    "el": "extraction likelihood EL_3, EL_5, EL_10 of the secrets (CodeEraser, Jang et al.)",
    "mia": "membership-inference AUC of LOSS, zlib, Min-K% and Min-K%++, forget vs holdout texts",
    "privleak": "MUSE PrivLeak: the Min-K% AUC against the retrain variant's (needs retrain)",
    "exposure": "exposure of each secret: its rank among decoys of its kind never trained on "
                "(Secret Sharer)",
}
# EL_n greedy-decodes from every split point of every secret, and exposure scores 100 decoys per
# secret: each costs minutes per variant on tiny (docs/PERFORMANCE.md, "Privacy metrics"). Opt
# in with --metrics=all, el or exposure.
DEFAULT_METRICS = "ma,mia,privleak"

# leak@n: the numbers of samples n at which the report gives the direct leak rate of a run that
# drew several samples per probe (a probe leaks at n when one of its first n samples does).
LEAK_AT_N = (1, 2, 5, 10, 20, 50, 100)

GATE_METRICS = {
    "direct_leak_direct_probes": "share of direct forget probes (the training text up to the "
                                 "secret) whose completion contains it (rate)",
    "direct_leak_paraphrase_probes": "the same on paraphrased forget probes (rate)",
    "direct_leak": "the same on all forget probes, direct and paraphrased (rate)",
    "indirect_leak": "share of leak probes with a partial, related or other record's secret (rate)",
    "holdout_leak": "share of holdout probes judged leaks: the judges' false-positive rate (rate)",
    "degenerate_rate": "share of forget probes answered only by empty or looping completions "
                       "(rate)",
    "hallucinated_valid_rate": "share of forget probes of a checkable kind whose completion "
                               "holds a well-formed value of it that no record has (rate)",
    **{f"direct_leak_at{n}": f"direct leak rate within the first {n} samples per probe, with "
       f"--samples >= {n} (rate)" for n in LEAK_AT_N},
    "capability_pass1": "pass@1 on the capability probe (rate)",
    "humaneval_pass1": "pass@1 on HumanEval (rate)",
    "utility_retention": "pass@1 after unlearning divided by pass@1 before (ratio, may exceed 1)",
    "ma": "memorization accuracy: share of secret tokens predicted teacher-forced (rate)",
    "el10": "extraction likelihood EL_10 of the secrets (rate)",
    "forgotten_ma": "share of forget secrets whose MA is at most the 95th percentile of the "
                    "holdout values' (rate)",
    "forgotten_el10": "the same by EL_10 (rate)",
    "forgotten_secrets": "share of forget secrets at most the holdout values' 95th percentile by "
                         "every calibrated score measured (MA, ES, EL_10, exposure) (rate)",
    "es": "extraction strength: share of a secret, from its end, that teacher-forced predictions "
          "get right without a miss (rate)",
    "forgotten_es": "the same as forgotten_ma by extraction strength (rate)",
    "exposure": "mean exposure of the forget secrets among their decoys (bits)",
    "forgotten_exposure": "the same as forgotten_ma by exposure (rate)",
    "exposure_top_share": "share of forget secrets more likely than every decoy (rate)",
    "mia_auc": "membership-inference AUC between forget and holdout texts (0.5 = unseen)",
    "privleak": "MUSE PrivLeak in percent: AUC gap to the retrained model (0 = goal)",
    **{f"{name}_leak": f"direct leak rate on the evaluated probes after the {name} attack (rate)"
       for name in attacks.registry()},
    "worst_case_leak": "the highest <attack>_leak of the run's attacks (rate)",
    **{f"{metric}_copies{level}": f"{metric} on the probes of values held in "
       f"{copies_label(level)} of their split (rate)"
       for level in COPY_LEVELS for metric in ("direct_leak", "worst_case_leak")},
    **{f"{metric}_{family}_formats": f"{metric} on the probes whose text is in {family} "
       "formats: those of the generated sets, or any other (rate)"
       for family in FORMAT_FAMILIES for metric in ("direct_leak", "worst_case_leak")},
}
# Metrics whose thresholds live outside [0, 1]: (lowest, highest) allowed.
_METRIC_RANGES = {
    "utility_retention": (0.0, math.inf),
    "exposure": (0.0, math.inf),
    "privleak": (-math.inf, math.inf),
}
_RATE_RANGE = (0.0, 1.0)

_GATE_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
}
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
_GATE_SHAPE = re.compile(
    r"\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>[<>=!]*)\s*(?P<number>.*?)\s*"
)

DEFAULT_CACHE_DIR = Path("~/.cache/leakbench")
CACHE_DIR_ENV = "LEAKBENCH_CACHE_DIR"
class OptionError(ValueError):
    """A command-line value that cannot be used; the message is one line naming the option."""


@dataclass(frozen=True)
class Gate:
    """A release condition on one metric of the run, e.g. ``direct_leak<=0.01``.

    `holds` compares exactly: a threshold written as 1% is the float nearest to 0.01, the same
    number a rate of 1/100 computes to, so boundaries behave as written.
    """

    metric: str
    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        return _GATE_OPERATORS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"


def parse_algorithms(text: str) -> tuple[str, ...]:
    """Algorithm names from "all", one name or a comma list, in the order of `ALGORITHMS`.

    The order is canonical rather than as typed so that "kl,ga" and "ga,kl" give the same table.
    """
    names = {item.strip().lower() for item in text.split(",")}
    if "all" in names:
        return ALGORITHMS
    unknown = sorted(names - set(ALGORITHMS))
    if unknown:
        shown = ", ".join(repr(name) for name in unknown)
        valid = ", ".join(ALGORITHMS)
        raise OptionError(
            f"--algo: unknown algorithm {shown}; valid: {valid}, all, or a comma list"
        )
    return tuple(name for name in ALGORITHMS if name in names)


def parse_metrics(text: str) -> tuple[str, ...]:
    """Metric groups from "all", "none" (no privacy metrics) or a comma list, in the order of
    `METRIC_GROUPS`."""
    names = {item.strip().lower() for item in text.split(",")}
    if names == {"none"}:
        return ()
    if "none" in names:
        raise OptionError(f"--metrics: {text!r}: none (no privacy metrics) stands alone")
    if "all" in names:
        return tuple(METRIC_GROUPS)
    unknown = sorted(names - set(METRIC_GROUPS))
    if unknown:
        shown = ", ".join(repr(name) for name in unknown)
        raise OptionError(f"--metrics: unknown metric group {shown}; valid: "
                          f"{', '.join(METRIC_GROUPS)}, all, none, or a comma list")
    return tuple(name for name in METRIC_GROUPS if name in names)


def parse_attacks(text: str) -> tuple[str, ...]:
    """Attack settings from "all", "none", settings and families (all their settings) in a
    comma list, in the registry's order (attacks.select)."""
    try:
        return attacks.select(text.lower())
    except ValueError as err:
        raise OptionError(f"--attacks: {err}, or a comma list") from None


def parse_gate(text: str) -> Gate:
    """``<metric><op><number>`` with op one of <=, >=, <, >, ==; the number may end in %."""
    shape = _GATE_SHAPE.fullmatch(text)
    if shape is None:
        raise OptionError(f"--gate: {text!r} is not <metric><op><number>, e.g. 'direct_leak<=0.01'")
    metric, op, number = shape["metric"], shape["op"], shape["number"]
    if metric not in GATE_METRICS:
        raise OptionError(
            f"--gate: unknown metric {metric!r} in {text!r}; valid: {', '.join(GATE_METRICS)}"
        )
    if op not in _GATE_OPERATORS:
        found = f"unknown operator {op!r}" if op else "no operator"
        raise OptionError(f"--gate: {found} in {text!r}; valid: {', '.join(_GATE_OPERATORS)}")
    threshold = _parse_threshold(metric, number, text)
    return Gate(metric, op, threshold)


def _parse_threshold(metric: str, number: str, text: str) -> float:
    percent = number.endswith("%")
    digits = number[:-1].rstrip() if percent else number
    if percent and metric == "privleak":
        raise OptionError(
            f"--gate: {text!r}: privleak is already in percent; write the number without %"
        )
    try:
        value = Decimal(digits)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise OptionError(
            f"--gate: {number!r} in {text!r} is not a number; "
            "write a fraction (0.01) or a percentage (1%)"
        )
    threshold = float(value / 100 if percent else value)
    low, high = _METRIC_RANGES.get(metric, _RATE_RANGE)
    if not low <= threshold <= high:
        if (low, high) == _RATE_RANGE:
            hint = "write a fraction in [0, 1] (0.05) or a percentage (5%)"
        else:
            hint = "the threshold must be at least 0"
        raise OptionError(f"--gate: {text!r}: {metric} is out of range; {hint}")
    return threshold


def _count(option: str, value: object, least: int = 1, why: str = "") -> int:
    """A whole number >= `least`, or the option's error."""
    try:
        count = int(str(value).strip())
    except ValueError:
        count = least - 1
    if count < least:
        raise OptionError(f"{option}: {value!r} is not a whole number >= {least}{why}")
    return count


def parse_samples(value: object) -> int:
    return _count("--samples", value)


def parse_requests(value: object) -> int:
    """--requests: the deletion requests the forget set's owners are unlearned in, in turn."""
    return _count("--requests", value)


def parse_decoys(value: object) -> int:
    """--decoys: how many decoys of its kind each secret's exposure ranks it among; at least two,
    to fit the extrapolated exposure's distribution to."""
    return _count("--decoys", value, 2, " (extrapolated exposure fits a distribution to them)")


def _real(option: str, value: object, fits: Callable[[float], bool], valid: str) -> float:
    """A finite number that `fits`, or the option's error saying what is `valid`."""
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and fits(number)):
        raise OptionError(f"{option}: {value!r} is not {valid}")
    return number


def parse_temperature(value: object) -> float:
    return _real("--temperature", value, lambda t: t >= 0, "a number >= 0")


def parse_top_p(value: object) -> float:
    """--top-p: nucleus sampling, the smallest set of tokens whose probabilities add up to it."""
    return _real("--top-p", value, lambda p: 0 < p <= 1,
                 "a number in (0, 1]; 1 keeps every token")


def parse_top_k(value: object) -> int:
    """--top-k: sample among the k likeliest tokens only; 0 for no such cut."""
    try:
        top_k = int(str(value).strip())
    except ValueError:
        top_k = -1
    if top_k < 0:
        raise OptionError(f"--top-k: {value!r} is not a whole number >= 0; 0 keeps every token")
    return top_k


def parse_endpoint(text: str) -> str:
    """An OpenAI-compatible server's base URL: http(s)://host[:port][/path], trailing / dropped."""
    if not _is_endpoint_url(text.strip()):
        raise OptionError(
            f"--endpoint: {text!r} is not a URL of the form http(s)://host[:port][/path]"
        )
    return text.strip().rstrip("/")


def _is_endpoint_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unclosed IPv6 bracket: http://[::1
        return False
    return bool(
        parts.scheme in ("http", "https")
        and parts.hostname
        and _HOST.fullmatch(parts.hostname)
        and parts.username is None
        and _has_valid_port(parts)
        and not parts.query
        and not parts.fragment
    )


def _has_valid_port(parts: SplitResult) -> bool:
    try:
        return parts.port is None or parts.port > 0
    except ValueError:  # urlsplit checks the port only when it is asked for
        return False


def parse_cache_dir(value: object) -> Path:
    """The given directory, else $LEAKBENCH_CACHE_DIR, else ~/.cache/leakbench; made absolute."""
    chosen = value or os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR
    return parse_output_dir(cache_dir_option(value), chosen).absolute()


def cache_dir_option(value: object) -> str:
    """How the user chose the cache directory (`value` is --cache-dir's), for messages."""
    return CACHE_DIR_ENV if not value and os.environ.get(CACHE_DIR_ENV) else "--cache-dir"


def parse_output_dir(option: str, value: object) -> Path:
    """A directory LeakBench writes into: it may not exist yet, but it may not be a file."""
    path = user_path(option, value)
    try:
        not_a_directory = path.exists() and not path.is_dir()
    except OSError as err:  # e.g. a name too long for the file system
        raise OptionError(f"{option}: {str(path)!r}: {err.strerror}") from None
    if not_a_directory:
        raise OptionError(f"{option}: {str(path)!r} exists and is not a directory")
    return path


def check_writable(option: str, path: Path) -> None:
    """Refuse directory `path` unless files can be created in it, or, while it does not exist,
    in its nearest existing ancestor (where it would be made).

    Tried, not read from permission bits: root ignores them, and a read-only mount shows only
    when written to. The probe file is removed at once; nothing else is created.
    """
    try:
        existing = path
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise OptionError(f"{option}: {str(path)!r} cannot be made: {str(existing)!r} is "
                              "not a directory; choose a writable directory")
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".leakbench-write-check-"):
            pass
    except OSError as err:
        where = "" if existing == path else f" (it would be made in {str(existing)!r})"
        raise OptionError(f"{option}: {str(path)!r} is not writable{where}: "
                          f"{err.strerror or err}; choose a writable directory") from None


def user_path(option: str, value: object) -> Path:
    """`value` as a path with ~ expanded."""
    try:
        return Path(str(value)).expanduser()
    except RuntimeError:  # ~name of no known user, or no home directory
        raise OptionError(f"{option}: {str(value)!r}: cannot find the home directory its ~ "
                          "names; write the path out") from None


def parse_cases_dir(value: object) -> Path | None:
    if not value:
        return None
    path = user_path("--cases-dir", value)
    expected = f"give the directory that holds {FORGET_FILE}, {HOLDOUT_FILE} and your case files"
    try:
        if not path.is_dir():
            raise OptionError(f"--cases-dir: {path} is not a directory; {expected}")
        missing = [name for name in (FORGET_FILE, HOLDOUT_FILE) if not (path / name).is_file()]
    except OSError as err:  # e.g. a name too long for the file system
        raise OptionError(f"--cases-dir: {str(path)!r}: {err.strerror}; {expected}") from None
    if missing:
        raise OptionError(f"--cases-dir: {path} lacks {' and '.join(missing)}; {expected} "
                          "(copy the two from cases/)")
    return path
