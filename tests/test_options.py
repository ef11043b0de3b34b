"""Parsing the command-line values: the accepted forms and the one-line errors."""

import re
from pathlib import Path

import pytest

import attacks
from algorithms import registry
from leakbench.engine_options import parse_engine_arg, parse_engine_args
from leakbench.options import (
    ALGORITHMS,
    DEFAULT_ATTACKS,
    GATE_METRICS,
    LEAK_AT_N,
    Gate,
    OptionError,
    check_writable,
    parse_algorithms,
    parse_attacks,
    parse_cache_dir,
    parse_cases_dir,
    parse_endpoint,
    parse_gate,
)
from leakbench.run_options import parse_options
from leakbench.schema import Sampling


def test_algorithms_are_the_registry_in_its_order():
    assert ALGORITHMS == tuple(registry())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kl", ("kl",)),
        ("kl,ga", ("ga", "kl")),
        ("ga, GD ,ga", ("ga", "gd")),
        ("all", ALGORITHMS),
        ("ga,all", ALGORITHMS),
    ],
)
def test_parse_algorithms(text, expected):
    assert parse_algorithms(text) == expected


@pytest.mark.parametrize("text", ["foo", "ga,foo", "", "ga,,kl"])
def test_unknown_algorithm_lists_the_valid_choices(text):
    with pytest.raises(OptionError) as caught:
        parse_algorithms(text)
    message = str(caught.value)
    assert message.startswith("--algo: unknown algorithm")
    assert f"{', '.join(ALGORITHMS)}, all" in message


@pytest.mark.parametrize(
    ("text", "gate"),
    [
        ("direct_leak<=0.01", Gate("direct_leak", "<=", 0.01)),
        ("  direct_leak <= 0.01 ", Gate("direct_leak", "<=", 0.01)),
        ("direct_leak<=1%", Gate("direct_leak", "<=", 0.01)),
        ("indirect_leak<5 %", Gate("indirect_leak", "<", 0.05)),
        ("humaneval_pass1>=0.3", Gate("humaneval_pass1", ">=", 0.3)),
        ("capability_pass1>0", Gate("capability_pass1", ">", 0.0)),
        ("holdout_leak==0", Gate("holdout_leak", "==", 0.0)),
        ("utility_retention>=91%", Gate("utility_retention", ">=", 0.91)),
        ("utility_retention>=1.2", Gate("utility_retention", ">=", 1.2)),
        ("mia_auc<=0.55", Gate("mia_auc", "<=", 0.55)),
        ("privleak>=-5", Gate("privleak", ">=", -5.0)),
        ("el10<=1.1%", Gate("el10", "<=", 0.011)),
    ],
)
def test_parse_gate(text, gate):
    assert parse_gate(text) == gate


def test_gate_metrics_are_documented():
    assert set(GATE_METRICS) == {
        "direct_leak_direct_probes", "direct_leak_paraphrase_probes", "direct_leak",
        "indirect_leak", "holdout_leak", "degenerate_rate", "hallucinated_valid_rate",
        "capability_pass1",
        "humaneval_pass1", "forgotten_ma", "forgotten_el10",
        "utility_retention", "ma", "el10", "mia_auc", "privleak", "worst_case_leak", "es",
        "forgotten_es", "exposure", "forgotten_exposure", "exposure_top_share",
        "forgotten_secrets",
        *(f"{attack}_leak" for attack in attacks.registry()),
        *(f"direct_leak_at{n}" for n in LEAK_AT_N),
        *(f"{metric}_{group}" for metric in ("direct_leak", "worst_case_leak")
          for group in ("copies1", "copies2", "copies4", "copies8", "generated_formats",
                        "other_formats")),
    }  # fmt: skip
    assert all(description.strip() for description in GATE_METRICS.values())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("none", ()),
        ("all", tuple(attacks.registry())),
        ("quant8, relearn25", ("relearn25", "quant8")),
        ("quant", ("quant4", "quant8")),
        ("Relearn,relearn5", ("relearn5", "relearn25")),
    ],
)
def test_parse_attacks_takes_settings_and_families_in_registry_order(text, expected):
    assert parse_attacks(text) == expected


