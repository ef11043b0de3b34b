"""The plugin as a user meets it: options on the command line, markers, usage errors, --help,
the hooks a conftest.py implements, and nothing of it where no benchmark is run."""

import json

import pytest

import attacks
from leakbench.options import LEAK_AT_N

pytest_plugins = ["pytester"]


def _error_lines(result):
    return [line for line in result.outlines + result.errlines if line.startswith("ERROR:")]


def test_options_reach_the_session_fixtures(benchmark_pytester, tmp_path):
    benchmark_pytester.makepyfile(
        f"""
        from leakbench.options import Gate
        from leakbench.plugin.command_line import RUN_OPTIONS

        def test_options(run_options, model_spec, pytestconfig):
            assert pytestconfig.stash[RUN_OPTIONS] is run_options
            assert run_options.model == "codellama"
            assert model_spec.source == "codellama/CodeLlama-7b-hf"
            assert run_options.algorithms == ("ga", "kl")
            assert (run_options.samples, run_options.temperature) == (4, 0.7)
            assert (run_options.top_p, run_options.top_k) == (0.9, 50)
            assert str(run_options.cache_dir) == {str(tmp_path / "cache")!r}
            assert run_options.endpoint == "http://localhost:8000/v1"
            assert run_options.gates == (
                Gate("direct_leak", "<=", 0.01), Gate("humaneval_pass1", ">=", 0.3)
            )
            assert run_options.rebuild and run_options.show_secrets
        """
    )
    result = benchmark_pytester.runpytest(
        "--model=codellama",
        "--algo=kl,ga",
        "--samples=4",
        "--temperature=0.7",
        "--top-p=0.9",
        "--top-k=50",
        f"--cache-dir={tmp_path / 'cache'}",
        "--endpoint=http://localhost:8000/v1/",
        "--gate=direct_leak<=1%",
        "--gate",
        "humaneval_pass1 >= 0.3",
        "--rebuild",
        "--show-secrets",
    )
    result.assert_outcomes(passed=1)


def test_defaults_reach_the_session_fixtures(benchmark_pytester):
    benchmark_pytester.makepyfile(
        """
        def test_defaults(run_options, model_spec):
            assert (run_options.model, model_spec.kind) == ("tiny", "builtin")
            assert run_options.algorithms == ("none", "ga", "gd", "kl")
            assert run_options.gates == ()
        """
    )
    benchmark_pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("argument", "error"),
    [
        ("--algo=ga,foo", ("ERROR: --algo: unknown algorithm 'foo'; valid: none, ga, gd, kl, npo, "
         "simnpo, selective, kl_far, retrain, all, or a comma list")),
        ("--model=xyz", ("ERROR: --model: 'xyz' is not a known model (tiny, micro, codegen, "
         "codellama, codeqwen, aixcoder), an existing directory, or a Hugging Face id like "
         "org/name")),
        ("--gate=leaks<=0.1", ("ERROR: --gate: unknown metric 'leaks' in 'leaks<=0.1'; valid: "
         "direct_leak_direct_probes, direct_leak_paraphrase_probes, direct_leak, indirect_leak, "
         "holdout_leak, degenerate_rate, hallucinated_valid_rate, "
         f"{', '.join(f'direct_leak_at{n}' for n in LEAK_AT_N)}, capability_pass1, "
         "humaneval_pass1, utility_retention, ma, el10, forgotten_ma, forgotten_el10, "
         "forgotten_secrets, es, forgotten_es, exposure, forgotten_exposure, exposure_top_share, "
         "mia_auc, privleak, "
         f"{', '.join(f'{a}_leak' for a in attacks.registry())}, worst_case_leak, "
         "direct_leak_copies1, worst_case_leak_copies1, direct_leak_copies2, "
         "worst_case_leak_copies2, direct_leak_copies4, worst_case_leak_copies4, "
         "direct_leak_copies8, worst_case_leak_copies8, direct_leak_generated_formats, "
         "worst_case_leak_generated_formats, direct_leak_other_formats, "
         "worst_case_leak_other_formats")),
        ("--attacks=quant,quant3", ("ERROR: --attacks: unknown attack 'quant3'; valid: all, none, "
         f"{', '.join([*attacks.families(), *attacks.registry()])}, or a comma list")),
        ("--gate=direct_leak=>0.1", ("ERROR: --gate: unknown operator '=>' in 'direct_leak=>0.1'; "
         "valid: <=, >=, <, >, ==")),
        ("--samples=0", "ERROR: --samples: '0' is not a whole number >= 1"),
        ("--samples=3", ("ERROR: --samples: 3 samples at --temperature=0 are identical (greedy "
         "decoding); set --temperature above 0 or use --samples=1")),
        ("--temperature=-1", "ERROR: --temperature: '-1' is not a number >= 0"),
        ("--endpoint=localhost:8000", ("ERROR: --endpoint: 'localhost:8000' is not a URL of the "
         "form http(s)://host[:port][/path]")),
    ],
)  # fmt: skip
def test_invalid_value_is_one_error_line(benchmark_pytester, argument, error):
    benchmark_pytester.makepyfile("def test_never_runs(): pass")
    result = benchmark_pytester.runpytest(argument)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert _error_lines(result) == [error]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_usage_error_from_the_real_command_line(benchmark_pytester):
    """In a fresh interpreter, as a user runs it: the conftest.py activates the plugin."""
    result = benchmark_pytester.runpytest_subprocess("--algo=foo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.errlines if line.strip()] == [
        (
            "ERROR: --algo: unknown algorithm 'foo'; valid: none, ga, gd, kl, npo, simnpo, "
            "selective, kl_far, retrain, all, or a comma list"
        )
    ]


