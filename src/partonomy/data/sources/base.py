"""What every data source provides, and the small helpers the readers share.

A source is described by a :class:`SourceInfo` (registered in
:data:`partonomy.registries.SOURCES`). It may provide:

* ``open_reader(root, options)``: a stage-1 :class:`Stage1Reader` over the seed README's
  ``dataset/`` tree at ``root``, yielding :class:`~partonomy.data.sample.TrainingSample`;
* ``build_descriptor(...)``: a PARTONOMY descriptor builder (``partonomy build-descriptor``);
* ``check(root, deep)``: a :class:`CheckResult` for ``partonomy data check``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from PIL import Image

from partonomy.data.sample import TrainingSample
from partonomy.errors import FormatError

GROUPS = ("sem_seg", "refer_seg", "vqa", "reason_seg")
"""The four stage-1 groups, in the order of ``--sample_rates``."""

Status = Literal["found", "missing", "malformed"]


class Stage1Reader(Protocol):
    """A stage-1 training source: ``len`` items, each turned into a sample by ``sample``.

    ``sample(index, rng)`` must be a pure function of ``index`` and the generator's state (it
    may only draw randomness from ``rng``), so the mixture is reproducible.
    """

    name: str

    def __len__(self) -> int: ...

    def sample(self, index: int, rng: np.random.Generator) -> TrainingSample: ...


@dataclass(frozen=True)
class Stage1Options:
    """Options every stage-1 reader understands.

    Attributes:
        num_classes_per_sample: at most this many classes / expressions per sample (the original
            ``num_classes_per_sample``; 5 in PLUM's stage 1).
        explanatory: probability of an explanatory answer for a ReasonSeg image that has one.
        split: ``"train"`` or ``"val"``; each reader maps it to its dataset's folder names.
    """

    num_classes_per_sample: int = 5
    explanatory: float = 0.1
    split: str = "train"

    def __post_init__(self) -> None:
        if self.num_classes_per_sample < 1:
            raise ValueError("num_classes_per_sample must be at least 1")
        if not 0.0 <= self.explanatory <= 1.0:
            raise ValueError("explanatory must be a probability in [0, 1]")


@dataclass
class CheckResult:
    """What the dataset doctor found for one dataset.

    Attributes:
        name: the source name.
        status: ``found`` (usable), ``missing`` (a required path is absent) or ``malformed``
            (present but unreadable or inconsistent).
        expected: the paths the source needs, relative to the ``dataset/`` root (globs allowed).
        counts: what was counted (images, label maps, annotations, ...).
        problems: one line per problem found.
    """

    name: str
    status: Status
    expected: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SourceInfo:
    """A registered data source.

    Attributes:
        name: registry key (e.g. ``"ade20k"``).
        description: one line for ``partonomy ls sources``.
        group: its stage-1 group (one of :data:`GROUPS`), or None if it is not a stage-1 source.
        needed_by: the doctor configs that need it (``"stage1"``, ``"stage2"``, ``"eval"``).
        open_reader: ``(root, options) -> Stage1Reader``, where ``root`` is the ``dataset/`` dir.
        build_descriptor: ``(annotations, images, out, *, object_names, skip_bad, progress)``
            -> :class:`~partonomy.data.sources.part_coco.BuildResult`.
        check: ``(root, deep) -> CheckResult``.
    """

    name: str
    description: str
    group: str | None = None
    needed_by: tuple[str, ...] = ()
    open_reader: Callable[[Path, Stage1Options], Stage1Reader] | None = None
    build_descriptor: Callable[..., Any] | None = None
    check: Callable[[Path, bool], CheckResult] | None = None


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, reading only its header.

    Raises:
        FormatError: the file is missing or not an image.
    """
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except FileNotFoundError:
        raise FormatError(
            "image file not found", file=path, hint="check the dataset tree"
        ) from None
    except OSError as err:
        raise FormatError(f"not a readable image ({err})", file=path) from None


def read_label_map(path: Path) -> np.ndarray:
    """A single-channel PNG label map as an integer ``(H, W)`` array of its raw values.

    Palette (``P``) PNGs give their palette indices, which is how Mapillary stores class ids.

    Raises:
        FormatError: the file is missing, unreadable, or has several channels.
    """
    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "P", "I", "I;16"):
                raise FormatError(
                    f"a label map must be single-channel (mode L or P), got mode {img.mode}",
                    file=path,
                    hint="use the dataset's original annotation PNGs",
                )
            return np.asarray(img)
    except FileNotFoundError:
        raise FormatError("label map not found", file=path) from None
    except OSError as err:
        raise FormatError(f"not a readable PNG ({err})", file=path) from None


def resolve_image(images_dir: Path, file_name: str) -> Path | None:
    """Find an image named by an annotation under ``images_dir``.

    Tries, in order: ``images_dir/file_name``; ``images_dir/<basename>`` (a ``file_name`` that
    carries a split folder, like PACO's ``train2017/x.jpg``, with ``images_dir`` already at the
    split); ``images_dir/<synset>/<basename>`` (ImageNet-style ``n01440764_1.JPEG`` in per-synset
    folders). An absolute ``file_name`` that exists is returned as is.

    Returns:
        The existing path, or None.
    """
    direct = Path(file_name)
    if direct.is_absolute() and direct.is_file():
        return direct
    base = direct.name
    tries = [images_dir / file_name, images_dir / base]
    if "_" in base:
        tries.append(images_dir / base.split("_")[0] / base)
    for path in tries:
        if path.is_file():
            return path
    return None


def count_files(directory: Path, suffix: str) -> int:
    """Number of files in ``directory`` (not recursive) whose name ends with ``suffix``."""
    if not directory.is_dir():
        return 0
    return sum(1 for e in _scandir(directory) if e.name.endswith(suffix))


def stems(directory: Path, suffix: str) -> set[str]:
    """File stems in ``directory`` whose name ends with ``suffix`` (fast: one ``scandir``)."""
    if not directory.is_dir():
        return set()
    n = len(suffix)
    return {e.name[:-n] for e in _scandir(directory) if e.name.endswith(suffix)}


def _scandir(directory: Path) -> list[Any]:
    import os

    with os.scandir(directory) as it:
        return [e for e in it if e.is_file()]


def quick_json_check(path: Path) -> str | None:
    """A cheap sanity check of a (possibly huge) JSON file without parsing it.

    Returns:
        None if it starts with ``{``/``[`` and ends with the matching bracket, else the problem
        (empty, truncated, not JSON).
    """
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    with open(path, "rb") as handle:
        head = handle.read(64).lstrip()
        handle.seek(max(0, size - 64))
        tail = handle.read().rstrip()
    if not head or head[:1] not in (b"{", b"["):
        return "does not start like JSON"
    closing = b"}" if head[:1] == b"{" else b"]"
    if not tail.endswith(closing):
        return "the file is truncated (no closing bracket)"
    return None


def missing_paths(root: Path, relative: list[str]) -> list[str]:
    """The entries of ``relative`` (paths under ``root``) that do not exist."""
    return [rel for rel in relative if not (root / rel).exists()]
