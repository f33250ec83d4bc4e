"""Partonomy-Synth: a procedural world of objects made of parts, with exact part masks.

No real PARTONOMY image can be downloaded here, so this world lets everything run end to end:
``generate_world`` writes images, a dataset descriptor and a concept graph in the benchmark's own
formats, so question generation, scoring, evaluation and training use it unchanged.

Public API::

    from partonomy.data.synth import SynthConfig, generate_world, taxonomy, write_preview

    descriptor_path, graph_path = generate_world("runs/synth", n_images=1000, seed=0, size=128)
    graph = taxonomy()                      # the full ConceptGraph (category -> objects -> parts)
    write_preview(descriptor_path, "runs/synth/preview.png", n=16)

See ``docs/synth.md`` for the world, the visibility rule and the knobs.
"""

from __future__ import annotations

from partonomy.data.synth.config import PRESETS, SynthConfig, preset
from partonomy.data.synth.preview import write_preview
from partonomy.data.synth.taxonomy import CATEGORIES, OBJECTS, select_objects, taxonomy
from partonomy.data.synth.world import generate_world

__all__ = [
    "CATEGORIES",
    "OBJECTS",
    "PRESETS",
    "SynthConfig",
    "generate_world",
    "preset",
    "select_objects",
    "taxonomy",
    "write_preview",
]
