"""The plugin as a user meets it: options on the command line, markers, usage errors, --help."""

import pytest

pytest_plugins = ["pytester"]


def _error_lines(result):
    return [line for line in result.outlines + result.errlines if line.startswith("ERROR:")]


def test_options_reach_the_session_fixtures(pytester, tmp_path):
    pytester.makepyfile(
        f"""
        from leakbench.options import Gate
        from leakbench.plugin import RUN_OPTIONS

        def test_options(run_options, model_spec, pytestconfig):
            assert pytestconfig.stash[RUN_OPTIONS] is run_options
            assert run_options.model == "codellama"
            assert model_spec.source == "codellama/CodeLlama-7b-hf"
            assert run_options.algorithms == ("ga", "kl")
            assert (run_options.samples, run_options.temperature) == (4, 0.7)
            assert str(run_options.cache_dir) == {str(tmp_path / "cache")!r}
            assert run_options.endpoint == "http://localhost:8000/v1"
            assert run_options.gates == (
                Gate("direct_leak", "<=", 0.01), Gate("humaneval_pass1", ">=", 0.3)
            )
            assert run_options.rebuild and run_options.show_secrets
        """
    )
    result = pytester.runpytest(
        "--model=codellama",
        "--algo=kl,ga",
        "--samples=4",
        "--temperature=0.7",
        f"--cache-dir={tmp_path / 'cache'}",
        "--endpoint=http://localhost:8000/v1/",
        "--gate=direct_leak<=1%",
        "--gate",
        "humaneval_pass1 >= 0.3",
        "--rebuild",
        "--show-secrets",
    )
    result.assert_outcomes(passed=1)


def test_defaults_reach_the_session_fixtures(pytester):
    pytester.makepyfile(
        """
        def test_defaults(run_options, model_spec):
            assert (run_options.model, model_spec.kind) == ("tiny", "builtin")
            assert run_options.algorithms == ("none", "ga", "gd", "kl")
            assert run_options.gates == ()
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("argument", "error"),
    [
        ("--algo=ga,foo", ("ERROR: --algo: unknown algorithm 'foo'; valid: none, ga, gd, kl, npo, "
         "simnpo, selective, retrain, all, or a comma list")),
        ("--model=xyz", ("ERROR: --model: 'xyz' is not a known model (tiny, micro, codegen, "
         "codellama, codeqwen, aixcoder), an existing directory, or a Hugging Face id like "
         "org/name")),
        ("--gate=leaks<=0.1", ("ERROR: --gate: unknown metric 'leaks' in 'leaks<=0.1'; valid: "
         "direct_leak, indirect_leak, holdout_leak, capability_pass1, humaneval_pass1, "
         "utility_retention, ma, el10, mia_auc, privleak")),
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
def test_invalid_value_is_one_error_line(pytester, argument, error):
    pytester.makepyfile("def test_never_runs(): pass")
    result = pytester.runpytest(argument)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert _error_lines(result) == [error]
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_usage_error_from_the_real_command_line(pytester):
    """In a fresh interpreter, as a user runs it: the entry point loads the plugin."""
    result = pytester.runpytest_subprocess("--algo=foo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.errlines if line.strip()] == [
        (
            "ERROR: --algo: unknown algorithm 'foo'; valid: none, ga, gd, kl, npo, simnpo, "
            "selective, retrain, all, or a comma list"
        )
    ]


def test_leakbench_markers_are_registered(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.direct_leak
        @pytest.mark.indirect_leak
        @pytest.mark.holdout
        @pytest.mark.functional
        def test_marked():
            pass
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_unregistered_marker_fails_under_strict_markers(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.direct_leaks
        def test_misspelled():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*'direct_leaks' not found in `markers` configuration option*"])


def test_help_shows_the_leakbench_group(pytester):
    result = pytester.runpytest("--help")
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
        "--cache-dir=CACHE_DIR",
        "--rebuild",
        "--endpoint=ENDPOINT",
        (
            "--gate=METRIC<OP>NUMBER exit status condition, repeatable, e.g. "
            "'direct_leak<=0.01' or 'direct_leak<=1%'; ops <=, >=, <, >, ==; metrics: direct_leak"
        ),
        "--show-secrets",
    ]:
        assert text in group


def test_the_plugin_and_the_pipeline_import_no_torch():
    """Every pytest worker imports them; torch costs each one hundreds of MiB, and most workers
    only read cached artifacts (the peak memory of `-n 8` went from 1.11x to 1.38x that of
    `-n 1` when a module-level `import torch` crept in through algorithms.batches)."""
    import subprocess
    import sys

    code = ("import sys, leakbench.plugin, leakbench.pipeline, benchmark; "
            "print(sorted(m for m in ('torch', 'transformers', 'vllm') if m in sys.modules))")
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip()
    assert imported == "[]"
