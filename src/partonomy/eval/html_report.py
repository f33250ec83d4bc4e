"""``partonomy report``: gather ``partonomy eval`` run directories into one HTML report.

What each run directory gives (:mod:`partonomy.eval.run_dir`):

* ``results.json`` (required): ``overall`` always; ``by_type`` for Partonomy runs -> the Table 2 /
  Table 3 layouts (one column per run) and the per-question-type bar charts. A run of another
  task (``overall`` only) still gets its column in the overall-metrics table.
* ``config.json`` -> the QA file (and ``limit``, ``image_root``), shown with the version.
* ``predictions.jsonl`` + the QA file and its images -> per-question scores
  (:mod:`partonomy.eval.question_scores`): the per-mask IoU distribution, accuracy and gIoU by
  number of parts in the correct answer, and the best / worst question gallery.

Whatever is missing or unreadable is skipped with a note in the page, never a failure: the report
shows what the run has. Rendering is :mod:`partonomy.viz.report`'s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from partonomy.errors import ConfigError, FormatError, PartonomyError
from partonomy.eval import report as tables
from partonomy.eval.question_scores import QuestionScore, question_scores
from partonomy.eval.run_dir import CONFIG_FILE, PREDICTIONS_FILE, RESULTS_FILE
from partonomy.io import masks as mask_io
from partonomy.io.atomic import atomic_write_text
from partonomy.io.images import (
    fit_masks_to_image,
    ground_truth_mask,
    load_image,
    record_label,
    resolve_image_path,
)
from partonomy.io.predictions import Prediction, load_predictions
from partonomy.io.qa_pairs import QAPair, load_qa_pairs
from partonomy.viz.charts import bar_chart, histogram_counts
from partonomy.viz.overlay import display_overlay, png_bytes
from partonomy.viz.palette import hex_colour
from partonomy.viz.report import (
    Chart,
    GalleryItem,
    PartIoU,
    ReportData,
    RunSection,
    Table,
    render_html,
)

log = logging.getLogger(__name__)

GALLERY_SIZE = 4
"""Questions in each of a run's "best" and "worst" galleries."""
IOU_BIN_EDGES = tuple(k / 10 for k in range(11))
"""Bins of the per-mask IoU histogram: tenths, the last bin closed at 1."""
GALLERY_MIN_SIDE = 192
"""Gallery images are enlarged (nearest neighbour) until their short side has this many pixels."""
OVERALL_KEYS_FIRST = ("accuracy", "micro_giou", "macro_giou", "ciou")
"""Rows of the overall-metrics table that come first when present (the rest follow sorted)."""


@dataclass
class Run:
    """One run directory, read: its results, config and (when readable) its questions."""

    name: str
    path: Path
    results: dict[str, Any]
    config: dict[str, Any]
    records: list[QAPair] = field(default_factory=list)
    predictions: dict[str, Prediction] = field(default_factory=dict)
    scores: list[QuestionScore] = field(default_factory=list)
    qa_file: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def by_type(self) -> dict[str, Any] | None:
        by_type = self.results.get("by_type")
        return by_type if isinstance(by_type, dict) and by_type else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"unreadable JSON ({err})", file=path) from None


def load_run(path: str | Path, name: str) -> Run:
    """Read one run directory (see the module docstring for what is optional).

    Raises:
        ConfigError: ``path`` is not a directory or has no ``results.json``.
        FormatError: ``results.json`` is not a JSON object with an ``overall`` object.
    """
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path}: not a directory; pass a run directory of `partonomy eval`")
    results_path = path / RESULTS_FILE
    try:
        results = _read_json(results_path)
    except FileNotFoundError:
        raise ConfigError(
            f"{path} has no {RESULTS_FILE}: the run is unfinished or this is not a run directory;"
            " rerun the same `partonomy eval` command to finish it"
        ) from None
    if not isinstance(results, dict) or not isinstance(results.get("overall"), dict):
        raise FormatError(
            "expected an object with an 'overall' object of metrics",
            file=results_path,
            field="overall",
        )
    config: dict[str, Any] = {}
    try:
        raw = _read_json(path / CONFIG_FILE)
        config = raw if isinstance(raw, dict) else {}
    except FileNotFoundError:
        pass
    except FormatError as err:
        log.warning("%s", err)
    run = Run(name=name, path=path, results=results, config=config)
    _load_questions(run)
    return run


