"""The resumable evaluation loop behind ``partonomy eval``.

A run writes three files into its output directory::

    config.json        model name and options, QA file and its sha256, package version (first)
    predictions.jsonl  one fsynced line per question, appended as the run goes
    results.json       the scorer's results, written atomically once every question is predicted

Resume semantics: a run stopped at any point (even ``kill -9``) is continued by running the same
command again. Finished questions are read back from ``predictions.jsonl`` (a torn last line is
dropped) and never recomputed, so the final results equal an uninterrupted run's as long as the
model is deterministic per question (the reference models are). A different model, different
model options or a different QA file (by content) in the same directory is refused unless
``overwrite``. ``batch_size``, ``limit``, ``matching``, ``missing``, ``strict`` and
``image_root`` may change between runs: results are always re-scored from the predictions of the
first ``limit`` questions.

Sharded runs (``--num-processes N``: each process predicts a block of whole batches into its own
file, rank 0 merges them in file order) follow :mod:`partonomy.eval.sharding`; their
``results.json`` is byte-identical to a single process's.

Model outputs are checked before they are written (:mod:`partonomy.eval.answers`): a wrong number
of scores, a NaN, or a mask of the wrong shape or dtype is a :class:`ModelOutputError` naming the
model and the question.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from partonomy import __version__
from partonomy.errors import ConfigError
from partonomy.eval.answers import ModelOutputError, answer_to_prediction
from partonomy.eval.metrics.conventions import (
    DEFAULT_MATCHING,
    DEFAULT_MISSING,
    MATCHINGS,
    MISSING_POLICIES,
)
from partonomy.eval.protocol import EvalItem, GroundingModel
from partonomy.eval.run_dir import (
    CONFIG_FILE,
    IDENTITY_KEYS,
    PREDICTIONS_FILE,
    RESULTS_FILE,
    file_sha256,
    load_done,
    locked_out_dir,
    prepare_out_dir,
)
from partonomy.eval.sharding import Shard, merge_shards
from partonomy.io.atomic import JsonlAppender, atomic_write_json
from partonomy.io.images import (
    fit_masks_to_image,
    image_size,
    load_image,
    record_label,
    resolve_image_path,
)
from partonomy.io.predictions import Prediction
from partonomy.io.qa_pairs import QAPair, load_qa_pairs

__all__ = [  # the answer checks and the run-directory names live in their own modules
    "CONFIG_FILE",
    "IDENTITY_KEYS",
    "PREDICTIONS_FILE",
    "RESULTS_FILE",
    "EvalConfig",
    "EvalOutcome",
    "ModelOutputError",
    "answer_to_prediction",
    "build_model",
    "file_sha256",
    "parse_model_options",
    "run_eval",
    "score_run",
]


@dataclass
class EvalConfig:
    """One ``partonomy eval`` invocation.

    Attributes:
        model: registry name of the model (:data:`partonomy.registries.MODELS`).
        qa_file: the QA-pair JSON.
        out: output directory.
        model_options: keyword options for the model builder.
        batch_size: questions per ``predict`` call (None: the model's own batch size, see
            :func:`model_batch_size`).
        limit: evaluate only the first ``limit`` questions of the file (None: all).
        matching, missing: the scorer's policies (see :mod:`partonomy.eval.metrics.conventions`).
        strict: refuse a ground-truth mask whose size differs from its image (else resize it).
        image_root: directory that relative image paths resolve against (None: the QA file's).
        overwrite: discard an earlier run in ``out`` instead of resuming or refusing.
        progress: show a tqdm progress bar over questions.
    """

    model: str
    qa_file: str
    out: str
    model_options: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    limit: int | None = None
    matching: str = DEFAULT_MATCHING
    missing: str = DEFAULT_MISSING
    strict: bool = False
    image_root: str | None = None
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        check_batch_size(self.batch_size)
        if self.limit is not None and self.limit < 0:
            raise ConfigError(f"limit must be >= 0, got {self.limit}")
        # checked here, not by the scorer at the end, so a typo never costs a whole run
        if self.matching not in MATCHINGS:
            raise ConfigError(f"matching {self.matching!r} is not one of {', '.join(MATCHINGS)}")
        if self.missing not in MISSING_POLICIES:
            raise ConfigError(
                f"missing policy {self.missing!r} is not one of {', '.join(MISSING_POLICIES)}"
            )


@dataclass
class EvalOutcome:
    """What a run did: ``n_resumed`` questions read back, ``n_computed`` predicted now, in
    ``seconds`` of prediction (wall time from every process having its model to the last
    answer written; 0 when nothing was computed)."""

    results: dict[str, Any]
    out_dir: Path
    n_questions: int
    n_resumed: int
    n_computed: int
    seconds: float = 0.0


def parse_model_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``["seed=3", "masks=random"]`` -> ``{"seed": 3, "masks": "random"}`` (values parsed as YAML).

    Raises:
        ConfigError: an item without ``=``, an empty key, or a key given twice.
    """
    import yaml

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"model option '{pair}' must look like key=value")
        if key in options:
            raise ConfigError(f"model option '{key}' is given twice")
        try:
            options[key] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(
                f"model option '{pair}': the value is not valid YAML ({err})"
            ) from None
    return options


