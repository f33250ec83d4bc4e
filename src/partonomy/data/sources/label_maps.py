"""Stage-1 semantic segmentation from PNG label maps (ADE20K, COCO-Stuff, Mapillary Vistas).

Each dataset maps its raw PNG values to class indices (``-1`` = unlabeled) and says which classes
may be asked about. A sample takes up to ``num_classes_per_sample`` of the classes present in the
image, in random order, asks about them in one question, and names them in one answer.

Mask convention: 1 where the pixel is the class, 0 where it is another known class, and
:data:`~partonomy.data.sample.IGNORE_INDEX` (255) where the pixel is unlabeled in the dataset (its
class is unknown, so it is excluded from losses and metrics). Pixels of a known class that is
merely never asked about (e.g. COCO-Stuff's ``wall-other``) are 0: they are not the class.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from partonomy.data.sample import IGNORE_INDEX, TrainingSample
from partonomy.data.sources.base import CheckResult, image_size, read_label_map, stems
from partonomy.data.sources.templates import compose_turn, pick_compatible
from partonomy.errors import FormatError

UNLABELED = -1
"""Class index of unlabeled pixels after a dataset's ``to_classes``."""


def packaged_class_names(dataset: str) -> list[str]:
    """The class-name list shipped with the package (``classes/{dataset}.json``, key ``names``)."""
    text = resources.files("partonomy.data.sources").joinpath(f"classes/{dataset}.json").read_text()
    names = json.loads(text)["names"]
    return [str(n) for n in names]


def pair_files(
    image_dir: Path, label_dir: Path, image_suffix: str = ".jpg", label_suffix: str = ".png"
) -> list[tuple[Path, Path]]:
    """``(image, label map)`` pairs matched by file stem, sorted by stem.

    Raises:
        FormatError: the label directory has no label maps, or a label map has no image (naming
            the first such file and the count), since a training run would fail on it later.
    """
    labels = sorted(stems(label_dir, label_suffix))
    if not labels:
        raise FormatError(
            f"no *{label_suffix} label maps", file=label_dir, hint="run `partonomy data check`"
        )
    images = stems(image_dir, image_suffix)
    orphans = [s for s in labels if s not in images]
    if orphans:
        raise FormatError(
            f"{len(orphans)} label map(s) have no image in {image_dir}",
            file=label_dir / f"{orphans[0]}{label_suffix}",
            hint="complete the image folder or run `partonomy data check`",
        )
    return [(image_dir / f"{s}{image_suffix}", label_dir / f"{s}{label_suffix}") for s in labels]