def test_leakbench_markers_are_registered(benchmark_pytester):
    benchmark_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.direct_leak
        @pytest.mark.indirect_leak
        @pytest.mark.holdout
        @pytest.mark.functional
        @pytest.mark.attack
        def test_marked():
            pass
        """
    )
    benchmark_pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_unregistered_marker_fails_under_strict_markers(benchmark_pytester):
    benchmark_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.direct_leaks
        def test_misspelled():
            pass
        """
    )
    result = benchmark_pytester.runpytest("--strict-markers")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*'direct_leaks' not found in `markers` configuration option*"])


def test_help_shows_the_leakbench_group(benchmark_pytester):
    result = benchmark_pytester.runpytest("--help")
    assert result.ret == pytest.ExitCode.OK
    lines = result.outlines
    start = lines.index("LeakBench: leaks and utility after machine unlearning:")
    group = " ".join(" ".join(lines[start : lines.index("", start)]).split())  # unwrapped
    for text in [
        (
            "--model=MODEL model to test (default: tiny): tiny (leakbench.tiny), micro "
            "(leakbench.tiny), codegen (Salesforce/codegen25-7b-mono_P), codellama "
            "(codellama/CodeLlama-7b-hf), codeqwen (Qwen/CodeQwen1.5-7B), aixcoder "
            "(aiXcoder/aixcoder-7b-base), a Hugging Face id"
        ),
        "--algo=ALGO unlearning algorithms, 'all' or a comma list (default: none,ga,gd,kl)",
        "gd = GA+GD: gradient ascent on the forget set, gradient descent on the retain set",
        "--samples=SAMPLES",
        "--temperature=TEMPERATURE",
        "--top-p=TOP_P",
        "--top-k=TOP_K",
        "--cache-dir=CACHE_DIR",
        "--rebuild",
        "--endpoint=ENDPOINT",
        (
            "--gate=METRIC<OP>NUMBER exit status condition, repeatable, e.g. "
            "'direct_leak<=0.01' or 'direct_leak<=1%'; ops <=, >=, <, >, ==; metrics: direct_leak"
        ),
        "--show-secrets",
        "--attacks=ATTACKS attacks applied to every variant before the attack tests probe it, "
        "'all', 'none' or a comma list of families and settings (default: quant,relearn5; none "
        "with --endpoint): ",
        *(f"{f.name} = {', '.join(f.settings)}: {f.description}"
          for f in attacks.families().values()),
    ]:
        assert text in group
    markers = benchmark_pytester.runpytest("--markers").stdout.str()
    for family in attacks.families():
        assert f"@pytest.mark.{family}: attack tests of the {family} family" in markers


def test_the_plugin_and_the_pipeline_import_no_torch():
    """Every pytest worker imports them; torch costs each one hundreds of MiB, and most workers
    only read cached artifacts (the peak memory of `-n 8` went from 1.11x to 1.38x that of
    `-n 1` when a module-level `import torch` crept in through algorithms.batches)."""
    import subprocess
    import sys

    code = ("import sys, leakbench.plugin.command_line, leakbench.plugin.collection, "
            "leakbench.plugin.preparation, leakbench.plugin.reporting, leakbench.pipeline; "
            "print(sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules))")
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert imported == "[]"


UNRELATED = """
    def pytest_addoption(parser):
        parser.addoption("--model", default="theirs", help="this project's own --model")


    def pytest_configure(config):
        print("model option:", config.getoption("model"))
"""