def _run_config(cfg: EvalConfig, qa_path: Path, sha: str) -> dict[str, Any]:
    try:  # options as they read back from config.json, so a rerun compares like with like
        options = json.loads(json.dumps(cfg.model_options, allow_nan=False, default=str))
    except ValueError as err:
        raise ConfigError(f"model options must be JSON-safe ({err})") from None
    return {
        "model": cfg.model,
        "model_options": options,
        "qa_file": str(qa_path.resolve()),
        "qa_sha256": sha,
        "version": __version__,
        "batch_size": cfg.batch_size,
        "limit": cfg.limit,
        "matching": cfg.matching,
        "missing": cfg.missing,
        "strict": cfg.strict,
        "image_root": str(Path(cfg.image_root).resolve()) if cfg.image_root else None,
    }


@dataclass
class _Pending:
    qa: QAPair
    image: Path
    record: str


def _prepare_records(cfg: EvalConfig, qa_path: Path, records: list[QAPair]) -> list[_Pending]:
    """Check every selected record's image up front (header only) and fit its masks to it."""
    root = Path(cfg.image_root) if cfg.image_root else None
    out = []
    sizes: dict[Path, tuple[int, int]] = {}  # one header read per image, not per question
    for index, qa in enumerate(records):
        label = record_label(index, qa)
        image = resolve_image_path(qa.image_path, qa_path.parent, root)
        size = sizes.get(image)
        if size is None:
            size = sizes[image] = image_size(image, file=qa_path, record=label)
        fitted = fit_masks_to_image(qa, size, file=qa_path, record=label, strict=cfg.strict)
        out.append(_Pending(fitted, image, label))
    return out


class _ImageCache:
    """Decodes each image once per run of consecutive questions about it (the usual file order:
    one image, several question types) and hands every question its own copy. A batch's distinct
    images are decoded in parallel threads (PIL releases the GIL while it decodes)."""

    def __init__(self, qa_path: Path, pool: ThreadPoolExecutor | None = None) -> None:
        self._qa_path = qa_path
        self._pool = pool
        self._path: Path | None = None
        self._image: np.ndarray | None = None

    def _load(self, pending: _Pending) -> np.ndarray:
        return load_image(pending.image, file=self._qa_path, record=pending.record)

    def batch(self, pendings: Sequence[_Pending]) -> list[np.ndarray]:
        """Every question's image, in order (each its own array: a model may modify its input)."""
        first: dict[Path, _Pending] = {}  # each distinct image once, but the one held already
        for pending in pendings:
            if pending.image != self._path:
                first.setdefault(pending.image, pending)
        todo = list(first.values())
        mapped = map(self._load, todo) if self._pool is None else self._pool.map(self._load, todo)
        decoded = dict(zip(first, mapped, strict=True))
        if self._path is not None and self._image is not None:
            decoded[self._path] = self._image
        out = []
        for pending in pendings:
            if pending.image != self._path:
                self._path, self._image = pending.image, decoded[pending.image]
            assert self._image is not None
            out.append(self._image.copy())
        return out


