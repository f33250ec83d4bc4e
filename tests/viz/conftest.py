"""Browser fixtures: headless Debian Chromium driven by Playwright, screenshots kept as artifacts.

Browser tests skip only when ``/usr/bin/chromium`` is absent (``.ci/run`` installs it). Every
request to anything but the page under test is aborted and recorded, so a test can assert that
nothing was fetched from the network. Screenshots go to ``$PARTONOMY_TEST_ARTIFACTS`` (default
``out/test-artifacts`` in the repository, ignored by git).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
QA_FIXTURES = Path(__file__).parents[1] / "fixtures" / "qa"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots are saved (created)."""
    default = Path(__file__).parents[2] / "out" / "test-artifacts"
    out = Path(os.environ.get("PARTONOMY_TEST_ARTIFACTS", default))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (skips the test when /usr/bin/chromium is absent)."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A browser page that records console errors and aborts requests outside ``allowed``."""

    def __init__(self, browser: Any, allowed: tuple[str, ...]) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.console_errors: list[str] = []
        self.blocked: list[str] = []
        self.requests: list[str] = []
        self.page.on(
            "console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None
        )

        def route(r: Any) -> None:
            url = r.request.url
            self.requests.append(url)
            if url.startswith((*allowed, "data:", "blob:")):
                r.continue_()
            else:
                self.blocked.append(url)
                r.abort()

        self.page.route("**/*", route)


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """``open_page(allowed_prefixes) -> Page``; pages are closed after the test."""
    pages: list[Page] = []

    def make(*allowed: str) -> Page:
        page = Page(browser, allowed)
        pages.append(page)
        return page

    yield make
    for page in pages:
        page.page.close()


@pytest.fixture
def qa_file(tmp_path: Path) -> Path:
    """A private copy of the tiny QA fixture (6 questions, 3 images), as in tests/eval."""
    out = tmp_path / "qa"
    shutil.copytree(QA_FIXTURES, out, ignore=shutil.ignore_patterns("*.py"))
    return out / "tiny_qa.json"