def _load_questions(run: Run) -> None:
    """Fill ``run.records/predictions/scores``, or add a note saying why not."""
    qa = run.config.get("qa_file") or (run.results.get("config") or {}).get("qa_file")
    predictions_path = run.path / PREDICTIONS_FILE
    if not qa:
        run.notes.append("No QA file named in config.json: no per-question charts or gallery.")
        return
    qa_path = Path(qa)
    if not qa_path.is_file():
        run.notes.append(f"QA file {qa_path} not found: no per-question charts or gallery.")
        return
    if not predictions_path.is_file():
        run.notes.append(f"No {PREDICTIONS_FILE}: no per-question charts or gallery.")
        return
    try:
        records = load_qa_pairs(qa_path)
        predictions = load_predictions(predictions_path)
    except PartonomyError as err:
        run.notes.append(f"Per-question view skipped: {err}")
        return
    limit = run.config.get("limit")
    records = records if limit is None else records[: int(limit)]
    known = {r.question_id for r in records}
    run.records = records
    run.predictions = {q: p for q, p in predictions.items() if q in known}
    run.qa_file = qa_path
    cfg = run.results.get("config") or {}
    try:
        run.scores = question_scores(
            records,
            run.predictions,
            matching=str(cfg.get("matching", run.config.get("matching", "paired"))),
            missing=str(cfg.get("missing", run.config.get("missing", "strict"))),
        )
    except PartonomyError as err:
        run.notes.append(f"Per-question scores skipped: {err}")


def run_names(paths: Sequence[Path]) -> list[str]:
    """Column names: each directory's name, or ``parent/name`` where names repeat."""
    names = [p.resolve().name for p in paths]
    return [
        f"{p.resolve().parent.name}/{n}" if names.count(n) > 1 else n
        for p, n in zip(paths, names, strict=True)
    ]


# ------------------------------------------------------------------------------------- tables
def _tables(runs: Sequence[Run]) -> list[Table]:
    out = []
    typed = [r for r in runs if r.by_type]
    if typed:
        columns = tables.layout_columns([r.by_type or {} for r in typed])
        names = [r.name for r in typed]
        out.append(
            Table(
                tables.TABLE2_TITLE,
                ["question type", *names],
                [
                    [header, *(tables.giou_cell(tables.metrics_for(r.results, k)) for r in typed)]
                    for k, header in columns
                ],
                note="One column per run; a row is a column of the paper's Table 2.",
            )
        )
        out.append(
            Table(
                tables.TABLE3_TITLE,
                ["question type", *names],
                [
                    [
                        tables.table3_header(k, header),
                        *(tables.text_cell(tables.metrics_for(r.results, k), k) for r in typed),
                    ]
                    for k, header in columns
                ],
                note="One column per run; a row is a column of the paper's Table 3.",
            )
        )
    keys: list[str] = []
    for run in runs:
        for key, value in run.results["overall"].items():
            if key not in keys and (value is None or isinstance(value, int | float)):
                keys.append(key)
    ordered = [k for k in OVERALL_KEYS_FIRST if k in keys] + sorted(
        k for k in keys if k not in OVERALL_KEYS_FIRST
    )
    rows = []
    for key in ordered:
        cells = []
        for run in runs:
            value = run.results["overall"].get(key)
            if value is None:
                cells.append(tables.NA)
            elif (isinstance(value, int) and not isinstance(value, bool)) or key.startswith("n_"):
                cells.append(str(int(value)))
            else:
                cells.append(f"{100 * float(value):.1f}")
        rows.append([key, *cells])
    out.append(
        Table(
            "Overall metrics (rates in %, counts as numbers)",
            ["metric", *(r.name for r in runs)],
            rows,
        )
    )
    return out