def test_a_run_without_a_benchmark_sees_nothing_of_the_plugin(pytester):
    """Another project in the same environment: its own --model works, and LeakBench adds no
    option, marker, fixture, patch of pytest or output."""
    pytester.makeconftest(UNRELATED)
    pytester.makepyfile("""
        def test_plain(request):
            reporter = request.config.pluginmanager.getplugin("terminalreporter")
            assert "_get_teardown_reports" not in vars(reporter)  # pytest's lookup, unpatched
            assert not {"prepared", "run_options"} & set(request.fixturenames)
            assert False, "fails, so that the FAILURES section is built"
        """)
    result = pytester.runpytest_subprocess("--model=mine")
    result.assert_outcomes(failed=1)
    assert "model option: mine" in result.outlines
    shown = pytester.runpytest_subprocess("--help", "--markers")
    everything = "\n".join(result.outlines + result.errlines + shown.outlines + shown.errlines)
    assert "leakbench" not in everything.lower()
    assert "direct_leak" not in everything and "--gate" not in everything


ROW_HOOKS = """
    pytest_plugins = ("leakbench.plugin",)


    def pytest_leakbench_row_metrics(config, model, algorithm, records):
        emails = [r for r in records if r.metric == "direct_leak" and r.id.startswith("email-")]
        if emails:
            return {"email_direct_leak": sum(r.category != "none" for r in emails) / len(emails)}


    def pytest_leakbench_update_json(config, results):
        results["manifest"]["ci_job"] = "job-7"
"""


def test_hooks_add_a_column_and_change_the_results_json(benchmark_pytester):
    benchmark_pytester.makeconftest(ROW_HOOKS)
    benchmark_pytester.makepyfile("""
        import json
        import pytest

        RECORDS = [("email-a", "direct"), ("email-b", "none"), ("phone-c", "direct")]

        @pytest.mark.direct_leak
        @pytest.mark.parametrize(("id", "category"), RECORDS)
        def test_probe(id, category, record_property):
            record_property("leakbench", json.dumps({
                "metric": "direct_leak", "algorithm": "kl", "model": "tiny", "id": id,
                "split": "forget", "category": category, "positives": 0, "samples": 1}))
        """)
    result = benchmark_pytester.runpytest("--report-dir=out", "--algo=kl")
    result.assert_outcomes(passed=3)
    header = next(line for line in result.outlines if line.startswith("model"))
    row = next(line for line in result.outlines if line.startswith("tiny"))
    assert header.split()[-1] == "email_direct_leak" and row.split()[-1] == "0.500"
    data = json.loads((benchmark_pytester.path / "out" / "results.json").read_text())
    assert data["rows"][0]["metrics"]["email_direct_leak"] == 0.5
    assert data["manifest"]["ci_job"] == "job-7"
    assert "email_direct_leak" in (benchmark_pytester.path / "out" / "results.csv").read_text()


LEAKING_SUITE = """
    import json
    import pytest

    @pytest.mark.direct_leak
    @pytest.mark.parametrize("id", ["email-a", "email-b"])
    def test_probe(id, record_property):
        record_property("leakbench", json.dumps({
            "metric": "direct_leak", "algorithm": "kl", "model": "tiny", "id": id,
            "split": "forget", "category": "direct", "positives": 1, "samples": 1}))
        pytest.fail(f"leak on {id}")
"""


@pytest.mark.parametrize("flag", [None, "-rf"])
def test_the_screen_ends_with_the_result_unless_failures_are_asked_for(benchmark_pytester, flag):
    """A leak is a failed test: pytest's short summary would list every leak after the table."""
    benchmark_pytester.makepyfile(LEAKING_SUITE)
    result = benchmark_pytester.runpytest("--report-dir=out", "--algo=kl", *filter(None, [flag]))
    result.assert_outcomes(failed=2)
    lines = [line for line in result.outlines if line.strip()]
    listed = [line for line in lines if line.startswith("FAILED ")]
    if flag is None:
        assert lines[-2].startswith("LeakBench reports in out: results.md")
        assert "2 failed" in lines[-1] and not listed
    else:
        assert len(listed) == 2 and lines.index(listed[0]) > lines.index(
            next(line for line in lines if line.startswith("LeakBench reports in")))


def test_attacks_on_a_forget_set_of_one_owner_are_one_error_line(benchmark_pytester, tmp_path):
    cases = tmp_path / "one-owner"
    cases.mkdir()
    source = benchmark_pytester.path / "cases"
    lines = (source / "forget.jsonl").read_text().splitlines()
    (cases / "forget.jsonl").write_text("\n".join(lines[:2]) + "\n")  # both of person-0001
    (cases / "holdout.jsonl").write_text((source / "holdout.jsonl").read_text())
    benchmark_pytester.makepyfile("def test_never_runs(): pass")
    result = benchmark_pytester.runpytest(f"--cases-dir={cases}", "--attacks=quant8")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert _error_lines(result) == [
        "ERROR: --attacks: a relearn slice needs at least 2 planted owners (one to train on, one "
        "to judge); the forget set has 1; or choose --attacks=none"]
    benchmark_pytester.runpytest(f"--cases-dir={cases}", "--attacks=none").assert_outcomes(
        passed=1)


