"""The HTML report in a real browser: opened from disk, no console error, charts and images
render, and nothing is requested but the file itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from partonomy.eval.harness import EvalConfig, run_eval
from partonomy.eval.html_report import write_report

pytestmark = pytest.mark.browser


def test_report_renders_offline(
    qa_file: Path, tmp_path: Path, open_page: Any, artifacts: Path
) -> None:
    runs = []
    for model in ("oracle", "whole_object", "random"):
        out = tmp_path / model
        run_eval(EvalConfig(model=model, qa_file=str(qa_file), out=str(out), progress=False))
        runs.append(out)
    report = write_report(runs, tmp_path / "report.html", gallery=2)
    url = report.resolve().as_uri()
    view = open_page(url)
    page = view.page
    page.goto(url)
    page.wait_for_function("document.body.dataset.ready === '1'")
    assert view.console_errors == []
    assert view.blocked == [] and set(view.requests) == {url}  # the file, nothing else
    charts = page.locator("svg.chart")
    assert charts.count() >= 5
    for k in range(charts.count()):
        box = charts.nth(k).bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 80
        assert charts.nth(k).locator("rect").count() > 0
    images = page.locator(".card img")
    assert images.count() >= 4
    # 'ready' is set when the page's script runs; its data-URI images decode asynchronously
    decoded = (
        "Array.from(document.querySelectorAll('.card img'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    try:
        page.wait_for_function(decoded, timeout=10_000)
    except PlaywrightTimeout:
        pytest.fail("an embedded image failed to decode")
    headers = page.locator("table.results").first.locator("thead th").all_inner_texts()
    assert headers == ["question type", "oracle", "whole_object", "random"]
    page.screenshot(path=str(artifacts / "report.png"), full_page=True)
    page.locator(".card img").first.click()  # the inline script zooms an image
    assert page.locator("img.zoomed").count() == 1