class _Writer:
    """Checks answers and appends their lines in a background thread, one batch at a time, so
    that the model's next batch (its device work) overlaps the answer checks, the mask RLE
    encoding and the fsynced writes of this one. A batch's lines are written only after all its
    answers passed the checks; an error stops the run at the next :meth:`submit` or :meth:`wait`."""

    def __init__(
        self, model: str, appender: JsonlAppender, done: dict[str, Prediction], bar: Any
    ) -> None:
        self._model, self._appender, self._done, self._bar = model, appender, done, bar
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="partonomy-write")
        self._pending: Future[None] | None = None

    def _write(self, items: list[EvalItem], answers: list[Any]) -> None:
        preds = [answer_to_prediction(self._model, it, a) for it, a in zip(items, answers)]
        for pred in preds:
            self._appender.write(pred.to_dict())
            self._done[pred.question_id] = pred
        self._bar.update(len(preds))

    def submit(self, items: list[EvalItem], answers: list[Any]) -> None:
        self.wait()  # at most one batch in flight: bounded memory, errors surface a batch late
        self._pending = self._thread.submit(self._write, items, answers)

    def wait(self) -> None:
        """Block until the last submitted batch is written; re-raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        self._thread.shutdown(wait=True)


DECODE_THREADS = 4
"""Threads decoding a batch's images (PNG/JPEG decoding scales with them)."""


