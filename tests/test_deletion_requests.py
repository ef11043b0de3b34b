"""Sequential deletion requests: the split into requests, the tests they collect, their rows in
the report, and a chain of unlearnings on `micro` where each request goes on from the last."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from leakbench import artifacts
from leakbench.cases import load_jsonl
from leakbench.deletion_requests import (
    deleted_owners,
    deletion_requests,
    request_name,
    split_request_name,
)
from leakbench.models import lookup
from leakbench.plant import plant_config
from leakbench.plugin.collection import deleted_probes
from leakbench.probes import PrivacyData
from reports.formatting import cell, header
from reports.records import Collected, parse_record
from reports.render import render
from reports.rows import build_rows
from reports.summary import summarize

ROOT = Path(__file__).resolve().parents[1]


def record(metric, algorithm, id, category, **extra):
    """One record as a test writes it (positives 1 unless the category is none or failed)."""
    fields = {"metric": metric, "algorithm": algorithm, "id": id, "category": category,
              "positives": int(category not in ("none", "failed")), "samples": 1,
              "model": "tiny", **extra}
    if metric.endswith("_leak"):
        fields["split"] = "forget"
    return fields
FORGET = load_jsonl(ROOT / "cases" / "forget.jsonl")[:120]


def test_requests_split_the_owners_into_nearly_equal_disjoint_parts():
    requests = deletion_requests(FORGET, 4)
    owners = [{s.owner for s in request} for request in requests]
    assert all(not a & b for i, a in enumerate(owners) for b in owners[i + 1:])
    assert set().union(*owners) == {s.owner for s in FORGET}
    assert max(map(len, owners)) - min(map(len, owners)) <= 1
    assert sorted(s.id for r in requests for s in r) == sorted(s.id for s in FORGET)
    reordered = deletion_requests(list(reversed(FORGET)), 4)  # the owners decide, not the order
    assert [{s.id for s in r} for r in requests] == [{s.id for s in r} for r in reordered]
    assert deleted_owners(requests, 2) == owners[0] | owners[1]
    assert deletion_requests(FORGET, 1) == [FORGET]


def test_more_requests_than_owners_is_an_error_naming_the_option():
    owners = len({s.owner for s in FORGET})
    with pytest.raises(ValueError, match=rf"--requests={owners + 1}: .* {owners} owners"):
        deletion_requests(FORGET, owners + 1)


def test_a_request_name_round_trips_and_differs_from_an_attacked_name():
    assert split_request_name(request_name("kl", 3)) == ("kl", 3)
    assert split_request_name("kl") is None and split_request_name("kl@relearn5") is None


def test_sequential_tests_ask_each_earlier_request_about_the_owners_deleted_by_then():
    data = PrivacyData.load(ROOT / "cases", plant_config("tiny").forget_samples)
    pairs = deleted_probes(data, 3)
    split = deletion_requests(data.forget, 3)
    for number in (1, 2):
        asked = {p.sample.id for n, p in pairs if n == number}
        assert asked == {s.id for s in data.reported if s.owner in deleted_owners(split, number)}
    assert {n for n, _ in pairs} == {1, 2}
    assert deleted_probes(data, 1) == []


def _collect(*options):
    return subprocess.run([sys.executable, "-m", "pytest", "benchmark", "--model=micro",
                           "--collect-only", "-q", "-p", "no:cacheprovider", *options],
                          cwd=ROOT, capture_output=True, text=True)


@pytest.mark.slow
def test_the_sequential_tests_are_collected_only_with_several_requests():
    once = _collect("--algo=none,kl").stdout
    assert "test_request_" not in once
    thrice = _collect("--algo=none,kl", "--requests=3").stdout
    assert "test_request_leak[kl-request2-" in thrice
    assert "test_request_capability[kl-request1-" in thrice
    assert "test_request_leak[none-" not in thrice  # the planted model serves no request
    assert "test_request_leak[kl-request3-" not in thrice  # the last: the regular tests


@pytest.mark.parametrize("options, message", [
    (("--requests=0",), "--requests: '0' is not a whole number >= 1"),
    (("--requests=100000",), "--requests=100000: the planted forget set has"),
    (("--requests=2", "--endpoint=http://localhost:9"), "--requests: the models of an --endpoint"),
])
def test_a_bad_request_count_is_a_one_line_usage_error(options, message):
    run = _collect(*options)
    assert run.returncode == 4
    assert message in run.stderr


def test_request_records_make_request_metrics_and_leave_the_row_metrics_alone():
    records = [record("direct_leak", "kl", "a", "none"), record("direct_leak", "kl", "b", "none"),
               record("capability", "kl", "t", "passed"),
               record("direct_leak", "kl", "a", "direct", request=1),
               record("indirect_leak", "kl", "a", "partial", request=1),
               record("capability", "kl", "t", "failed", request=1),
               record("direct_leak", "kl", "a", "none", request=2),
               record("direct_leak", "kl", "b", "direct", request=2)]
    row, = build_rows([parse_record(json.dumps(r)) for r in records])
    assert row.metrics["direct_leak"] == 0.0 and row.metrics["capability_pass1"] == 1.0
    assert row.metrics["request1_leak"] == 1.0 and row.metrics["request1_indirect_leak"] == 1.0
    assert row.metrics["request1_capability_pass1"] == 0.0
    assert cell(row, "request2_leak") == "50.0% (1/2)"
    assert header("request2_leak") == "request 2\nleak"
    text = render(summarize(Collected([parse_record(json.dumps(r)) for r in records], []), ()),
                  markdown=True)
    table = text.split("## Sequential deletion requests")[1].split("##")[0]
    assert "request 1 leak" in table and "request 2 capability pass@1" not in table
    assert table.index("request 1 leak") < table.index("request 2 leak")


@pytest.mark.training
def test_each_request_goes_on_from_the_previous_ones_variant(small_cases, cache_dir):
    from leakbench.pipeline import build_variants

    cases = small_cases(24, 16)  # test_privacy_metrics' cases: one planting, one `kl` in the cache
    data = PrivacyData.load(cases)
    variants = build_variants(lookup("micro"), ("none", "kl"), data, cache_dir, False, 3)
    assert set(variants) == {"none", "kl#1", "kl#2", "kl"}
    split = deletion_requests(data.forget, 3)
    chain = [variants["kl#1"], variants["kl#2"], variants["kl"]]
    for number, variant in enumerate(chain):
        inputs = artifacts.read_manifest(variant.adapter)["inputs"]
        assert inputs["forget"] == [s.id for s in split[number]]
        assert inputs.get("after") == (chain[number - 1].key if number else None)
    assert len({v.key for v in chain}) == 3
    assert variants["none"].key != variants["kl"].key
    once = build_variants(lookup("micro"), ("kl",), data, cache_dir, False)
    assert "after" not in artifacts.read_manifest(once["kl"].adapter)["inputs"]
