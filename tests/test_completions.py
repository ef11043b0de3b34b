from leakbench.completions import Store, request_key
from leakbench.schema import Request, Sampling

GREEDY = Sampling(max_tokens=8)


def test_only_missing_requests_are_reported(tmp_path):
    store = Store(tmp_path / "v")
    a, b = Request("a", GREEDY), Request("b", GREEDY)
    assert store.missing([a, b, a]) == [a, b]
    store.add([a], [["x"]])
    assert store.missing([a, b]) == [b]
    assert store.load() == {request_key(a): ["x"]}
    assert store.missing([a, b], held=store.load()) == [b]
    assert store.missing([a, b], held={}) == [a, b]  # what the caller loaded, not the disk


def test_sampling_is_part_of_the_key():
    assert request_key(Request("a", GREEDY)) != request_key(
        Request("a", Sampling(max_tokens=8, n=2, temperature=0.8)))


def test_a_corrupted_shard_is_not_trusted(tmp_path):
    store = Store(tmp_path / "v")
    a = Request("a", GREEDY)
    store.add([a], [["x"]])
    shard = next((tmp_path / "v").glob("*.json"))
    shard.write_text(shard.read_text().replace('"x"', '"y"'))
    assert store.missing([a]) == [a]


def test_clear_forgets_everything(tmp_path):
    store = Store(tmp_path / "v")
    a = Request("a", GREEDY)
    store.add([a], [["x"]])
    store.clear()
    assert store.missing([a]) == [a]
