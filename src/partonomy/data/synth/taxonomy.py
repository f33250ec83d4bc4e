"""The Partonomy-Synth world: categories -> objects -> parts, and where each part sits.

Structure follows PARTONOMY: superordinate categories hold natural-language object labels, and
specialised objects differ from their siblings by parts (an agricultural airplane has a spraying
rig and a fixed landing gear that a glider lacks). Part names are shared across objects and
categories (wheel, handle, blade, propeller, seat, ...) so that intersection and difference
questions are meaningful.

Where each part sits on its object (the layout table) is in :mod:`partonomy.data.synth.layouts`;
how each part looks is in :mod:`partonomy.data.synth.styles`.

Parts marked optional are drawn in only some images (see ``SynthConfig.optional_part_prob``), so
the visible parts of an object vary from image to image, as they do in photographs.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from types import MappingProxyType

from partonomy.data.synth.layouts import WORLD, Slot
from partonomy.errors import ConfigError
from partonomy.io.graph import ConceptGraph
from partonomy.io.labels import part_label


@dataclass(frozen=True)
class ObjectSpec:
    """One object of the world, fully resolved.

    Attributes:
        name: the natural-language object label (e.g. ``"agricultural airplane"``).
        category: its superordinate category (e.g. ``"airplanes"``).
        parts: every part in taxonomy order (paint order comes from ``Slot.z``).
        optional: the subset of ``parts`` that are drawn only in some images.
        slots: part -> :class:`Slot`.
    """

    name: str
    category: str
    parts: tuple[str, ...]
    optional: frozenset[str]
    slots: MappingProxyType[str, Slot]


def _parse_parts(spec: str) -> tuple[tuple[str, ...], frozenset[str]]:
    parts, optional = [], set()
    for item in spec.split(","):
        name = item.strip()
        if name.startswith("?"):
            name = name[1:].strip()
            optional.add(name)
        parts.append(name)
    return tuple(parts), frozenset(optional)


def _resolve() -> tuple[ObjectSpec, ...]:
    specs = []
    for category, slots, objects in WORLD:
        for name, part_spec, overrides in objects:
            parts, optional = _parse_parts(part_spec)
            resolved: dict[str, Slot] = {}
            for part in parts:
                slot = overrides.get(part, slots.get(part))
                if slot is None:  # a mistake in the layout table, caught at import by the tests
                    raise ValueError(f"synth object '{name}': no slot for part '{part}'")
                resolved[part] = slot
            specs.append(ObjectSpec(name, category, parts, optional, MappingProxyType(resolved)))
    return tuple(specs)


OBJECTS: tuple[ObjectSpec, ...] = _resolve()
"""Every object of the world, in category order."""

CATEGORIES: tuple[str, ...] = tuple(c for c, _, _ in WORLD)
"""Every category, in order."""


def _unknown(kind: str, name: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown synth {kind} '{name}'.{hint} Known: {', '.join(known)}")


def select_objects(
    categories: list[str] | tuple[str, ...] = (), objects: list[str] | tuple[str, ...] = ()
) -> tuple[ObjectSpec, ...]:
    """The objects of a (sub-)world, in taxonomy order.

    Args:
        categories: keep only these categories (empty: all).
        objects: keep only these objects (empty: all objects of the kept categories).

    Raises:
        ConfigError: an unknown category or object name (with close matches), or an object
            outside the selected categories.
    """
    for cat in categories:
        if cat not in CATEGORIES:
            raise _unknown("category", cat, list(CATEGORIES))
    names = [o.name for o in OBJECTS]
    for obj in objects:
        if obj not in names:
            raise _unknown("object", obj, names)
    chosen = tuple(
        o
        for o in OBJECTS
        if (not categories or o.category in categories) and (not objects or o.name in objects)
    )
    if not chosen:
        raise ConfigError(
            f"synth objects {list(objects)} are not in categories {list(categories)}; "
            "pick objects of the chosen categories"
        )
    return chosen


def graph_of(specs: tuple[ObjectSpec, ...]) -> ConceptGraph:
    """The concept graph (category -> objects, object -> ``obj--part:part`` labels) of ``specs``."""
    instance_graph: dict[str, list[str]] = {}
    component_graph: dict[str, list[str]] = {}
    for spec in specs:
        instance_graph.setdefault(spec.category, []).append(spec.name)
        component_graph[spec.name] = [part_label(spec.name, p) for p in spec.parts]
    return ConceptGraph(instance_graph, component_graph)


def taxonomy() -> ConceptGraph:
    """The full Partonomy-Synth concept graph: every category, object and part."""
    return graph_of(OBJECTS)