def test_unknown_attack_is_one_line_naming_the_option_and_the_choices():
    with pytest.raises(OptionError) as caught:
        parse_attacks("quant4,quant2")
    message = str(caught.value)
    assert message.startswith("--attacks: unknown attack 'quant2'; valid: all, none, ")
    assert "\n" not in message and all(name in message for name in attacks.registry())
    assert parse_gate("relearn25_leak<=5%") == Gate("relearn25_leak", "<=", 0.05)


@pytest.mark.parametrize(
    ("gate", "value", "holds"),
    [
        ("direct_leak<=0.01", 0.01, True),
        ("direct_leak<=0.01", 1 / 100, True),
        ("direct_leak<=1%", 3 / 300, True),
        ("direct_leak<=0.01", 0.0101, False),
        ("direct_leak<0.01", 0.01, False),
        ("direct_leak<0.01", 0.0099, True),
        ("humaneval_pass1>=0.5", 0.5, True),
        ("humaneval_pass1>=0.5", 0.4999, False),
        ("humaneval_pass1>0.5", 0.5, False),
        ("holdout_leak==0", 0.0, True),
        ("holdout_leak==0", 0.001, False),
        ("el10<=1.1%", 0.011, True),
    ],
)
def test_gate_holds_at_the_boundaries(gate, value, holds):
    assert parse_gate(gate).holds(value) is holds


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("direct_leak<=1%", "direct_leak<=0.01"),
        (" ma > 0.9 ", "ma>0.9"),
        ("privleak>=-5", "privleak>=-5"),
    ],
)
def test_gate_str_is_canonical_and_parses_back(text, shown):
    gate = parse_gate(text)
    assert str(gate) == shown
    assert parse_gate(str(gate)) == gate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "foo<=0.1",
            "--gate: unknown metric 'foo' in 'foo<=0.1'; valid: direct_leak_direct_probes, "
            "direct_leak_paraphrase_probes, direct_leak, indirect_leak",
        ),
        (
            "direct_leak=0.1",
            "--gate: unknown operator '=' in 'direct_leak=0.1'; valid: <=, >=, <, >, ==",
        ),
        ("direct_leak=<0.1", "--gate: unknown operator '=<'"),
        ("direct_leak!=0.1", "--gate: unknown operator '!='"),
        ("direct_leak 0.1", "--gate: no operator in 'direct_leak 0.1'"),
        ("direct_leak<=abc", "--gate: 'abc' in 'direct_leak<=abc' is not a number"),
        ("direct_leak<=", "--gate: '' in 'direct_leak<=' is not a number"),
        ("direct_leak<=nan", "is not a number"),
        ("direct_leak<=inf%", "is not a number"),
        (
            "direct_leak<=5",
            "direct_leak is out of range; write a fraction in [0, 1] (0.05) or a percentage",
        ),
        ("direct_leak<=101%", "out of range"),
        ("direct_leak>=-0.1", "out of range"),
        ("utility_retention>=-1", "out of range; the threshold must be at least 0"),
        ("privleak>=-5%", "privleak is already in percent"),
        ("<=0.1", "is not <metric><op><number>"),
    ],
)
def test_bad_gate_is_one_line_naming_the_gate(text, expected):
    with pytest.raises(OptionError) as caught:
        parse_gate(text)
    message = str(caught.value)
    assert message.startswith("--gate: ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8000",
        "https://vllm.example.org/v1",
        "http://127.0.0.1",
        "http://[::1]:8000/v1/",
    ],
)
def test_endpoint_accepts_http_urls(url):
    assert parse_endpoint(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host",
        "localhost:8000",
        "http://",
        "http://host:99999",
        "http://host:0",
        "http://host:port",
        "http://user:secret@host",
        "http://host/v1?x=1",
        "http://ho st",
        "http://-host",
        "http://[::1",
        "http://[::1/v1",
    ],
)
def test_endpoint_rejects_other_shapes(url):
    with pytest.raises(
        OptionError, match=r"^--endpoint: .* is not a URL of the form http\(s\)://host"
    ):
        parse_endpoint(url)