# ------------------------------------------------------------------------------------- charts
def _type_charts(runs: Sequence[Run]) -> list[Chart]:
    typed = [r for r in runs if r.by_type]
    if not typed:
        return []
    columns = [
        (k, h) for k, h in tables.layout_columns([r.by_type or {} for r in typed]) if k != "overall"
    ]
    present = [(k, h) for k, h in columns if any(k in (r.by_type or {}) for r in typed)]
    charts = []
    for metric, title in (
        ("macro_giou", "macro gIoU by question type (%)"),
        ("micro_giou", "micro gIoU by question type (%)"),
        ("accuracy", "accuracy by question type (%)"),
    ):
        series = {
            r.name: [((r.by_type or {}).get(k) or {}).get(metric) for k, _ in present]
            for r in typed
        }
        if any(v is not None for vs in series.values() for v in vs):
            charts.append(Chart(title, bar_chart(title, [h for _, h in present], series)))
    return charts


def _question_charts(runs: Sequence[Run]) -> list[Chart]:
    scored = [r for r in runs if r.scores]
    charts = []
    masked = [r for r in scored if any(s.pair_ious for s in r.scores)]
    if masked:
        edges = IOU_BIN_EDGES
        labels = [f"{edges[i]:.1f}–{edges[i + 1]:.1f}" for i in range(len(edges) - 1)]
        series: dict[str, list[float | None]] = {}
        for run in masked:
            ious = [iou for s in run.scores for iou in s.pair_ious]
            counts = histogram_counts(ious, edges)
            series[run.name] = [c / len(ious) for c in counts]
        title = "distribution of per-mask IoU (% of scored masks)"
        charts.append(
            Chart(
                title,
                bar_chart(title, labels, series, y_max=None),
                note="Each scored (prediction, part) pair once, under the run's matching policy.",
            )
        )
    if scored:
        counts = sorted({s.n_parts for r in scored for s in r.scores})
        labels = [f"{n} part{'s' if n != 1 else ''}" for n in counts]
        for metric, title in (
            ("accuracy", "accuracy vs number of parts in the answer (%)"),
            ("giou", "gIoU vs number of parts in the answer (%)"),
        ):
            series = {}
            for run in scored:
                values: list[float | None] = []
                for n in counts:
                    group = [s for s in run.scores if s.n_parts == n]
                    if metric == "accuracy":
                        got = [float(s.correct) for s in group if s.correct is not None]
                    else:
                        got = [s.giou for s in group if s.giou is not None]
                    values.append(float(np.mean(got)) if got else None)
                series[run.name] = values
            if any(v is not None for vs in series.values() for v in vs):
                charts.append(
                    Chart(
                        title,
                        bar_chart(title, labels, series),
                        note="Parts named by the correct answer; gIoU is the mean over questions "
                        "of each question's mean IoU (macro).",
                    )
                )
    return charts


# ------------------------------------------------------------------------------------ gallery
def _ranked(scores: Sequence[QuestionScore], n: int) -> tuple[list[int], list[int]]:
    """Indices of the ``n`` best and ``n`` worst questions (no question in both).

    Ranked by gIoU when the run has masks, then by correctness; ties by question order.
    """
    usable = [i for i, s in enumerate(scores) if s.giou is not None or s.correct is not None]

    def key(i: int) -> tuple[float, float]:
        s = scores[i]
        giou = -1.0 if s.giou is None else s.giou
        return (giou, -1.0 if s.correct is None else float(s.correct))

    best = sorted(usable, key=lambda i: (-key(i)[0], -key(i)[1], i))[:n]
    rest = [i for i in usable if i not in best]
    worst = sorted(rest, key=lambda i: (key(i)[0], key(i)[1], i))[:n]
    return best, worst


