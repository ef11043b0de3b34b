"""leakbench.atomic: a file is replaced only by a whole new content, and no temporary outlives the
write, whether it succeeded or failed."""

from __future__ import annotations

import pytest

from leakbench.atomic import replacing, write_atomically


def test_a_clean_exit_replaces_the_target(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with replacing(target) as temporary:
        assert temporary.parent == target.parent and temporary != target
        temporary.write_text("new")
        assert target.read_text() == "old"  # not yet: only once the writing returned
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_an_error_leaves_the_target_untouched_and_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_an_error_before_anything_was_written_creates_nothing(tmp_path):
    target = tmp_path / "new.md"
    with pytest.raises(RuntimeError), replacing(target):
        raise RuntimeError("nothing written")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("data, expected", [("text é\n", "text é\n".encode()),
                                            (b"\x00\xffbytes", b"\x00\xffbytes")])
def test_write_atomically_writes_text_as_utf8_and_bytes_as_they_are(tmp_path, data, expected):
    target = tmp_path / "file"
    target.write_bytes(b"before")
    write_atomically(target, data)
    assert target.read_bytes() == expected
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_write_atomically_keeps_the_old_content_when_the_write_fails(tmp_path):
    target = tmp_path / "file"
    target.write_text("before")
    with pytest.raises(TypeError):
        write_atomically(target, 42)  # neither text nor bytes: the write itself fails
    assert target.read_text() == "before"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
