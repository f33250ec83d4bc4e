"""Images of QA records: where they are, reading them, and fitting ground-truth masks to them.

Conventions:
    * An ``image_path`` in a QA file is relative to the QA file's directory unless it is absolute;
      with an explicit ``image_root``, relative paths resolve against that directory instead.
    * Images are returned as ``(H, W, 3)`` uint8 RGB arrays in the pixel frame they are stored in
      (EXIF orientation is ignored: masks are annotated in the stored frame). Grayscale, palette
      and RGBA images are converted to RGB (alpha dropped).
    * A ground-truth RLE whose ``size`` differs from its image's ``(H, W)`` is resized to the image
      by nearest neighbour with a logged warning, as the original loader did, or refused when
      ``strict`` (see :func:`fit_masks_to_image`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.qa_pairs import QAPair

logger = logging.getLogger(__name__)

IMAGE_FIELD = "image_path"
"""The QA field that errors about a record's image name."""


def record_label(index: int, qa: QAPair) -> str:
    """How errors name a record: its 0-based position, plus its id when the file gives one."""
    return f"{index} (question_id {qa.question_id!r})" if qa.explicit_id else str(index)


def resolve_image_path(image_path: str, qa_dir: Path, image_root: Path | None = None) -> Path:
    """Absolute location of a record's image.

    Args:
        image_path: the record's ``image_path`` string.
        qa_dir: directory of the QA file (relative paths resolve against it by default).
        image_root: if given, relative paths resolve against this directory instead.

    Returns:
        The path (not checked for existence). Absolute ``image_path`` values are kept as they are.
    """
    path = Path(image_path)
    if path.is_absolute():
        return path
    return (image_root if image_root is not None else qa_dir) / path


def _open_error(err: BaseException, image: Path, file: Path, record: str) -> FormatError:
    if isinstance(err, FileNotFoundError) or not image.exists():
        return FormatError(
            f"image not found: {image}",
            file=file,
            record=record,
            field=IMAGE_FIELD,
            hint="image paths are relative to the QA file's directory; pass --image-root "
            "if the images live elsewhere",
        )
    return FormatError(
        f"cannot read image {image}: {err}",
        file=file,
        record=record,
        field=IMAGE_FIELD,
        hint="the image file is corrupt or not an image; re-download or re-create it",
    )


def image_size(image: Path, *, file: Path, record: str) -> tuple[int, int]:
    """``(H, W)`` of an image, read from its header only (cheap; used to check a file up front).

    Raises:
        FormatError: the image is missing or is not a readable image, naming the QA ``file``,
            the ``record`` and the field ``image_path``.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image) as img:
            width, height = img.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise _open_error(err, image, file, record) from None
    return int(height), int(width)


def load_image(image: Path, *, file: Path, record: str) -> np.ndarray:
    """Decode an image fully to a ``(H, W, 3)`` uint8 RGB array.

    Raises:
        FormatError: the image is missing, truncated or not an image (names file, record, field).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image) as img:
            img.load()  # decodes every byte now, so a truncated file fails here, not later
            rgb = img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise _open_error(err, image, file, record) from None
    return np.asarray(rgb, dtype=np.uint8)


def fit_masks_to_image(
    qa: QAPair, size: tuple[int, int], *, file: Path, record: str, strict: bool = False
) -> QAPair:
    """Make every ground-truth mask of ``qa`` the size of its image.

    Args:
        qa: the record.
        size: ``(H, W)`` of the record's image.
        file, record: how errors and warnings name the record.
        strict: refuse a mismatch instead of resizing it.

    Returns:
        ``qa`` itself when every mask already has ``size``; otherwise a copy whose mismatched
        masks are resized (nearest neighbour) to ``size``. The input is never modified.

    Raises:
        FormatError: under ``strict``, for the first mask whose size differs (names the field
            ``segmentations.<part>[k]`` and both sizes).
    """
    height, width = size
    fitted: dict[str, list[mask_io.Rle]] = {}
    changed = False
    for part, rles in qa.segmentations.items():
        out = []
        for k, rle in enumerate(rles):
            got = (int(rle["size"][0]), int(rle["size"][1]))
            if got == (height, width):
                out.append(rle)
                continue
            where = f"segmentations.{part}[{k}]"
            message = (
                f"mask size [{got[0]}, {got[1]}] differs from the image size [{height}, {width}]"
            )
            if strict:
                raise FormatError(
                    message,
                    file=file,
                    record=record,
                    field=where,
                    hint="fix the mask, or run without --strict to resize it to the image",
                )
            logger.warning("%s, record %s, field '%s': %s; resized", file, record, where, message)
            out.append(mask_io.resize(rle, height, width))
            changed = True
        fitted[part] = out
    return dataclasses.replace(qa, segmentations=fitted) if changed else qa


def ground_truth_mask(qa: QAPair, part: str, size: tuple[int, int]) -> np.ndarray:
    """Bool ``(H, W)`` ground truth of ``part``: the union of its masks, resized to ``size`` if needed.

    A part without masks (or not in ``segmentations``) is an all-False mask.
    """
    rles = [
        r if tuple(r["size"]) == tuple(size) else mask_io.resize(r, *size)
        for r in qa.segmentations.get(part, [])
    ]
    return mask_io.decode(mask_io.union(rles, size=size))