def _gallery_item(run: Run, index: int) -> GalleryItem:
    qa = run.records[index]
    score = run.scores[index]
    pred = run.predictions.get(qa.question_id)
    parts = list(dict.fromkeys(qa.correct_parts))
    truth_png = predicted_png = None
    try:
        assert run.qa_file is not None
        root = run.config.get("image_root")
        path = resolve_image_path(qa.image_path, run.qa_file.parent, Path(root) if root else None)
        label = record_label(index, qa)
        image = load_image(path, file=run.qa_file, record=label)
        size = (int(image.shape[0]), int(image.shape[1]))
        fitted = fit_masks_to_image(qa, size, file=run.qa_file, record=label)
        truth = [ground_truth_mask(fitted, part, size).astype(bool) for part in parts]
        truth_png = png_bytes(
            display_overlay(image, truth, parts, min_side=GALLERY_MIN_SIDE, legend=False)
        )
        if score.part_ious:  # the run has masks
            predicted = []
            for part in parts:
                rle = ((pred.masks if pred else None) or {}).get(part)
                mask = np.zeros(size, bool)
                if rle is not None:
                    if tuple(rle["size"]) != size:
                        rle = mask_io.resize(rle, *size)
                    mask = mask_io.decode(rle).astype(bool)
                predicted.append(mask)
            predicted_png = png_bytes(
                display_overlay(image, predicted, parts, min_side=GALLERY_MIN_SIDE, legend=False)
            )
    except PartonomyError as err:
        log.warning("report gallery: %s", err)
    iou_by_part = dict(score.part_ious)
    return GalleryItem(
        question_id=qa.question_id,
        question_type=qa.question_type,
        question=qa.question,
        truth_png=truth_png,
        predicted_png=predicted_png,
        chosen=None if score.chosen is None else qa.answer_choices[score.chosen],
        correct=qa.answer_choices[qa.correct_index],
        is_correct=score.correct,
        giou=score.giou,
        masks_scored=bool(score.part_ious),
        parts=[PartIoU(part, hex_colour(k), iou_by_part.get(part)) for k, part in enumerate(parts)],
    )


def _section(run: Run, gallery: int) -> RunSection:
    best, worst = _ranked(run.scores, gallery) if run.scores else ([], [])
    notes = list(run.notes)
    if run.scores and not best:
        notes.append(
            "No question was scored (no choice scores and no masks in predictions.jsonl): "
            "no gallery."
        )
    if not run.by_type:
        notes.append(
            "results.json has no per-question-type results (by_type): this run appears only in "
            "the overall-metrics table."
        )
    return RunSection(
        name=run.name,
        path=str(run.path),
        version=str(run.results.get("version") or run.config.get("version") or "unknown"),
        config={"config.json": run.config, "results.json config": run.results.get("config")},
        best=[_gallery_item(run, i) for i in best],
        worst=[_gallery_item(run, i) for i in worst],
        notes=notes,
    )


def build_report(
    run_dirs: Sequence[str | Path], *, gallery: int = GALLERY_SIZE, title: str | None = None
) -> ReportData:
    """The report's content for ``run_dirs`` (one column / section per run, in order).

    Raises:
        ConfigError: no run directory, or one without ``results.json``.
        FormatError: an unreadable ``results.json``.
    """
    if not run_dirs:
        raise ConfigError("give at least one run directory of `partonomy eval`")
    if gallery < 0:
        raise ConfigError(f"gallery size must be >= 0, got {gallery}")
    paths = [Path(p) for p in run_dirs]
    runs = [load_run(p, n) for p, n in zip(paths, run_names(paths), strict=True)]
    return ReportData(
        title=title or "partonomy evaluation report",
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        tables=_tables(runs),
        charts=_type_charts(runs) + _question_charts(runs),
        runs=[_section(r, gallery) for r in runs],
    )


def write_report(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    gallery: int = GALLERY_SIZE,
    title: str | None = None,
) -> Path:
    """Build the report of ``run_dirs`` and write it to ``out`` (atomically); returns ``out``."""
    html = render_html(build_report(run_dirs, gallery=gallery, title=title))
    out = Path(out)
    atomic_write_text(out, html)
    return out
