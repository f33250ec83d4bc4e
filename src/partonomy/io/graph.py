"""The concept graph YAML: category -> object labels, object -> part labels.

Layout::

    instance_graph: {category: [object, ...]}
    component_graph: {object: ["object--part:part", ...]}
    # optional, kept verbatim: id2cat_map, cat2id_map, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from partonomy.errors import FormatError
from partonomy.io.atomic import atomic_write_text
from partonomy.io.jsonfile import load_yaml
from partonomy.io.labels import part_name


@dataclass
class ConceptGraph:
    """A two-level concept graph (there are no sub-parts).

    Attributes:
        instance_graph: category (superordinate) -> object labels.
        component_graph: object label -> part labels (``obj--part:part``).
        extra: other top-level keys, preserved.
    """

    instance_graph: dict[str, list[str]]
    component_graph: dict[str, list[str]]
    extra: dict[str, Any] = field(default_factory=dict)

    def parts_of(self, obj: str) -> list[str]:
        """Sorted bare part names of ``obj`` (empty if the object is unknown)."""
        return sorted({part_name(lbl) for lbl in self.component_graph.get(obj, [])})

    def category_of(self, obj: str) -> str | None:
        """The category whose object list holds ``obj``, or None."""
        for category, objects in self.instance_graph.items():
            if obj in objects:
                return category
        return None

    def siblings(self, obj: str) -> list[str]:
        """Other objects of ``obj``'s category, in file order."""
        category = self.category_of(obj)
        if category is None:
            return []
        return [o for o in self.instance_graph[category] if o != obj]

    def objects(self) -> list[str]:
        """Every object label of the component graph, sorted."""
        return sorted(self.component_graph)

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_graph": self.instance_graph,
            "component_graph": self.component_graph,
            **self.extra,
        }


def load_graph(path: str | Path) -> ConceptGraph:
    """Read and validate a concept graph YAML.

    Raises:
        FormatError: a missing key or a value of the wrong shape, naming the key.
    """
    path = Path(path)
    raw = load_yaml(path, what="concept graph")
    if not isinstance(raw, dict):
        raise FormatError("a concept graph must be a mapping", file=path)
    graphs = {}
    for key in ("instance_graph", "component_graph"):
        value = raw.get(key)
        if not isinstance(value, dict):
            raise FormatError("missing or not a mapping of name -> list", file=path, field=key)
        for name, items in value.items():
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise FormatError("must be a list of strings", file=path, field=f"{key}.{name}")
        graphs[key] = {str(k): list(v) for k, v in value.items()}
    extra = {k: v for k, v in raw.items() if k not in graphs}
    return ConceptGraph(graphs["instance_graph"], graphs["component_graph"], extra)


def save_graph(graph: ConceptGraph, path: str | Path) -> None:
    """Write the graph YAML atomically, keys in a stable order."""
    atomic_write_text(path, yaml.safe_dump(graph.to_dict(), sort_keys=False, allow_unicode=True))
