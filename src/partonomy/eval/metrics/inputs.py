"""Checking what a question feeds the metrics: score lists, mask sizes, ground-truth unions.

Errors name the file, the record and the field. Predictions are known here by question id only;
:class:`PredictionError` carries the id so that a caller that read the predictions file can add
the line number (:func:`partonomy.eval.scoring.score_files` does).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.predictions import Prediction
from partonomy.io.qa_pairs import N_CHOICES, QAPair


class PredictionError(FormatError):
    """A bad prediction, known by its question id (``question_id``), not yet by its line."""

    def __init__(self, message: str, *, file: str | Path | None, qid: str, field: str) -> None:
        super().__init__(message, file=file, record=f"question_id {qid!r}", field=field)
        self.question_id = qid


def check_scores(pred: Prediction, key: str, file: str | Path | None) -> None:
    """Check ``pred.<key>`` is None or 5 finite numbers.

    In-memory predictions (from the harness) get the same checks the file reader makes.

    Raises:
        PredictionError: naming ``file``, the question id and ``key``.
    """
    scores = getattr(pred, key)
    if scores is None:
        return
    if len(scores) != N_CHOICES:
        raise PredictionError(
            f"expected {N_CHOICES} scores, got {len(scores)}",
            file=file,
            qid=pred.question_id,
            field=key,
        )
    for k, value in enumerate(scores):
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        if isinstance(value, bool) or not finite:
            raise PredictionError(
                f"score {k} is {value!r}; scores must be finite numbers",
                file=file,
                qid=pred.question_id,
                field=key,
            )


def _qa_record(index: int, qa: QAPair) -> int | str:
    return f"{index} (question_id {qa.question_id!r})" if qa.explicit_id else index


class MaskInputs:
    """Builds each question's truth unions and checks (or resizes) its predicted masks.

    Args:
        resize_mismatched: resize a predicted mask of the wrong size (recorded in ``resized``)
            instead of raising :class:`PredictionError`.
        name_check: record predicted masks keyed by a name that is not a correct part (in
            ``unmatched_names``), for the ``paired`` matching's warning.
        qa_file, predictions_file: named in errors.
    """

    def __init__(
        self,
        *,
        resize_mismatched: bool,
        name_check: bool,
        qa_file: str | Path | None = None,
        predictions_file: str | Path | None = None,
    ) -> None:
        self.resize_mismatched = resize_mismatched
        self.name_check = name_check
        self.qa_file = qa_file
        self.pred_file = predictions_file
        self.resized: list[str] = []
        self.unmatched_names: list[str] = []

    def __call__(
        self, index: int, qa: QAPair, predicted: Mapping[str, mask_io.Rle] | None
    ) -> tuple[dict[str, mask_io.Rle], list[tuple[str, mask_io.Rle | None]]]:
        """One question's ``(predicted, truth)`` for :func:`~.matching.question_masks`.

        Args:
            index: the record's 0-based position in the QA file (for errors).
            qa: the record; its correct parts (unique, in answer order) give the truth.
            predicted: part -> RLE, or None.

        Returns:
            The predicted masks (resized if allowed) and, per correct part, the union of its
            ground-truth masks; a part without masks gets an empty mask of the record's size
            (None only when neither truth nor prediction has a mask to take the size from).

        Raises:
            FormatError: ground-truth masks of one record differ in size (names the QA file).
            PredictionError: a predicted mask's size differs from the truth's.
        """
        size: list[int] | None = None
        unions: list[tuple[str, mask_io.Rle | None]] = []
        for part in dict.fromkeys(qa.correct_parts):  # unique, in answer order
            rles = qa.segmentations.get(part, [])
            for k, rle in enumerate(rles):
                if size is None:
                    size = list(rle["size"])
                elif list(rle["size"]) != size:
                    raise FormatError(
                        f"mask size {rle['size']} differs from {size} of the record's first mask",
                        file=self.qa_file,
                        record=_qa_record(index, qa),
                        field=f"segmentations.{part}[{k}]",
                    )
            unions.append((part, mask_io.union(rles) if rles else None))
        preds = self._check_predicted(qa, predicted or {}, size)
        if self.name_check:
            names = {p for p, _ in unions}
            self.unmatched_names += [f"{qa.question_id!r}/{p!r}" for p in preds if p not in names]
        if size is None and preds:  # no truth mask has a size: take the predictions'
            size = list(next(iter(preds.values()))["size"])
        if size is not None:
            unions = [(p, mask_io.empty(*size) if u is None else u) for p, u in unions]
        return preds, unions

    def _check_predicted(
        self, qa: QAPair, predicted: Mapping[str, mask_io.Rle], size: list[int] | None
    ) -> dict[str, mask_io.Rle]:
        out = {}
        for part, rle in predicted.items():
            got = list(rle["size"])
            if size is None:
                size = got
            if got != size:
                if not self.resize_mismatched:
                    raise PredictionError(
                        f"mask size {got} (h, w) differs from the ground truth's {size}; "
                        "predict masks at the image's resolution, or pass --resize-mismatched",
                        file=self.pred_file,
                        qid=qa.question_id,
                        field=f"masks.{part}",
                    )
                self.resized.append(f"{qa.question_id!r}/{part!r} {got} -> {size}")
                rle = mask_io.resize(rle, size[0], size[1])
            out[part] = rle
        return out
