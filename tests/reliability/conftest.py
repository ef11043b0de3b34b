"""The benchmark runs that the reliability checks read, each run once per pytest run.

Heavy runs (a vLLM engine, a model build) are serialized through one lock, and their results are
shared by the xdist workers through files (reliability_helpers.once): `pytest tests -n 2` starts
each of them once, never two at a time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from reliability_helpers import (
    ENDPOINT_SUBSET,
    SHOWN_PROBE,
    as_run,
    benchmark_command,
    built_artifacts,
    corrupt,
    endpoint_completions,
    heavy,
    interrupt_during_generation,
    once,
    run_benchmark,
    run_dict,
    seed,
    shared_dir,
)

from leakbench.completions import Store


@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> Path:
    return shared_dir(tmp_path_factory)


@pytest.fixture(scope="session")
def micro_artifacts(shared: Path, cache_dir: Path) -> dict:
    """micro's base, planted and kl artifacts, built (or found) in the shared cache."""

    def build(_directory: Path) -> dict:
        with heavy(shared):
            return {"cache_dir": str(cache_dir), **built_artifacts(cache_dir)}

    return once(shared, "artifacts", build)


def _engine_jobs(cache: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted((cache / "engine").glob("*/job.json"))}


@pytest.fixture(scope="session")
def micro_runs(shared: Path, micro_artifacts: dict) -> dict:
    """The shared micro benchmark, run twice on one cache: `first` generates every completion
    (one engine), `second` reads them back. Both greedy, same seed, --junitxml, --report-dir."""

    def compute(directory: Path) -> dict:
        cache = seed(Path(micro_artifacts["cache_dir"]), micro_artifacts, directory / "cache")
        runs = {}
        with heavy(shared):
            for name in ("first", "second"):
                reports, junit = directory / f"reports-{name}", directory / f"junit-{name}.xml"
                command = benchmark_command(cache, reports, f"--junitxml={junit}")
                runs[name] = run_dict(run_benchmark(command, cache, reports, junit=junit))
                runs[f"engine_jobs_after_{name}"] = _engine_jobs(cache)
        return runs

    return once(shared, "micro", compute)


@pytest.fixture(scope="session")
def first_run(micro_runs):
    run = as_run(micro_runs["first"])
    assert run.returncode in (0, 1), run.output[-3000:]  # 1: some probes leak, programs fail
    return run


@pytest.fixture(scope="session")
def second_run(micro_runs):
    run = as_run(micro_runs["second"])
    assert run.returncode in (0, 1), run.output[-3000:]
    return run


@pytest.fixture(scope="session")
def leaky(endpoint_runs):
    """The endpoint run whose every forget probe leaks (`endpoint_runs`)."""
    run = as_run(endpoint_runs["leaky"])
    assert run.returncode in (0, 1), run.output[-3000:]
    return run


