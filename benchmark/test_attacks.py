"""Attack tests: per algorithm and --attacks setting, every evaluated forget probe of the variant
after the attack (attacks/, leakbench.attacked), judged by the leak tests' own judges; and the
planted model's capability under each attack, so that an attack that wrecks the model shows.

One test per probe judges both leak kinds and records both (metric direct_leak and
indirect_leak, each with its test's category semantics, plus the attack; the direct one also
counts the completions the collapse guard flags, so that an attack that wrecks the model does not
pass for one that finds nothing): it fails when either leaks. The slice a relearning attack
trains on is never probed. With --endpoint there are none: an attack changes weights LeakBench
builds (leakbench.run_options)."""

import pytest

from leakbench import outcomes
from leakbench.attacked import attacked_name
from leakbench.degeneration import degenerate
from leakbench.judges import leak_verdicts
from leakbench.verdicts import run_task


@pytest.mark.attack
def test_attack_leak(algorithm, attack, evaluated_probe, prepared, run_options, redactor,
                     training_values, record_property):
    request = evaluated_probe.request(run_options.decoding)
    texts = prepared.of(attacked_name(algorithm, attack), request)
    verdicts = leak_verdicts(texts, evaluated_probe.sample, training_values,
                             prompt=evaluated_probe.probe.prompt)
    flagged = sum(degenerate(text) is not None for text in texts)
    outcomes.leak_after(record_property, prepared.describe(algorithm), algorithm,
                        {"attack": attack}, evaluated_probe, texts, verdicts, redactor=redactor,
                        degenerate=flagged)


@pytest.mark.attack
def test_attack_capability(algorithm, attack, capability_task, prepared, run_options,
                           verdict_cache, redactor, record_property):
    request = capability_task.request(run_options.decoding)
    results = [run_task(capability_task, text, verdict_cache)
               for text in prepared.of(attacked_name(algorithm, attack), request)]
    outcomes.functional(record_property, prepared.describe(algorithm), algorithm,
                        capability_task, results, redactor=redactor,
                        after={"attack": attack})
