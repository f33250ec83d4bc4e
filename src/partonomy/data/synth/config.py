"""The knobs of Partonomy-Synth, as a typed config (unknown YAML key = error).

``SynthConfig()`` is the default world. :data:`PRESETS` holds named variants; ``"easy"`` is a
smaller, cleaner world for the CPU quickstart (a tiny model must learn it in minutes at 64-128 px).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from partonomy.errors import ConfigError


@dataclass
class SynthConfig:
    """How Partonomy-Synth images are drawn and annotated.

    Attributes:
        size: image side in pixels (images are square).
        image_format: ``"png"`` (lossless, default) or ``"jpeg"``.
        jpeg_quality: JPEG quality 1-95 (only for ``"jpeg"``).
        categories: keep only these categories (empty: all).
        objects: keep only these objects (empty: all objects of the kept categories).
        multi_object_prob: chance an image holds several objects; the target then gets a red box.
        max_objects: most objects in a multi-object image (target included), >= 2.
        occlusion_prob: chance a foreground occluder is dropped over one of the target's parts.
        truncation_prob: chance the target is pushed partly out of the frame.
        optional_part_prob: chance each optional part of an object is drawn.
        visibility_threshold: a part copy whose visible area is below this fraction of its own
            unoccluded area (cut-off pixels counted) is dropped from the annotation; a kept copy
            keeps exactly its visible pixels as its mask.
        min_part_pixels: a part copy with fewer visible pixels than this is dropped too.
        rotation_deg: largest in-plane rotation of an object, in degrees (either direction).
        scale_range: object half-size as a fraction of the image side, ``[low, high]``, for a
            single-object image (multi-object images use about 0.55x of it).
        clutter: most background clutter blobs per image (0 disables them).
        outline: darken the boundary pixels of every part (pixels stay inside their own mask).
        noise: standard deviation of per-pixel Gaussian noise, in 0-255 intensity units (noise
            triples PNG size and encoding time, so it is off by default).
        canonical_first: the first ``len(objects)`` images show every object once, alone, whole and
            with all its optional parts, so any run of that many images covers the whole taxonomy.
        red_box_width: red box line width in pixels (0: ``max(1, round(size / 128))``).
        workers: processes that draw images (1: in-process). The output does not depend on it.
    """

    size: int = 256
    image_format: Literal["png", "jpeg"] = "png"
    jpeg_quality: int = 90
    categories: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    multi_object_prob: float = 0.3
    max_objects: int = 3
    occlusion_prob: float = 0.3
    truncation_prob: float = 0.15
    optional_part_prob: float = 0.6
    visibility_threshold: float = 0.3
    min_part_pixels: int = 6
    rotation_deg: float = 20.0
    scale_range: list[float] = field(default_factory=lambda: [0.32, 0.44])
    clutter: int = 3
    outline: bool = True
    noise: float = 0.0
    canonical_first: bool = True
    red_box_width: int = 0
    workers: int = 1

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ConfigError(f"synth.size must be >= 16 pixels, got {self.size}")
        if not 1 <= self.jpeg_quality <= 95:
            raise ConfigError(f"synth.jpeg_quality must be in 1..95, got {self.jpeg_quality}")
        for name in (
            "multi_object_prob",
            "occlusion_prob",
            "truncation_prob",
            "optional_part_prob",
            "visibility_threshold",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"synth.{name} must be in [0, 1], got {value}")
        if self.max_objects < 2:
            raise ConfigError(f"synth.max_objects must be >= 2, got {self.max_objects}")
        if len(self.scale_range) != 2 or not 0.05 <= self.scale_range[0] <= self.scale_range[1]:
            raise ConfigError(
                f"synth.scale_range must be [low, high] with 0.05 <= low <= high, "
                f"got {self.scale_range}"
            )
        if self.min_part_pixels < 1 or self.clutter < 0 or self.red_box_width < 0:
            raise ConfigError("synth.min_part_pixels must be >= 1; clutter, red_box_width >= 0")
        if self.noise < 0 or self.rotation_deg < 0:
            raise ConfigError("synth.noise and synth.rotation_deg must be >= 0")
        if self.workers < 1:
            raise ConfigError(f"synth.workers must be >= 1, got {self.workers}")


PRESETS: MappingProxyType[str, SynthConfig] = MappingProxyType(
    {
        "default": SynthConfig(),
        # Four categories with chunky parts (cycles' thin frames and pedals are left out), large
        # objects, little clutter, few occlusions: learnable by a tiny model at 64-128 px in a
        # few CPU minutes.
        "easy": SynthConfig(
            categories=["airplanes", "road vehicles", "kitchenware", "hand tools"],
            multi_object_prob=0.0,
            occlusion_prob=0.1,
            truncation_prob=0.0,
            optional_part_prob=0.7,
            rotation_deg=10.0,
            scale_range=[0.38, 0.46],
            clutter=1,
        ),
    }
)
"""Named configs for ``partonomy synth --preset NAME`` (a fresh copy is returned by :func:`preset`)."""


def preset(name: str) -> SynthConfig:
    """A copy of the named preset config.

    Raises:
        ConfigError: ``name`` is not a preset.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown synth preset '{name}'; known: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
