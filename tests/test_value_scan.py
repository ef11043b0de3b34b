"""leakbench.value_scan: a value is found however the formats a run writes have escaped it."""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from leakbench.probes import PrivacyData
from leakbench.value_scan import ValueScan, published_values, readings

ROOT = Path(__file__).resolve().parents[1]
VALUES = ['H#@vcRo&fn^5)&R7', 'pa"ss\\word', "it's-a-key", "Zoë Müller-Łukasz", "key-😀-9"]


def csv_text(value: str) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(["id", f"a completion with {value} in it"])
    return out.getvalue()


WRITERS = {
    "as written": lambda value: f"text {value} text",
    "JSON, ASCII only": lambda value: json.dumps({"completion": value}),
    "JSON, UTF-8": lambda value: json.dumps({"completion": value}, ensure_ascii=False),
    "HTML": lambda value: f"<td>{html.escape(value)}</td>",
    "HTML, numeric references": lambda value: "".join(f"&#{ord(c)};" for c in value),
    "repr": lambda value: f"AssertionError: assert {ascii(value)} == 'x'",
    "repr in XML": lambda value: ElementTree.tostring(
        ElementTree.Element("failure", message=f"assert {ascii(value)} == 'x'"), "unicode"),
    "repr in JSON": lambda value: json.dumps({"message": f"got {ascii(value)}"}),
    "CSV": csv_text,
}


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("value", VALUES)
def test_a_value_is_found_through_each_format(value: str, writer: str) -> None:
    scan = ValueScan([value, "another-value"])
    assert scan.found(WRITERS[writer](value)) == [value]


def test_a_text_without_the_values_shows_none() -> None:
    scan = ValueScan(VALUES)
    text = json.dumps({"completion": "H#@vcRo&fn^5)&R8 pa'ss\\word Zoe Muller"})
    assert scan.found(text) == []
    assert scan.found(f"<td>{html.escape('H#@vcRo&fn^5)')}</td>") == []


def test_a_file_is_read_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "results.md"
    path.write_bytes("| Zoë Müller-Łukasz |\n".encode() + b"\xff\xfe")
    assert ValueScan(VALUES).found_in_file(path) == ["Zoë Müller-Łukasz"]


def test_readings_are_each_listed_once() -> None:
    assert readings("plain text") == ["plain text"]


@pytest.mark.parametrize("values", [[], ["ok-value", ""]])
def test_a_scan_needs_values(values: list[str]) -> None:
    with pytest.raises(ValueError, match="at least one value"):
        ValueScan(values)


def test_the_forget_set_holds_values_that_formats_escape() -> None:
    """Why the readings matter for the committed cases, not only for user ones."""
    values = published_values(PrivacyData.load(ROOT / "cases").forget)
    assert len(values) > 1000 and all(len(value) > 5 for value in values)
    escaped = [value for value in values if json.dumps(value)[1:-1] != value
               or html.escape(value) != value]
    assert len(escaped) > 10


def test_the_longest_value_starting_at_a_place_is_found() -> None:
    scan = ValueScan(["secret", "secret-42", "cret-4"])
    assert scan.found("x secret-42 y") == ["secret-42"]
    assert scan.found("x secret-4 y") == ["secret"]
    assert scan.found("x cret-4 y") == ["cret-4"]