class LabelMapReader:
    """A stage-1 reader over ``(image, label map)`` pairs.

    Args:
        name: source name (``TrainingSample.source``).
        pairs: the ``(image, label PNG)`` paths.
        class_names: class index -> name (names are the spans, used verbatim).
        to_classes: raw PNG values ``(H, W)`` -> class indices ``(H, W)`` int, ``-1`` unlabeled.
        askable: class indices that may be asked about (default: all).
        num_classes_per_sample: at most this many classes per sample.
    """

    def __init__(
        self,
        name: str,
        pairs: Sequence[tuple[Path, Path]],
        class_names: Sequence[str],
        to_classes: Callable[[np.ndarray], np.ndarray],
        *,
        askable: Sequence[int] | None = None,
        num_classes_per_sample: int = 5,
    ) -> None:
        self.name = name
        self.pairs = list(pairs)
        self.class_names = list(class_names)
        self.to_classes = to_classes
        self.askable = np.zeros(len(self.class_names), dtype=bool)
        self.askable[list(range(len(self.class_names))) if askable is None else list(askable)] = 1
        self.num_classes_per_sample = num_classes_per_sample

    def __len__(self) -> int:
        return len(self.pairs)

    def class_map(self, index: int) -> np.ndarray:
        """Class indices ``(H, W)`` int32 of item ``index`` (``-1`` = unlabeled)."""
        image_path, label_path = self.pairs[index]
        raw = read_label_map(label_path)
        classes = self.to_classes(raw).astype(np.int32, copy=False)
        classes[(classes >= len(self.class_names))] = UNLABELED  # values outside the class list
        h, w = image_size(image_path)
        if classes.shape != (h, w):
            raise FormatError(
                f"label map is {classes.shape[0]}x{classes.shape[1]} but its image is {h}x{w}",
                file=label_path,
                hint="the image and its annotation PNG must have the same size",
            )
        return classes

    def sample(self, index: int, rng: np.random.Generator) -> TrainingSample:
        """One sample about up to ``num_classes_per_sample`` classes present in item ``index``.

        An item with no askable class present is skipped in favour of the next item (wrapping
        around), which keeps the result a pure function of ``(index, rng)``.

        Raises:
            FormatError: a file is unreadable, or no item at all has an askable class.
        """
        for offset in range(len(self.pairs)):
            item = (index + offset) % len(self.pairs)
            classes = self.class_map(item)
            present = [int(c) for c in np.unique(classes) if c >= 0 and self.askable[c]]
            if present:
                return self._build(item, classes, present, rng)
        raise FormatError(
            "no label map holds a class that can be asked about", file=self.pairs[0][1].parent
        )

    def _build(
        self, item: int, classes: np.ndarray, present: list[int], rng: np.random.Generator
    ) -> TrainingSample:
        order = [present[k] for k in rng.permutation(len(present))]
        by_name = {self.class_names[c]: c for c in order}
        names = pick_compatible(list(by_name), self.num_classes_per_sample)
        question, answer, kept = compose_turn(names, rng)
        unlabeled = classes == UNLABELED
        masks: dict[str, np.ndarray] = {}
        for name in kept:
            mask = (classes == by_name[name]).astype(np.uint8)
            mask[unlabeled] = IGNORE_INDEX
            masks[name] = mask
        image_path, label_path = self.pairs[item]
        return TrainingSample(
            image=image_path,
            conversation=[(question, answer)],
            masks=masks,
            source=self.name,
            meta={"file": str(label_path), "item": str(item)},
        )


DEEP_SAMPLE = 20
"""How many label maps ``--deep`` opens per dataset."""


def check_pairs(
    name: str,
    root: Path,
    image_rel: str,
    label_rel: str,
    *,
    deep: bool,
    n_classes: int | None = None,
    extra_expected: Sequence[str] = (),
    image_suffix: str = ".jpg",
) -> CheckResult:
    """Doctor check of an image folder and its label-map folder (paired by stem).

    ``missing`` when a folder is absent or empty; ``malformed`` when a label map has no image,
    or (with ``deep``) one of the first :data:`DEEP_SAMPLE` label maps is unreadable,
    multi-channel, or holds values above ``n_classes`` other than 255.
    """
    expected = [f"{image_rel}/*{image_suffix}", f"{label_rel}/*.png", *extra_expected]
    images = stems(root / image_rel, image_suffix)
    labels = stems(root / label_rel, ".png")
    result = CheckResult(
        name, "found", expected, {"images": len(images), "label maps": len(labels)}
    )
    for rel, found in ((image_rel, images), (label_rel, labels)):
        if not found:
            result.status = "missing"
            result.problems.append(f"no files in {rel}")
    for rel in extra_expected:
        if not (root / rel).exists():
            result.status = "missing"
            result.problems.append(f"missing {rel}")
    if result.status == "missing":
        return result
    orphans = sorted(labels - images)
    if orphans:
        result.status = "malformed"
        result.problems.append(
            f"{len(orphans)} label map(s) without an image, e.g. {label_rel}/{orphans[0]}.png"
        )
    if deep:
        for stem in sorted(labels)[:DEEP_SAMPLE]:
            path = root / label_rel / f"{stem}.png"
            try:
                values = read_label_map(path)
            except FormatError as err:
                result.status = "malformed"
                result.problems.append(str(err))
                continue
            top = int(values[values != 255].max(initial=0))
            if n_classes is not None and top > n_classes:
                result.status = "malformed"
                result.problems.append(f"{path}: value {top} is above the {n_classes} classes")
    return result
