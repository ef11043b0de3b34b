"""results.html in a real browser: Debian's Chromium (scripts/install_chromium.py), headless,
driven by Playwright, on the report of the run whose every forget probe leaks
(conftest.endpoint_runs), the worst case for what the page might show.

The page must render with no console error, list one row per leak test the run collected, filter
and page through them in the browser, and show no secret of the run while it does.
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from reliability_helpers import forget_scan

from reports.records import LEAK_METRICS

pytestmark = [pytest.mark.engine]

LEAK_TESTS = ("test_direct_leak", "test_indirect_leak", "test_holdout")
# A closed network refuses Chromium's background connections; it needs no GPU headless.
BROWSER_FLAGS = ["--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
PAGE = 25  # rows per page of the per-probe view (reports/page.html)
COUNTER = re.compile(r"(\d+) of (\d+) rows, page (\d+) of (\d+)")


@pytest.fixture(scope="module")
def browser_page(leaky):
    """The page as Chromium shows it, and every console error and uncaught exception it had."""
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                             args=BROWSER_FLAGS)
        page = browser.new_page()
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto((Path(leaky.report_dir) / "results.html").as_uri())
        yield page, errors
        browser.close()


def counter(page) -> tuple[int, int, int, int]:
    """(rows shown, rows in all, page, pages) as the view's counter reads."""
    found = COUNTER.fullmatch(page.locator("#counter").inner_text())
    assert found, page.locator("#counter").inner_text()
    return tuple(map(int, found.groups()))


def leak_outcomes(leaky) -> list[dict]:
    outcomes = json.loads((Path(leaky.report_dir) / "results.json").read_text())["outcomes"]
    return [outcome for outcome in outcomes if outcome["metric"] in LEAK_METRICS]


def test_the_page_renders_its_tables_and_charts_without_a_console_error(browser_page) -> None:
    page, errors = browser_page
    titles = page.locator("h2").all_inner_texts()
    assert {"Charts", "Leaks and utility", "Per probe"} <= set(titles), titles
    assert page.locator("table").count() >= 3
    widths = page.locator(".charts img").evaluate_all("images => images.map(i => i.naturalWidth)")
    assert widths and all(width > 0 for width in widths)  # every chart decoded
    assert errors == []


def test_the_per_probe_view_has_a_row_per_leak_test_and_filters_them(browser_page, leaky):
    page, errors = browser_page
    junit = ElementTree.parse(leaky.junit).getroot()
    leak_tests = [case for case in junit.iter("testcase")
                  if case.get("name").startswith(LEAK_TESTS)]
    outcomes = leak_outcomes(leaky)
    assert len(leak_tests) == len(outcomes) > PAGE
    shown, total, number, pages = counter(page)
    assert shown == total == len(outcomes) and (number, pages) == (1, -(-total // PAGE))
    assert page.locator("#probes tbody tr").count() == PAGE

    page.select_option("#filter-metric", "direct_leak")
    direct = [o for o in outcomes if o["metric"] == "direct_leak"]
    assert counter(page)[:2] == (len(direct), total)
    page.select_option("#filter-verdict", "none")
    assert counter(page)[0] == sum(o["category"] == "none" for o in direct)
    page.select_option("#filter-verdict", "any leak")
    leaking = sum(o["category"] != "none" for o in direct)
    assert counter(page)[0] == leaking > 0  # every forget probe of this run leaks
    page.select_option("#filter-metric", "")
    page.select_option("#filter-verdict", "")

    wanted = outcomes[7]["id"]
    page.fill("#search", wanted)
    rows = page.locator("#probes tbody tr")
    assert counter(page)[0] == sum(wanted in o["id"] for o in outcomes) == rows.count()
    assert all(wanted in text for text in rows.all_inner_texts())
    page.fill("#search", "")

    first = page.locator("#probes tbody tr").first.inner_text()
    page.click("#next")
    assert counter(page)[2] == 2 and page.locator("#probes tbody tr").first.inner_text() != first
    page.click("#previous")
    assert errors == []


def test_the_page_shows_no_secret_on_any_of_its_pages(browser_page, leaky) -> None:
    page, errors = browser_page
    secrets = forget_scan()
    assert secrets.found_in_file(Path(leaky.report_dir) / "results.html") == []
    seen = [page.locator("body").inner_text()]
    for _ in range(counter(page)[3] - counter(page)[2]):
        page.click("#next")
        seen.append(page.locator("#probes tbody").inner_text())
    assert secrets.found("\n".join(seen)) == []
    assert "…" in page.locator("#probes tbody").inner_text()  # the values are there, masked
    assert errors == []
