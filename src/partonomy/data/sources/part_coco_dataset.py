"""The source hooks of one COCO-style part dataset (PACO-LVIS, PASCAL-Part, PartImageNet).

The three datasets differ only in where their files lie and how a category reads
(:class:`~partonomy.data.sources.part_coco.PartCategory`); :class:`CocoPartDataset` holds those
and provides the ``build_descriptor``, ``open_reader`` and ``check`` hooks of their
:class:`~partonomy.data.sources.base.SourceInfo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from partonomy.data.coco_index import CocoIndex, Problems
from partonomy.data.sources.base import CheckResult, Stage1Options
from partonomy.data.sources.part_coco import (
    BuildResult,
    CategoryParser,
    PartSemSegReader,
    build_part_descriptor,
    check_coco_source,
)


@dataclass(frozen=True)
class CocoPartDataset:
    """One COCO-style part dataset: where it lies under ``dataset/`` and how categories read.

    Its bound methods are the dataset's :class:`~partonomy.data.sources.base.SourceInfo` hooks.

    Attributes:
        name: the source name (also the descriptor's ``dataset_name``).
        parse: category record -> :class:`PartCategory`.
        annotations: the annotation file under ``dataset/``, with a ``{split}`` field.
        images: the folder ``file_name``s resolve against under ``dataset/`` (may hold
            ``{split}``).
        check_images: the image folder the doctor checks for the train split, if not ``images``.
    """

    name: str
    parse: CategoryParser
    annotations: str
    images: str
    check_images: str | None = None

    def build(
        self,
        annotations: Path,
        images: Path,
        out: Path,
        *,
        object_names: dict[str, str] | None = None,
        skip_bad: bool = False,
        progress: bool = True,
    ) -> BuildResult:
        """``partonomy build-descriptor --source NAME``: see :func:`build_part_descriptor`."""
        index = CocoIndex.load(annotations, problems=Problems(skip_bad=skip_bad))
        return build_part_descriptor(
            index,
            self.parse,
            dataset_name=self.name,
            images_dir=Path(images),
            out=Path(out),
            object_names=object_names,
            progress=progress,
        )

    def open_reader(self, root: Path, options: Stage1Options) -> PartSemSegReader:
        """The stage-1 sem-seg reader over ``options.split``."""
        path = root / self.annotations.format(split=options.split)
        index = CocoIndex.load(path, problems=Problems(skip_bad=False))
        images = root / self.images.format(split=options.split)
        return PartSemSegReader(
            self.name, index, self.parse, images, options.num_classes_per_sample
        )

    def check(self, root: Path, deep: bool) -> CheckResult:
        """Doctor check of the train split (:func:`check_coco_source`)."""
        images = (self.check_images or self.images).format(split="train")
        return check_coco_source(
            self.name, root, self.annotations.format(split="train"), images, deep=deep
        )