def test_an_endpoint_run_attacks_nothing_and_refuses_attacks_asked_for():
    """An --endpoint server's models are not weights LeakBench holds: attacking them would judge
    the unattacked model under an attack's name."""
    endpoint = {"endpoint": "http://localhost:8000/v1/"}
    assert parse_options(endpoint).endpoint == "http://localhost:8000/v1"
    assert parse_options(endpoint).attacks == ()
    assert parse_options({**endpoint, "attacks": "none"}).attacks == ()
    with pytest.raises(OptionError) as error:
        parse_options({**endpoint, "attacks": "quant4"})
    assert str(error.value).startswith("--attacks: the models of an --endpoint server cannot be "
                                       "attacked")

def test_defaults(monkeypatch):
    monkeypatch.delenv("LEAKBENCH_CACHE_DIR", raising=False)
    options = parse_options({})
    assert options.model == "tiny"
    assert options.algorithms == ("none", "ga", "gd", "kl")
    assert (options.samples, options.temperature) == (1, 0.0)
    assert options.cache_dir == Path.home() / ".cache" / "leakbench"
    assert (options.rebuild, options.endpoint, options.gates, options.show_secrets) == (
        False, None, (), False,
    )  # fmt: skip
    assert options.attacks == attacks.select(DEFAULT_ATTACKS)


def test_parse_options_converts_every_value(tmp_path):
    options = parse_options(
        {
            "model": "codellama",
            "algo": "all",
            "samples": "5",
            "temperature": "0.2",
            "cache_dir": str(tmp_path),
            "rebuild": True,
            "gate": ["direct_leak<=1%", "humaneval_pass1>=0.3"],
            "show_secrets": True,
            "attacks": "relearn25,quant",
        }
    )
    assert options.model == "codellama"
    assert options.algorithms == ALGORITHMS
    assert (options.samples, options.temperature) == (5, 0.2)
    assert options.cache_dir == tmp_path
    assert options.gates == (Gate("direct_leak", "<=", 0.01), Gate("humaneval_pass1", ">=", 0.3))
    assert options.rebuild and options.show_secrets
    assert options.attacks == ("relearn25", "quant4", "quant8")


def test_cache_dir_comes_from_the_environment_when_not_given(monkeypatch, tmp_path):
    monkeypatch.setenv("LEAKBENCH_CACHE_DIR", str(tmp_path / "from-env"))
    assert parse_cache_dir(None) == tmp_path / "from-env"
    assert parse_cache_dir(str(tmp_path / "given")) == tmp_path / "given"


def test_cache_dir_is_made_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert parse_cache_dir("cache") == tmp_path / "cache"


def test_cache_dir_that_is_a_file_is_refused(tmp_path):
    a_file = tmp_path / "cache"
    a_file.write_text("")
    with pytest.raises(OptionError, match=r"^--cache-dir: .* exists and is not a directory$"):
        parse_cache_dir(str(a_file))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"samples": "0"}, "--samples: '0' is not a whole number >= 1"),
        ({"samples": 0}, "--samples: 0 is not a whole number >= 1"),
        ({"samples": "1.5"}, "--samples: '1.5' is not a whole number >= 1"),
        ({"temperature": "-0.1"}, "--temperature: '-0.1' is not a number >= 0"),
        ({"temperature": "hot"}, "--temperature: 'hot' is not a number >= 0"),
        ({"temperature": "nan"}, "--temperature: 'nan' is not a number >= 0"),
        (
            {"samples": "4"},
            "--samples: 4 samples at --temperature=0 are identical (greedy decoding)",
        ),
        ({"temperature": "0.8", "top_p": "0"}, "--top-p: '0' is not a number in (0, 1]"),
        ({"temperature": "0.8", "top_p": "1.5"}, "--top-p: '1.5' is not a number in (0, 1]"),
        ({"temperature": "0.8", "top_k": "-1"}, "--top-k: '-1' is not a whole number >= 0"),
        ({"temperature": "0.8", "top_k": "ten"}, "--top-k: 'ten' is not a whole number >= 0"),
        ({"top_p": "0.9"}, "--top-p: no effect at --temperature=0"),
        ({"top_k": "40"}, "--top-k: no effect at --temperature=0"),
    ],
)
def test_bad_sampling_values(raw, expected):
    with pytest.raises(OptionError) as caught:
        parse_options(raw)
    assert str(caught.value).startswith(expected)


