"""The dataset descriptor JSON, as the original code writes it.

Layout::

    {
      "dataset_name": str,
      "instances": [
        {"image_path": str, "image_label": str,
         "segmentations": {label: [mask, ...]}, "segmentation_labels": [label, ...]},
        ...
      ],
      "part_graph": {object: [part label, ...]},
      "instance_graph": {category: [object, ...]}
    }

Labels follow :mod:`partonomy.io.labels`. Masks are normalised to compressed RLE on load
(polygons need an RLE ``size`` next to them, or the image size given in ``image_size``).
Unknown keys of an instance are kept in ``extra`` and written back, so files round-trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.atomic import atomic_write_json
from partonomy.io.jsonfile import load_json
from partonomy.io.labels import is_part_label, part_name

_INSTANCE_KEYS = ("image_path", "image_label", "segmentations", "segmentation_labels")


@dataclass
class Instance:
    """One annotated image: an object and the masks of its visible parts.

    Attributes:
        image_path: path of the image, absolute or relative to the descriptor's directory.
        image_label: the object label of the image (e.g. ``"agricultural airplane"``).
        segmentations: label -> list of RLE masks (all of one image size, ``[h, w]``).
        segmentation_labels: the labels present, in the original order.
        extra: any other keys of the record, preserved verbatim.
    """

    image_path: str
    image_label: str
    segmentations: dict[str, list[mask_io.Rle]]
    segmentation_labels: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    def part_names(self) -> list[str]:
        """Sorted bare names of the parts annotated in this image (object masks excluded)."""
        return sorted({part_name(lbl) for lbl in self.segmentations if is_part_label(lbl)})

    def part_masks(self) -> dict[str, list[mask_io.Rle]]:
        """Bare part name -> its masks (object masks excluded)."""
        out: dict[str, list[mask_io.Rle]] = {}
        for label, rles in self.segmentations.items():
            if is_part_label(label):
                out.setdefault(part_name(label), []).extend(rles)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_path": self.image_path,
            "image_label": self.image_label,
            "segmentations": self.segmentations,
            "segmentation_labels": self.segmentation_labels,
            **self.extra,
        }


@dataclass
class Descriptor:
    """A whole dataset descriptor. ``root`` is the directory relative image paths resolve against."""

    dataset_name: str
    instances: list[Instance]
    part_graph: dict[str, list[str]]
    instance_graph: dict[str, list[str]]
    root: Path = field(default_factory=Path)

    def image_path(self, instance: Instance) -> Path:
        """Absolute path of an instance's image."""
        path = Path(instance.image_path)
        return path if path.is_absolute() else self.root / path

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_name": self.dataset_name,
            "instances": [inst.to_dict() for inst in self.instances],
            "part_graph": self.part_graph,
            "instance_graph": self.instance_graph,
        }


def _parse_instance(raw: Any, index: int, path: Path) -> Instance:
    if not isinstance(raw, dict):
        raise FormatError("an instance must be an object", file=path, record=index)
    for key in _INSTANCE_KEYS:
        if key not in raw:
            raise FormatError("missing key", file=path, record=index, field=key)
    segs_raw = raw["segmentations"]
    if not isinstance(segs_raw, dict):
        raise FormatError(
            "must map label -> list of masks", file=path, record=index, field="segmentations"
        )
    size = raw.get("image_size")
    try:
        height, width = (int(size[0]), int(size[1])) if size else (None, None)
    except (TypeError, ValueError, IndexError, KeyError):
        raise FormatError(
            "must be [height, width]", file=path, record=index, field="image_size"
        ) from None
    segmentations: dict[str, list[mask_io.Rle]] = {}
    for label, masks in segs_raw.items():
        if isinstance(masks, dict):  # a single mask where a list was expected
            masks = [masks]
        if not isinstance(masks, list):
            raise FormatError(
                "must be a list of masks", file=path, record=index, field=f"segmentations.{label}"
            )
        rles = []
        for k, mask in enumerate(masks):
            try:
                rles.append(mask_io.to_rle(mask, height, width))
            except (ValueError, TypeError, KeyError, IndexError) as err:
                raise FormatError(
                    str(err), file=path, record=index, field=f"segmentations.{label}[{k}]"
                ) from None
        segmentations[label] = rles
    labels = raw["segmentation_labels"]
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise FormatError(
            "must be a list of strings", file=path, record=index, field="segmentation_labels"
        )
    extra = {k: v for k, v in raw.items() if k not in _INSTANCE_KEYS}
    return Instance(
        image_path=str(raw["image_path"]),
        image_label=str(raw["image_label"]),
        segmentations=segmentations,
        segmentation_labels=list(labels),
        extra=extra,
    )


def load_descriptor(path: str | Path) -> Descriptor:
    """Read and validate a descriptor JSON.

    Raises:
        FormatError: naming the file, the instance index and the field that is wrong.
    """
    path = Path(path)
    raw = load_json(path, what="dataset descriptor")
    if not isinstance(raw, dict):
        raise FormatError("a descriptor must be a JSON object", file=path)
    for key in ("instances",):
        if key not in raw:
            raise FormatError("missing key", file=path, field=key)
    if not isinstance(raw["instances"], list):
        raise FormatError("must be a list", file=path, field="instances")
    instances = [_parse_instance(r, i, path) for i, r in enumerate(raw["instances"])]
    return Descriptor(
        dataset_name=str(raw.get("dataset_name", path.stem)),
        instances=instances,
        part_graph={str(k): list(v) for k, v in (raw.get("part_graph") or {}).items()},
        instance_graph={str(k): list(v) for k, v in (raw.get("instance_graph") or {}).items()},
        root=path.parent,
    )


def save_descriptor(descriptor: Descriptor, path: str | Path) -> None:
    """Write a descriptor JSON atomically (compact: descriptors hold many masks)."""
    atomic_write_json(path, descriptor.to_dict(), indent=None)