def _batches(items: list[_Pending], size: int) -> Iterator[list[_Pending]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def build_model(name: str, options: dict[str, Any]) -> GroundingModel:
    """Look ``name`` up in the model registry (did-you-mean on typos) and build it."""
    from partonomy.registries import MODELS

    builder = MODELS.get(name)
    try:
        return builder(**options)  # type: ignore[no-any-return]
    except TypeError as err:
        raise ConfigError(f"model '{name}': invalid options {sorted(options)}: {err}") from None


def check_batch_size(batch_size: int | None) -> None:
    """Raise :class:`ConfigError` unless ``batch_size`` is None or at least 1."""
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")


def model_batch_size(model: GroundingModel) -> int:
    """The batch size a model works in: its ``batch_size`` attribute (a predictor's scoring
    batch, e.g. 8 for ``plum``: the harness then hands it full batches), else 1."""
    size = getattr(model, "batch_size", 1)
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 1 else 1


def batch_size_for(
    requested: int | None, model: GroundingModel | None, name: str, options: dict[str, Any]
) -> tuple[int, GroundingModel | None]:
    """``(batch size, model)``: ``requested``, or else the model's own batch size
    (:func:`model_batch_size`), for which the model (``name`` built with ``options``, unless
    ``model`` is given) is built now, since only it knows."""
    if requested is not None:
        return requested, model
    if model is None:
        model = build_model(name, options)
    return model_batch_size(model), model


def score_run(
    records: list[QAPair],
    predictions: dict[str, Prediction],
    *,
    matching: str,
    missing: str,
    qa_file: Path,
    predictions_file: Path,
) -> dict[str, Any]:
    """Score a run's predictions with :func:`partonomy.eval.scoring.score`.

    ``records`` are the run's records with their masks fitted to the images, so predicted masks
    (at image resolution) and ground truth always have one size.
    """
    from partonomy.eval.scoring import score

    return score(
        records,
        predictions,
        matching=matching,
        missing=missing,
        qa_file=qa_file,
        predictions_file=predictions_file,
    )


def run_eval(
    cfg: EvalConfig, *, model: GroundingModel | None = None, shard: Shard | None = None
) -> EvalOutcome:
    """Evaluate a model on a QA file, resuming an earlier run in ``cfg.out`` if there is one.

    Args:
        cfg: the run (see :class:`EvalConfig`).
        model: an already-built model to use instead of building ``cfg.model`` from the
            registry (``cfg.model`` still names it in config.json and in errors).
        shard: this process's share of a sharded run (:mod:`partonomy.eval.sharding`); None is
            a single process. Every process of a sharded run calls this with the same ``cfg``.

    Returns:
        The results (also in ``out/results.json``) and how many questions were resumed/computed.
        In a sharded run only rank 0 scores: the other ranks return empty ``results`` and count
        only their own questions in ``n_computed``.

    Raises:
        FormatError: a malformed QA file, a missing or corrupt image, a mask size mismatch
            under ``strict``, or a corrupt predictions file.
        ConfigError: ``out`` holds a different run (without ``overwrite``); bad model options.
        ModelOutputError: the model broke the protocol (nothing of that batch is written).
    """
    shard = shard or Shard()
    qa_path = Path(cfg.qa_file)
    out = Path(cfg.out)
    records = load_qa_pairs(qa_path)
    selection = records if cfg.limit is None else records[: cfg.limit]
    if model is None:
        from partonomy.registries import MODELS

        MODELS.get(cfg.model)  # fail on a typo before any file is touched
    prepared = _prepare_records(cfg, qa_path, selection)
    predictions_path = out / PREDICTIONS_FILE
    known = {qa.question_id for qa in records}

    def read(path: Path) -> dict[str, Prediction]:
        return load_done(path, known)

    order = [qa.question_id for qa in records]
    with locked_out_dir(out) if shard.is_main else nullcontext():
        if shard.is_main:
            prepare_out_dir(out, _run_config(cfg, qa_path, file_sha256(qa_path)), cfg.overwrite)
            merge_shards(out, predictions_path, order, read)  # a killed sharded run's lines
        shard.barrier()  # the directory is checked and holds every finished line

        done = read(predictions_path)
        pending = [p for p in prepared if p.qa.question_id not in done]
        n_resumed = len(prepared) - len(pending)
        batch_size = 1  # nothing to predict: a resumed run that is complete builds no model
        if pending:
            batch_size, model = batch_size_for(cfg.batch_size, model, cfg.model, cfg.model_options)
        mine = [p for batch in shard.batches(pending, batch_size) for p in batch]
        if pending and shard.is_main:
            # results.json only ever describes a finished run
            (out / RESULTS_FILE).unlink(missing_ok=True)
        if mine and model is None:
            model = build_model(cfg.model, cfg.model_options)
        shard.barrier()  # every process has its model: the timing below is prediction only
        start = time.perf_counter()
        if mine:
            assert model is not None
            _predict_all(
                cfg,
                model,
                mine,
                n_resumed if shard.world == 1 else 0,
                len(prepared) if shard.world == 1 else len(mine),
                shard.predictions_file(out, predictions_path),
                done,
                batch_size=batch_size,
                progress=cfg.progress and shard.is_main,
            )
        shard.barrier()  # every shard file is complete
        seconds = time.perf_counter() - start
        if not shard.is_main:
            return EvalOutcome({}, out, len(prepared), n_resumed, len(mine), seconds)
        if merge_shards(out, predictions_path, order, read):
            done = read(predictions_path)

        selected = {p.qa.question_id for p in prepared}
        results = score_run(
            [p.qa for p in prepared],
            {qid: pred for qid, pred in done.items() if qid in selected},
            matching=cfg.matching,
            missing=cfg.missing,
            qa_file=qa_path,
            predictions_file=predictions_path,
        )
        atomic_write_json(out / RESULTS_FILE, results)
    return EvalOutcome(results, out, len(prepared), n_resumed, len(pending), seconds)


def _predict_all(
    cfg: EvalConfig,
    model: GroundingModel,
    pending: list[_Pending],
    n_resumed: int,
    n_total: int,
    predictions_path: Path,
    done: dict[str, Prediction],
    *,
    batch_size: int,
    progress: bool,
) -> None:
    """Predict every pending question in batches of ``batch_size``, appending one line per
    question."""
    from tqdm import tqdm

    qa_path = Path(cfg.qa_file)
    with (
        ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="partonomy-decode") as pool,
        JsonlAppender(predictions_path) as appender,
        tqdm(
            total=n_total,
            initial=n_resumed,
            desc=f"eval {cfg.model}",
            unit="q",
            disable=not progress,
        ) as bar,
    ):
        images = _ImageCache(qa_path, pool)
        produced: deque[list[EvalItem]] = deque()  # appended where the batches are produced

        def item_batches() -> Iterator[list[EvalItem]]:
            for batch in _batches(pending, batch_size):
                items = [EvalItem(p.qa, im) for p, im in zip(batch, images.batch(batch))]
                produced.append(items)
                yield items

        # A model with ``predict_batches`` (SegPredictor) pulls the next batch, decoding its
        # images, in a worker thread while its device answers the current one.
        stream = getattr(model, "predict_batches", None)
        if callable(stream):
            outputs: Iterator[Any] = stream(item_batches())
        else:
            outputs = (model.predict(items) for items in item_batches())
        writer = _Writer(cfg.model, appender, done, bar)
        try:
            for answers in outputs:
                items = produced.popleft()
                if not isinstance(answers, list) or len(answers) != len(items):
                    n = len(answers) if isinstance(answers, list) else type(answers).__name__
                    raise ModelOutputError(
                        f"model '{cfg.model}' returned {n} answers for a batch of {len(items)} "
                        f"questions (first question_id {items[0].question_id!r}); expected one each"
                    )
                writer.submit(items, answers)
            writer.wait()
        finally:
            writer.close()  # lets a batch in flight finish its lines (or fail) before returning
