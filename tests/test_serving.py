import pytest

from leakbench import serving
from leakbench.serving import EngineFailed, EngineJob, Request, Sampling


def test_job_round_trips_through_json():
    job = EngineJob(weights={"/m": ["none", "kl"], "/r": ["retrain"]},
                    adapters={"none": None, "kl": "/a", "retrain": None},
                    requests={"none": [Request("p", Sampling(stop=("\n",)))], "kl": [],
                              "retrain": []})
    assert EngineJob.from_json(job.to_json()) == job


def test_a_failing_engine_names_the_variants_and_shows_its_log(tmp_path):
    job = EngineJob(weights={str(tmp_path / "no-such-model"): ["kl"]}, adapters={"kl": None},
                    requests={"kl": [Request("p", Sampling())]})
    with pytest.raises(EngineFailed) as err:
        serving.run(job, tmp_path / "work", timeout_s=300)
    message = str(err.value)
    assert "variants: kl" in message and "no-such-model" in message
    assert "engine.log" in message and len(message.splitlines()) > 1
