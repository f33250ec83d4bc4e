"""A small hand-made descriptor (3 categories, 9 objects, 14 images) and a toy embedder."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from partonomy.io import masks as mask_io
from partonomy.io.descriptor import Descriptor, Instance
from partonomy.io.labels import object_label, part_label

OBJECT_PARTS: dict[str, list[str]] = {
    "car": ["door", "mirror", "roof", "wheel", "window"],
    "bus": ["door", "seat", "wheel", "window"],
    "bicycle": ["handlebar", "pedal", "seat", "wheel"],
    "truck": ["cargo bed", "door", "wheel", "window"],
    "cat": ["ear", "head", "leg", "tail"],
    "dog": ["collar", "ear", "head", "leg", "tail"],
    "bird": ["beak", "head", "leg", "tail", "wing"],
    "chair": ["backrest", "leg", "seat"],
    "table": ["leg", "top"],
}
CATEGORIES: dict[str, list[str]] = {
    "vehicle": ["car", "bus", "bicycle", "truck"],
    "animal": ["cat", "dog", "bird"],
    "furniture": ["chair", "table"],
}
# (image label, visible parts): each image shows a subset of its object's parts
IMAGES: list[tuple[str, list[str]]] = [
    ("car", ["door", "wheel", "window"]),
    ("car", ["mirror", "roof", "wheel"]),
    ("bus", ["door", "seat", "wheel", "window"]),
    ("bicycle", ["handlebar", "pedal", "wheel"]),
    ("bicycle", ["seat", "wheel"]),
    ("truck", ["cargo bed", "door", "wheel"]),
    ("cat", ["ear", "head", "tail"]),
    ("cat", ["head", "leg"]),
    ("dog", ["collar", "head", "leg", "tail"]),
    ("bird", ["beak", "head", "wing"]),
    ("bird", ["leg", "tail", "wing"]),
    ("chair", ["backrest", "leg", "seat"]),
    ("table", ["leg", "top"]),
    ("table", ["top"]),
]
SIZE = 8


def _box_mask(k: int) -> mask_io.Rle:
    """A distinct small mask per part slot k (an 8x8 image, one 2x2 block)."""
    dense = np.zeros((SIZE, SIZE), dtype=np.uint8)
    r, c = divmod(k % 16, 4)
    dense[2 * r : 2 * r + 2, 2 * c : 2 * c + 2] = 1
    return mask_io.encode(dense)


def make_descriptor(images: Sequence[tuple[str, list[str]]] = IMAGES) -> Descriptor:
    instances = []
    for i, (obj, parts) in enumerate(images):
        segs = {object_label(obj): [mask_io.encode(np.ones((SIZE, SIZE), dtype=np.uint8))]}
        for k, part in enumerate(parts):
            segs[part_label(obj, part)] = [_box_mask(k)]
        # a second mask for the first part of every third image: masks are lists
        if i % 3 == 0:
            segs[part_label(obj, parts[0])].append(_box_mask(k + 1))
        instances.append(
            Instance(
                image_path=f"images/{i:03d}_{obj}.jpg",
                image_label=obj,
                segmentations=segs,
                segmentation_labels=list(segs),
            )
        )
    return Descriptor(
        dataset_name="tiny",
        instances=instances,
        part_graph={o: [part_label(o, p) for p in ps] for o, ps in OBJECT_PARTS.items()},
        instance_graph={c: list(v) for c, v in CATEGORIES.items()},
    )


class ToyEmbedder:
    """Deterministic letter-bigram embedder (unit rows): similar spellings, similar vectors."""

    name = "toy-bigram"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 32), dtype=np.float32)
        for row, text in enumerate(texts):
            for a, b in itertools.pairwise(text):
                out[row, (ord(a) * 31 + ord(b)) % 32] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


@pytest.fixture
def descriptor() -> Descriptor:
    return make_descriptor()


@pytest.fixture
def toy_embedder() -> ToyEmbedder:
    return ToyEmbedder()
