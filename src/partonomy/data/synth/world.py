"""Generating a whole Partonomy-Synth world on disk, in the benchmark's own formats.

Layout written under ``out_dir``::

    images/000000.png ...    one image per instance (PNG or JPEG)
    descriptor.json          the dataset descriptor (partonomy.io.descriptor), image paths relative
    graph.yaml               the concept graph (partonomy.io.graph) of the selected world
    synth_config.yaml        seed, image count and config, to regenerate the world

Determinism: image ``i`` depends only on ``(seed, i)`` and the config, through its own
``np.random.SeedSequence([seed, 0, i])``; the target object of image ``i`` comes from a per-round
permutation seeded by ``(seed, 1, i // n_objects)``. So the same seed gives byte-identical files,
whatever ``workers`` is, and a world of N images is a prefix of a world of M > N images.
PNG files carry no timestamp; JSON and YAML are written in a fixed key order.
"""

from __future__ import annotations

import io
import multiprocessing
import os
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image
from tqdm import tqdm

from partonomy.config import to_dict
from partonomy.data.synth.config import SynthConfig
from partonomy.data.synth.render import annotate, draw_red_box, render
from partonomy.data.synth.scene import sample_scene
from partonomy.data.synth.taxonomy import ObjectSpec, graph_of, select_objects
from partonomy.errors import ConfigError
from partonomy.io import masks as mask_io
from partonomy.io.atomic import atomic_write_text
from partonomy.io.descriptor import Descriptor, Instance, save_descriptor
from partonomy.io.graph import save_graph
from partonomy.io.labels import is_part_label, object_label, part_label, part_name

DATASET_NAME = "partonomy-synth"
DESCRIPTOR_NAME = "descriptor.json"
GRAPH_NAME = "graph.yaml"
CONFIG_NAME = "synth_config.yaml"
IMAGES_DIR = "images"
MAX_TRIES = 20
"""Scene re-draws (same generator) before giving up on an image whose target shows no part."""

PNG_LEVEL = 3
"""zlib level of the PNG files: level 6 is ~2x slower for ~10 % smaller files."""

_STREAM_IMAGE = 0
_STREAM_ORDER = 1


def target_of(index: int, seed: int, specs: tuple[ObjectSpec, ...]) -> ObjectSpec:
    """The target object of image ``index``: each round of ``len(specs)`` images shows each once."""
    n = len(specs)
    order = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_ORDER, index // n]))
    return specs[int(order.permutation(n)[index % n])]


