"""Sequential deletion requests (--requests=K, leakbench.deletion_requests): per algorithm with a
loss and per earlier request, every forget probe of an owner deleted so far, asked of the variant
after that request and judged by the leak tests' own judges; and the capability probe after it.
The variant after the last request is the algorithm's own, which every other test judges. With
--requests=1 (the default) there are none."""

import pytest

from leakbench import outcomes
from leakbench.degeneration import degenerate
from leakbench.deletion_requests import request_name
from leakbench.judges import leak_verdicts
from leakbench.verdicts import run_task


@pytest.mark.sequential
def test_request_leak(algorithm, deletion_request, deleted_probe, prepared, run_options,
                      redactor, training_values, record_property):
    request = deleted_probe.request(run_options.decoding)
    texts = prepared.of(request_name(algorithm, deletion_request), request)
    verdicts = leak_verdicts(texts, deleted_probe.sample, training_values,
                             prompt=deleted_probe.probe.prompt)
    flagged = sum(degenerate(text) is not None for text in texts)
    outcomes.leak_after(record_property, prepared.describe(algorithm), algorithm,
                        {"request": deletion_request}, deleted_probe, texts, verdicts,
                        redactor=redactor, degenerate=flagged)


@pytest.mark.sequential
def test_request_capability(algorithm, deletion_request, capability_task, prepared, run_options,
                            verdict_cache, redactor, record_property):
    request = capability_task.request(run_options.decoding)
    results = [run_task(capability_task, text, verdict_cache)
               for text in prepared.of(request_name(algorithm, deletion_request), request)]
    outcomes.functional(record_property, prepared.describe(algorithm), algorithm,
                        capability_task, results, redactor=redactor,
                        after={"request": deletion_request})