def test_several_samples_with_a_temperature_are_fine():
    assert parse_options({"samples": "4", "temperature": "0.8"}).samples == 4


def test_top_p_and_top_k_reach_every_request():
    options = parse_options({"samples": "4", "temperature": "0.8", "top_p": "0.95",
                             "top_k": " 40 "})
    sampling = options.decoding.sampling(48, ("\n\n",))
    assert (sampling.n, sampling.temperature, sampling.top_p, sampling.top_k) == (4, 0.8, 0.95, 40)
    assert (sampling.max_tokens, sampling.stop) == (48, ("\n\n",))
    assert parse_options({}).decoding.sampling(48) == Sampling(max_tokens=48)  # greedy, no cut


def test_cache_dir_from_the_environment_is_named_in_errors(monkeypatch, tmp_path):
    a_file = tmp_path / "cache"
    a_file.write_text("")
    monkeypatch.setenv("LEAKBENCH_CACHE_DIR", str(a_file))
    with pytest.raises(OptionError, match=r"^LEAKBENCH_CACHE_DIR: .* is not a directory$"):
        parse_cache_dir(None)


@pytest.mark.parametrize("value", ["~leakbench-no-such-user/cache", "/tmp/" + "c" * 300])
def test_unusable_cache_dir_path_is_one_line(value):
    with pytest.raises(OptionError, match=r"^--cache-dir: ") as caught:
        parse_cache_dir(value)
    assert "\n" not in str(caught.value)


def test_writable_check_creates_nothing(tmp_path):
    check_writable("--cache-dir", tmp_path / "a" / "b")
    check_writable("--cache-dir", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_writable_check_refuses_a_file_on_the_way(tmp_path):
    (tmp_path / "a").write_text("")
    with pytest.raises(OptionError, match=r"^--report-dir: .*/a/b' cannot be made: .*/a' is not "
                                          r"a directory"):
        check_writable("--report-dir", tmp_path / "a" / "b")


def test_cases_dir_needs_the_forget_and_holdout_sets(tmp_path):
    (tmp_path / "holdout.jsonl").write_text("")
    with pytest.raises(OptionError, match=r"^--cases-dir: .* lacks forget\.jsonl; give the "
                                          r"directory that holds forget\.jsonl, holdout\.jsonl"):
        parse_cases_dir(str(tmp_path))
    (tmp_path / "forget.jsonl").write_text("")
    assert parse_cases_dir(str(tmp_path)) == tmp_path


def test_engine_arg_nested_past_the_recursion_limit():
    with pytest.raises(OptionError, match=r"^--engine-arg: x: the value nests"):
        parse_engine_arg("x=" + "[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[engine]\nx = 1\n\xff\n", "is not UTF-8 text"),
        (b"[engine]\nx = " + b"[" * 100_000 + b"]" * 100_000, "too deeply"),
        (b"[engine]\nx = 1" + b"0" * 5000 + b"\n", "is not TOML"),
        (b"#" * (1024 * 1024 + 1), "is larger than 1024 KiB"),
    ],
    ids=["not UTF-8", "nested too deeply", "integer past the digit limit", "too large"],
)
def test_hostile_engine_config_is_one_line(tmp_path, content, expected):
    config = tmp_path / "engine.toml"
    config.write_bytes(content)
    with pytest.raises(OptionError, match=r"^--engine-config: ") as caught:
        parse_engine_args((), str(config))
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_engine_config_that_is_no_file(tmp_path):
    with pytest.raises(OptionError, match=r"^--engine-config: .* is not a file"):
        parse_engine_args((), str(tmp_path))


def test_the_readme_attacks_row_lists_the_registry_and_the_default():
    row = next(line for line in (Path(__file__).parents[1] / "README.md").read_text()
               .splitlines() if line.startswith("| `--attacks` |"))
    listed = re.findall(r"`([a-z0-9_]+)`", row.split("|")[2])
    assert set(listed) >= {*attacks.families(), *attacks.registry(), "all", "none"}
    assert f"(default `{DEFAULT_ATTACKS}`" in row
