"""The demo in a real browser: upload a Synth image, ask, watch the answer stream in with coloured
part spans and an overlay; a bad upload and an oversized question show errors while the app keeps
serving. The model is a tiny random PLUM injected through :func:`build_demo` (no checkpoint)."""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from partonomy.data.synth.examples import synth_examples
from partonomy.models.core.loading import load_model
from partonomy.models.core.predictor import SegPredictor
from partonomy.viz.demo_app import build_demo, launch_demo
from partonomy.viz.demo_logic import DemoLimits
from partonomy.viz.palette import hex_colour

pytestmark = pytest.mark.browser

TOKEN_DELAY_S = 0.04
"""Each streamed token waits this long, so the page shows the answer growing."""


class SlowStream:
    """Wraps a model so that each streamed token takes :data:`TOKEN_DELAY_S` (and is counted)."""

    def __init__(self, inner: SegPredictor) -> None:
        self.inner = inner
        self.tokens = 0

    def answer(
        self,
        image: np.ndarray,
        question: str,
        *,
        highlight: Sequence[str] | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> Any:
        def slow(text: str) -> None:
            self.tokens += 1
            time.sleep(TOKEN_DELAY_S)
            if on_token is not None:
                on_token(text)

        return self.inner.answer(image, question, highlight=highlight, on_token=slow)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model, processor = load_model("plum", None, "tiny", "cpu", "float32")
    predictor = SegPredictor(model, processor, max_new_tokens=24)
    examples = synth_examples(tmp_path_factory.mktemp("synth"), n=2)
    demo = build_demo(
        {"tiny-random": SlowStream(predictor)},
        examples=[(str(p), q) for p, q in examples],
        limits=DemoLimits(max_question_chars=300),
    )
    port = _free_port()
    launch_demo(demo, port=port, allowed_paths=[str(examples[0][0].parent)], block=False)
    try:
        yield {"url": f"http://127.0.0.1:{port}/", "predictor": predictor, "examples": examples}
    finally:
        demo.close()
        torch.set_num_threads(threads)


def _phrase(predictor: SegPredictor, image_path: Path, question: str) -> str:
    """A word of the (deterministic, greedy) answer, for the highlight-to-segment box."""
    with Image.open(image_path) as img:
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    text = predictor.answer(rgb, question).text
    words = re.findall(r"\b[A-Za-z]{3,}\b", text)
    assert words, f"no plain word in the random answer {text!r}"
    return words[0]


def _ask(page: Any, expect: str) -> None:
    """Click Ask and wait until the status line shows ``expect`` (a JS regex source)."""
    page.click("#ask")
    page.wait_for_function(
        f"/{expect}/.test(document.querySelector('#status').innerText)", timeout=60_000
    )


def _wait_for_log(caplog: pytest.LogCaptureFixture, text: str, timeout_s: float = 20) -> None:
    end = time.monotonic() + timeout_s
    while text not in caplog.text:
        assert time.monotonic() < end, f"the server never logged {text!r}"
        time.sleep(0.1)


def test_demo_end_to_end(
    served: dict[str, Any], open_page: Any, artifacts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="partonomy.viz.demo_app")
    url = served["url"]
    view = open_page(url.rstrip("/"))
    page = view.page
    page.goto(url)
    page.wait_for_selector("#ask")
    for elem in ("image", "question", "ask", "answer", "masks", "highlight"):
        assert page.locator(f"#{elem}").count() == 1, elem
    assert not page.locator("#model").is_visible()  # one model: no selector
    assert "What visible parts does the" in page.inner_text("body")  # the Synth examples

    image_path, question = served["examples"][0]  # a Synth image and its question
    phrase = _phrase(served["predictor"], image_path, question)
    page.set_input_files("#image input[type=file]", str(image_path))
    page.wait_for_function("/ready/.test(document.querySelector('#status').innerText)")
    page.fill("#question textarea", question)
    page.fill("#highlight input, #highlight textarea", phrase)
    page.evaluate(  # record every text the answer box shows while it streams
        """() => { window.__seen = [];
        new MutationObserver(() => {
          const t = document.querySelector('#answer').innerText.trim();
          if (t && window.__seen[window.__seen.length - 1] !== t) window.__seen.push(t);
        }).observe(document.querySelector('#answer'),
                   {subtree: true, childList: true, characterData: true}); }"""
    )
    _ask(page, "segmented")
    status = page.inner_text("#status")
    assert "segmented" in status, status
    seen = page.evaluate("window.__seen")
    assert len(seen) >= 3, f"the answer did not stream: {seen}"
    final = page.inner_text("#answer")
    assert phrase in final
    # the highlighted span is painted in the first palette colour (the first mask's). The
    # status line and the answer box are separate components, so the status can show
    # "segmented" a frame before the answer box has applied its colour map: wait for it.
    r, g, b = (int(hex_colour(0)[i : i + 2], 16) for i in (1, 3, 5))
    painted = (
        "Array.from(document.querySelectorAll('#answer *'))"
        ".map(e => getComputedStyle(e).backgroundColor)"
    )
    try:
        page.wait_for_function(f"{painted}.some(c => c.includes('{r}, {g}, {b}'))", timeout=10_000)
    except PlaywrightTimeout:
        pytest.fail(f"no answer span in rgb({r}, {g}, {b}): {page.evaluate(painted)}")
    page.wait_for_function(
        "(() => { const i = document.querySelector('#masks img');"
        " return i && i.complete && i.naturalWidth > 0; })()"
    )
    assert view.console_errors == [] and view.blocked == []
    page.screenshot(path=str(artifacts / "demo-answer.png"), full_page=True)

    # a file that is not an image, named like one: refused, explained, logged
    page.set_input_files(
        "#image input[type=file]",
        {"name": "photo.png", "mimeType": "image/png", "buffer": b"GIF89a but not really"},
    )
    page.wait_for_function("/Error/.test(document.querySelector('#status').innerText)")
    assert "not a PNG, JPEG or WebP" in page.inner_text("#status")
    assert "refused upload photo.png" in caplog.text
    page.wait_for_timeout(300)  # the refused file is cleared from the input
    page.screenshot(path=str(artifacts / "demo-bad-upload.png"), full_page=True)
    _ask(page, "upload an image first")  # it was cleared, so Ask says so
    _wait_for_log(caplog, "refused request: upload an image first")

    # an oversized question is refused the same way
    page.set_input_files("#image input[type=file]", str(image_path))
    page.wait_for_function("/ready/.test(document.querySelector('#status').innerText)")
    page.fill("#question textarea", "why " * 100)
    _ask(page, "over the 300-character limit")
    assert "refused request: the question is 399 characters" in caplog.text

    # and the app still answers
    page.fill("#question textarea", question)
    _ask(page, "segmented")
    assert view.blocked == []