def draw_image(index: int, seed: int, cfg: SynthConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Draw image ``index`` of the world ``(seed, cfg)`` and annotate it.

    Returns:
        ``(image, record)``: ``(size, size, 3)`` uint8 RGB, and a dict with ``target``
        (ObjectSpec), ``object_mask`` and ``parts`` (bool ``(size, size)`` masks; part name ->
        mask, taxonomy order), ``hidden_parts``, ``n_objects`` and ``red_box`` (XYWH or None).

    Raises:
        RuntimeError: no scene in :data:`MAX_TRIES` showed any part of the target (a config
            whose visibility rule is impossible to meet, e.g. ``min_part_pixels`` larger than
            any part).
    """
    specs = select_objects(cfg.categories, cfg.objects)
    target = target_of(index, seed, specs)
    canonical = cfg.canonical_first and index < len(specs)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_IMAGE, index]))
    for _ in range(MAX_TRIES):
        scene = sample_scene(rng, target, specs, cfg, canonical=canonical)
        rendered = render(scene, rng, outline=cfg.outline, noise=cfg.noise)
        ann = annotate(
            scene,
            rendered,
            visibility_threshold=cfg.visibility_threshold,
            min_part_pixels=cfg.min_part_pixels,
        )
        if ann.parts:
            break
    else:
        raise RuntimeError(
            f"synth image {index}: no visible part of '{target.name}' after {MAX_TRIES} scenes; "
            "lower min_part_pixels or visibility_threshold, or raise size"
        )
    red_box = None
    if scene.red_box:
        box = ann.bbox()
        assert box is not None  # ann.parts is non-empty, so the object mask is too
        width = cfg.red_box_width or max(1, round(cfg.size / 128))
        pad = max(2, round(cfg.size / 64))
        draw_red_box(rendered.image, box, width, pad)
        red_box = [box[0], box[1], box[2] - box[0] + 1, box[3] - box[1] + 1]
    record = {
        "target": target,
        "object_mask": ann.object_mask,
        "parts": ann.parts,
        "hidden_parts": ann.hidden_parts,
        "n_objects": scene.n_objects,
        "red_box": red_box,
    }
    return rendered.image, record


def encode_image(image: np.ndarray, cfg: SynthConfig) -> bytes:
    """PNG (no timestamp, fixed compression) or JPEG bytes of a uint8 RGB image."""
    buf = io.BytesIO()
    if cfg.image_format == "png":
        Image.fromarray(image).save(buf, format="PNG", compress_level=PNG_LEVEL)
    else:
        Image.fromarray(image).save(buf, format="JPEG", quality=cfg.jpeg_quality)
    return buf.getvalue()


def image_name(index: int, cfg: SynthConfig) -> str:
    """Path of image ``index`` relative to the world directory (``images/000123.png``)."""
    ext = "png" if cfg.image_format == "png" else "jpg"
    return f"{IMAGES_DIR}/{index:06d}.{ext}"


def _write_image(path: Path, data: bytes) -> None:
    """Write an image via a temporary sibling and a rename, without fsync.

    A reader never sees a half-written image. Unlike :func:`atomic_write_bytes` there is no fsync
    per image (it would cost about as much as drawing one): the descriptor, written last and
    fsynced, is the point at which a world counts as complete.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _make_instance(index: int, *, seed: int, cfg: SynthConfig, out_dir: str) -> dict[str, Any]:
    """Draw, write and annotate one image; returns the descriptor record (a plain dict)."""
    image, rec = draw_image(index, seed, cfg)
    rel = image_name(index, cfg)
    _write_image(Path(out_dir) / rel, encode_image(image, cfg))
    obj = rec["target"].name
    segmentations = {object_label(obj): [mask_io.encode(rec["object_mask"])]}
    for part, mask in rec["parts"].items():
        segmentations[part_label(obj, part)] = [mask_io.encode(mask)]
    return {
        "image_path": rel,
        "image_label": obj,
        "segmentations": segmentations,
        "segmentation_labels": list(segmentations),
        "image_size": [cfg.size, cfg.size],
        "category": rec["target"].category,
        "n_objects": rec["n_objects"],
        "red_box": rec["red_box"],
        "hidden_parts": rec["hidden_parts"],
    }


def _to_instance(raw: dict[str, Any]) -> Instance:
    extra = {k: v for k, v in raw.items() if k not in Instance.__dataclass_fields__}
    return Instance(
        image_path=raw["image_path"],
        image_label=raw["image_label"],
        segmentations=raw["segmentations"],
        segmentation_labels=raw["segmentation_labels"],
        extra=extra,
    )


def generate_world(
    out_dir: str | Path,
    *,
    n_images: int,
    seed: int,
    size: int | None = None,
    config: SynthConfig | None = None,
    progress: bool = True,
) -> tuple[Path, Path]:
    """Write a Partonomy-Synth world (images, descriptor, concept graph) to ``out_dir``.

    Args:
        out_dir: directory to write into (created; existing files of the same names are replaced).
        n_images: number of images (= descriptor instances), >= 1.
        seed: non-negative integer; the same seed and config give byte-identical files.
        size: image side in pixels; overrides ``config.size`` when given (default: 256, the
            default of :class:`SynthConfig`).
        config: the world's knobs (default ``SynthConfig()``).
        progress: show a tqdm progress bar.

    Returns:
        ``(descriptor_path, graph_path)``.

    Raises:
        ConfigError: ``n_images < 1``, a negative seed, or a bad config (unknown category ...).
    """
    cfg = config if config is not None else SynthConfig()
    if size is not None:
        cfg = replace(cfg, size=size)  # re-runs SynthConfig validation
    if n_images < 1:
        raise ConfigError(f"n_images must be >= 1, got {n_images}")
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    specs = select_objects(cfg.categories, cfg.objects)
    out = Path(out_dir)
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)

    make = partial(_make_instance, seed=seed, cfg=cfg, out_dir=str(out))
    bar = tqdm(total=n_images, desc="synth", unit="img", disable=not progress)
    raws: list[dict[str, Any]] = []
    if cfg.workers > 1 and n_images > 1:
        # The platform's default start method (fork on Linux: works from scripts without a
        # ``__main__`` guard; spawn elsewhere, where callers need the usual guard).
        ctx = multiprocessing.get_context()
        with ctx.Pool(min(cfg.workers, n_images)) as pool:
            chunk = max(1, min(32, n_images // (4 * cfg.workers)))
            for raw in pool.imap(make, range(n_images), chunksize=chunk):
                raws.append(raw)
                bar.update()
    else:
        for index in range(n_images):
            raws.append(make(index))
            bar.update()
    bar.close()

    graph = graph_of(specs)
    seen: dict[str, set[str]] = {}
    for raw in raws:
        names = seen.setdefault(raw["image_label"], set())
        names.update(part_name(lbl) for lbl in raw["segmentations"] if is_part_label(lbl))
    # part_graph: the parts actually annotated per object (as the original cleaning deduces it).
    part_graph = {
        s.name: [p for p in s.parts if p in seen[s.name]] for s in specs if s.name in seen
    }
    descriptor = Descriptor(
        dataset_name=DATASET_NAME,
        instances=[_to_instance(r) for r in raws],
        part_graph=part_graph,
        instance_graph=graph.instance_graph,
    )
    descriptor_path = out / DESCRIPTOR_NAME
    graph_path = out / GRAPH_NAME
    save_descriptor(descriptor, descriptor_path)
    save_graph(graph, graph_path)
    saved = to_dict(cfg)
    saved.pop("workers")  # does not change the output, so it must not change this file either
    meta = {"seed": seed, "n_images": n_images, "config": saved}
    atomic_write_text(out / CONFIG_NAME, yaml.safe_dump(meta, sort_keys=False))
    return descriptor_path, graph_path