def test_requests_are_keyed_by_attacked_variant_and_skipped_placeholders_ask_nothing():
    from types import SimpleNamespace

    from leakbench.plugin.preparation import _needed_requests

    class Item:
        def __init__(self, params, skipped=False):
            self.callspec, self.skipped = SimpleNamespace(params=params), skipped

        def get_closest_marker(self, name):
            return name == "skip" and self.skipped or None

    probe = SimpleNamespace(request=lambda decoding: ("probe", decoding))
    items = [Item({"algorithm": "kl", "forget_probe": probe}),
             Item({"algorithm": "kl", "attack": "quant8", "evaluated_probe": probe}),
             Item({"algorithm": "kl", "attack": object(), "evaluated_probe": probe}, True)]
    options = SimpleNamespace(decoding="greedy", endpoint=None)
    assert _needed_requests(SimpleNamespace(items=items), options) == {
        "kl": [("probe", "greedy")], "kl@quant8": [("probe", "greedy")]}


def test_attack_tests_take_each_setting_with_its_family_mark_or_none(benchmark_pytester):
    benchmark_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.attack
        def test_attacked(algorithm, attack):
            pass
        """
    )
    result = benchmark_pytester.runpytest("--algo=kl", "--attacks=quant,relearn5", "-m", "quant",
                                          "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_attacked[[]kl-quant4[]] PASSED*",
                                 "*test_attacked[[]kl-quant8[]] PASSED*"])
    none = benchmark_pytester.runpytest("--algo=kl", "--attacks=none")
    assert none.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    none.stdout.fnmatch_lines(["*1 deselected*"])
    # an --endpoint run attacks nothing (its models are not weights LeakBench holds), so it
    # has no attack test and asks the server for no attacked variant
    served = benchmark_pytester.runpytest("--algo=kl", "--endpoint=http://localhost:8000/v1")
    assert served.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    served.stdout.fnmatch_lines(["*1 deselected*"])


@pytest.mark.slow
def test_xdist_workers_write_no_summary_sections_the_controller_does(benchmark_pytester):
    """Nobody sees a worker's terminal: its FAILURES section was seconds of CPU spent for
    nothing at the end of every run."""
    benchmark_pytester.makeconftest(
        """
        pytest_plugins = ("leakbench.plugin",)

        def pytest_sessionfinish(session):
            name = getattr(session.config, "workerinput", {}).get("workerid", "controller")
            (session.config.rootpath / f"no_summary-{name}").write_text(
                str(session.config.option.no_summary))
        """
    )
    benchmark_pytester.makepyfile("def test_one():\n    assert False\n\n"
                                  "def test_two():\n    assert False\n")
    result = benchmark_pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*= FAILURES =*", "*_ test_one _*"])
    said = {path.name: path.read_text() for path in benchmark_pytester.path.glob("no_summary-*")}
    assert said == {"no_summary-controller": "False", "no_summary-gw0": "True",
                    "no_summary-gw1": "True"}


@pytest.mark.slow
def test_an_unexpected_preparation_error_stops_the_run_at_once(benchmark_pytester):
    """A failure the preparation does not know (here: a broken install) is shown once, with its
    traceback, and ends the run, instead of being raised again by every test that needs it."""
    benchmark_pytester.makeconftest(
        """
        import leakbench.pipeline

        pytest_plugins = ("leakbench.plugin",)

        def prepare(*args, **kwargs):
            raise ModuleNotFoundError("Could not import module 'LlamaConfig'")

        leakbench.pipeline.prepare = prepare
        """
    )
    benchmark_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(40))
        def test_needs_the_run(prepared, n):
            pass
        """
    )
    for workers in (0, 2):
        result = benchmark_pytester.runpytest_subprocess("-n", str(workers),
                                                         "-p", "no:cacheprovider")
        output = result.stdout.str()
        assert result.ret not in (0, 5), output
        outcomes = result.parseoutcomes()
        assert "passed" not in outcomes and 1 <= outcomes["errors"] <= max(1, workers), output
        assert output.count("E   ModuleNotFoundError") <= max(1, workers), output
        assert ("LeakBench could not prepare the run: ModuleNotFoundError: Could not import module "
                "'LlamaConfig'") in output, output