@pytest.fixture(scope="session")
def fault_runs(shared: Path, micro_artifacts: dict, micro_runs: dict) -> dict:
    """Faults on one cache that starts as a copy of the first micro run's (its artifacts,
    completions and verdicts; not its engine's directory, so that the engine logs and jobs read
    below are this fixture's runs'), with the completion shard of the `none` variant corrupted
    (so `none` must be generated again):

    - `interrupted`: Ctrl-C (SIGINT to the run's process group) while the engine generates;
    - `killed`: the engine process SIGKILLed while it generates;
    - `recovered`: then an ordinary run on the same cache.

    The two faulted runs' engines pause before generating until they are hit (leakbench.serving's
    TEST_PAUSE_ENV), so the hit lands during generation whatever the load; and each faulted run
    starts on a cache where `none` has no valid completion, so it must start an engine.
    """

    def compute(directory: Path) -> dict:
        first = as_run(micro_runs["first"])
        cache = directory / "cache"
        shutil.copytree(first.cache, cache,
                        ignore=lambda path, _: ["engine"] if path == first.cache else [])
        none_key = micro_artifacts["keys"]["none"]
        shards = sorted((cache / "completions" / none_key).glob("*.json"))
        for shard in shards:
            corrupt(shard)
        out = {"corrupted": [str(s) for s in shards], "none_key": none_key,
               "kl_key": micro_artifacts["keys"]["kl"]}

        def sigint(run, _engine_pid):
            os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does

        def sigkill(_run, engine_pid):
            os.kill(engine_pid, signal.SIGKILL)

        with heavy(shared):
            for name, hit in (("interrupted", sigint), ("killed", sigkill)):
                assert not Store(cache / "completions" / none_key).load(), (
                    f"`none` has valid completions in {cache} before the {name} run: it would "
                    "start no engine to interrupt")
                reports = directory / f"reports-{name}"
                command = benchmark_command(cache, reports)
                out[name] = run_dict(interrupt_during_generation(
                    command, cache, reports, hit, directory / f"engine-paused-{name}"))
                out[f"engine_logs_{name}"] = {
                    str(p): p.read_text(errors="replace")
                    for p in (cache / "engine").glob("*/engine.log")}
            reports = directory / "reports-recovered"
            jobs_before = _engine_jobs(cache)
            out["recovered"] = run_dict(run_benchmark(benchmark_command(cache, reports), cache,
                                                      reports))
            out["engine_jobs_recovered"] = {
                path: json.loads(Path(path).read_text())["adapters"]
                for path, mtime in _engine_jobs(cache).items() if jobs_before.get(path) != mtime}
            out["shards_recovered"] = {
                key: sorted(p.name for p in (cache / "completions" / key).glob("*.json"))
                for key in (none_key, micro_artifacts["keys"]["kl"])}
        return out

    return once(shared, "faults", compute)


# --- A fake OpenAI-compatible server: every completion chosen by the test -----------------------


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, completions: dict[str, str]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.completions = completions
        self.prompts_seen = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, *args) -> None:  # keep the test's output quiet
        pass

    def _send(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._send({"object": "list", "data": [{"id": "none"}, {"id": "kl"}]})

    def do_POST(self) -> None:  # noqa: N802
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompts = request["prompt"] if isinstance(request["prompt"], list) else [request["prompt"]]
        n = request.get("n", 1)
        self.server.prompts_seen += len(prompts)
        choices = [{"index": i * n + j, "text": self.server.completions.get(prompt, "")}
                   for i, prompt in enumerate(prompts) for j in range(n)]
        self._send({"object": "text_completion", "choices": choices})


@pytest.fixture(scope="session")
def endpoint_runs(shared: Path) -> dict:
    """The benchmark against a fake server (`--endpoint`) that answers every forget probe with
    its secret (or another value of its owner) and every functional task of ENDPOINT_SUBSET
    with a completion of `reliability_helpers.HOSTILE_COMPLETIONS`:

    - `leaky`: the default options, with --junitxml and -rfE (the short summary then lists every
      failed test with its message); every probe leaks, so every leak test fails and says so
      (with the secret masked);
    - `shown`: one leaking probe with --show-secrets.
    No engine, no model: only what the harness does with what the model says."""

    def compute(directory: Path) -> dict:
        server = FakeServer(endpoint_completions())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        out = {}
        try:
            with heavy(shared):
                for name, extra, subset, workers in (
                    ("leaky", ("-rfE",), ENDPOINT_SUBSET, 2),
                    ("shown", ("--show-secrets",), SHOWN_PROBE, None),
                ):
                    cache, reports = directory / f"cache-{name}", directory / f"reports-{name}"
                    junit = directory / f"junit-{name}.xml"
                    command = benchmark_command(
                        cache, reports, f"--endpoint={server.url}", f"--junitxml={junit}",
                        *extra, subset=subset, workers=workers, algos="--algo=none")
                    out[name] = run_dict(run_benchmark(command, cache, reports, junit=junit))
            out["prompts_seen"] = server.prompts_seen
        finally:
            server.shutdown()
            server.server_close()
        return out

    return once(shared, "endpoint", compute)
