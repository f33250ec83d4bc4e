"""The gradio demo of ``partonomy demo``: ask a model about an image, see the answer stream in and
its part masks appear, each part in one colour in the text and on the image.

:func:`build_demo` makes the :class:`gradio.Blocks` from models it is given (anything with
:class:`DemoModel`'s ``answer``; :class:`~partonomy.models.core.predictor.SegPredictor` fits), so
it is testable with any model and has no import-time side effects. :func:`launch_demo` serves it.

Page elements (``elem_id``): ``image`` (upload), ``question``, ``highlight`` (optional phrases
of the answer to segment), ``model`` (selector, only with several models), ``ask`` (button),
``answer`` (highlighted text), ``masks`` (overlay image with legend), ``status`` (progress and
errors).

Safety: :func:`launch_demo` binds 127.0.0.1 unless told otherwise and never shares publicly;
gradio refuses uploads over the cap, and :func:`partonomy.viz.demo_logic.load_upload` checks size
and content again; a refused request shows its reason in ``status``, is logged, and the app keeps
serving. Requests queue; each model answers one at a time (a lock per model).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from partonomy.viz.answer_files import AnswerLike
from partonomy.viz.demo_logic import (
    MB,
    DemoLimits,
    InputError,
    answer_overlay,
    answer_segments,
    check_question,
    load_upload,
    parse_highlight,
)

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
TITLE = "partonomy demo: part-level grounding"
CSS = """
#image img, #masks img { image-rendering: pixelated; }
#image img, #masks img { width: 100%; height: 100%; object-fit: contain; }
#status { min-height: 1.5em; }
#status strong { color: #b3261e; }
"""
"""Small images (64-pixel Synth ones) are shown enlarged with crisp pixels."""


class DemoModel(Protocol):
    """A free-form grounding model as the demo calls it (one request at a time)."""

    def answer(
        self,
        image: np.ndarray,
        question: str,
        *,
        highlight: Sequence[str] | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> AnswerLike:
        """Answer ``question`` about ``(H, W, 3)`` uint8 ``image``; call ``on_token`` with the
        text so far as it is generated; return the text, its part spans and one mask each."""
        ...


def _status(kind: str, message: str) -> str:
    """Markdown for the status line: ``kind`` is ``"ok"``, ``"busy"`` or ``"error"``."""
    icon = {"ok": "✓", "busy": "…", "error": "⚠ **Error:**"}[kind]
    return f"{icon} {message}"


def _upload_path(payload: Any) -> str | None:
    """The uploaded file's path from an un-preprocessed ``gr.Image`` value.

    The demo's events run with ``preprocess=False``: gradio's ``Image`` would otherwise decode the
    upload with Pillow before any handler runs, so a bad file would fail inside gradio with a
    generic error. Here :func:`load_upload` checks size and content and explains a refusal.
    """
    if payload is None:
        return None
    if isinstance(payload, dict):
        path = payload.get("path")
        return None if path is None else str(path)
    return str(payload)


def build_demo(
    models: Mapping[str, DemoModel],
    *,
    examples: Sequence[tuple[str, str]] = (),
    limits: DemoLimits | None = None,
    title: str = TITLE,
) -> Any:
    """The demo as a :class:`gradio.Blocks` (not launched; see :func:`launch_demo`).

    Args:
        models: display name -> model; the first is selected. With more than one, a selector
            (``elem_id="model"``) picks the model of each request.
        examples: ``(image path, question)`` pairs shown under the inputs.
        limits: upload and text caps (default :class:`DemoLimits`).
        title: the page heading and browser tab title.

    Raises:
        ValueError: no model.
    """
    import gradio as gr

    if not models:
        raise ValueError("the demo needs at least one model")
    limits = limits or DemoLimits()
    names = list(models)
    locks = {name: threading.Lock() for name in names}

    def check_upload(payload: Any) -> tuple[str, Any, Any, Any]:
        """On upload: say whether the image is usable (a refused one is cleared from the
        input) and clear the previous answer, which was about another image."""
        path = _upload_path(payload)
        if path is None:
            return "", gr.skip(), [], None
        try:
            image = load_upload(path, limits)
        except InputError as err:
            log.warning("demo: refused upload %s: %s", Path(path).name, err)
            return _status("error", str(err)), None, [], None
        size = f"{image.shape[1]} x {image.shape[0]}"
        return _status("ok", f"image {size} ready; ask a question"), gr.skip(), [], None

    def ask(
        payload: Any, question: str, highlight: str, name: str
    ) -> Iterator[tuple[Any, Any, str]]:
        skip = gr.skip()
        path = _upload_path(payload)
        try:
            if path is None:
                raise InputError("upload an image first (PNG, JPEG or WebP)")
            image = load_upload(path, limits)
            text = check_question(question, limits)
            phrases = parse_highlight(highlight, limits)
            if name not in models:
                raise InputError(f"unknown model {name!r}; pick one of {', '.join(names)}")
        except InputError as err:
            log.warning("demo: refused request: %s", err)
            yield [], None, _status("error", str(err))  # no stale answer beside the error
            return
        log.info("demo: %s answers %r (image %s)", name, text, image.shape)
        updates: queue.Queue[tuple[str, Any]] = queue.Queue()

        def work() -> None:
            try:
                with locks[name]:
                    answer = models[name].answer(
                        image,
                        text,
                        highlight=phrases,
                        on_token=lambda so_far: updates.put(("token", so_far)),
                    )
                updates.put(("done", answer))
            except Exception as err:  # shown in the page; the server keeps serving
                log.exception("demo: model %s failed", name)
                updates.put(("failed", err))

        threading.Thread(target=work, name=f"demo-{name}", daemon=True).start()
        yield [], None, _status("busy", f"{name} is answering…")
        while True:
            kind, value = updates.get()
            if kind == "token":
                yield [(value, None)], skip, _status("busy", f"{name} is answering…")
            elif kind == "failed":
                yield skip, skip, _status("error", f"the model failed ({value}); see the log")
                return
            else:
                segments, colours = answer_segments(value.text, value.spans)
                overlay = answer_overlay(image, value)
                n = len(value.spans)
                log.info("demo: %s answered with %d part span(s)", name, n)
                yield (
                    gr.HighlightedText(value=cast(Any, segments), color_map=colours),
                    overlay,
                    _status("ok", f"{n} part span{'s' if n != 1 else ''} segmented"),
                )
                return

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(
            f"## {title}\nUpload an image, ask about its parts, and see the answer with each "
            "part it names segmented in the same colour. Uploads: PNG, JPEG or WebP, at most "
            f"{limits.max_upload_bytes / MB:.0f} MB."
        )
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(
                    label="Image",
                    type="filepath",
                    sources=["upload"],
                    elem_id="image",
                    height=320,
                )
                question = gr.Textbox(
                    label="Question",
                    placeholder="What visible parts does the car in the image have?",
                    lines=2,
                    elem_id="question",
                )
                highlight = gr.Textbox(
                    label="Segment these phrases (optional, comma-separated)",
                    placeholder="wheel, door",
                    elem_id="highlight",
                )
                selector = gr.Dropdown(
                    choices=names,
                    value=names[0],
                    label="Model",
                    visible=len(names) > 1,
                    elem_id="model",
                )
                ask_button = gr.Button("Ask", variant="primary", elem_id="ask")
            with gr.Column(scale=1):
                status = gr.Markdown("", elem_id="status")
                answer = gr.HighlightedText(
                    label="Answer (each part in its mask's colour)",
                    combine_adjacent=False,
                    show_legend=False,
                    show_inline_category=False,
                    elem_id="answer",
                )
                masks = gr.Image(
                    label="Masks",
                    type="numpy",
                    interactive=False,
                    format="png",
                    elem_id="masks",
                    height=360,
                )
        if examples:
            gr.Examples(
                examples=[[str(p), q] for p, q in examples],
                inputs=[image, question],
                label="Examples from Partonomy-Synth",
            )
        image.upload(
            check_upload, inputs=image, outputs=[status, image, answer, masks], preprocess=False
        )
        ask_button.click(
            ask,
            inputs=[image, question, highlight, selector],
            outputs=[answer, masks, status],
            concurrency_limit=len(names),
            concurrency_id="ask",
            preprocess=False,
        )
        question.submit(
            ask,
            inputs=[image, question, highlight, selector],
            outputs=[answer, masks, status],
            concurrency_id="ask",
            preprocess=False,
        )
    demo.queue(default_concurrency_limit=len(names))
    return demo


def launch_demo(
    demo: Any,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    max_upload_bytes: int = 20 * MB,
    allowed_paths: Sequence[str] = (),
    block: bool = True,
) -> Any:
    """Serve ``demo`` on ``host:port`` (never through a public share link).

    Args:
        demo: a :func:`build_demo` app.
        host: interface to bind; the default serves this machine only.
        port: TCP port.
        max_upload_bytes: gradio refuses larger uploads before they reach a handler.
        allowed_paths: extra directories gradio may serve files from (the examples').
        block: False returns at once with the server running in a thread (tests).

    Returns:
        What ``Blocks.launch`` returns (the app, its local URL and share URL).
    """
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("demo: serving on %s: reachable from other machines on that interface", host)
    return demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        max_file_size=max_upload_bytes,
        allowed_paths=list(allowed_paths),
        prevent_thread_lock=not block,
        show_error=True,
        inbrowser=False,
        css=CSS,
        quiet=False,
    )
