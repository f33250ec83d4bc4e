"""What the question types need to know about the concepts and about one image.

* :func:`graph_from_descriptor`: the concept graph when no ``graph.yaml`` is given.
* :class:`ConceptIndex`: object -> parts as canonical keys (see :mod:`partonomy.qa.comparator`),
  with a ``(K, O)`` membership matrix so that "how many of this image's parts does each of the
  ~600 objects have" is one gather-and-sum instead of 600 Python set intersections.
* :class:`ImageContext`: one descriptor instance, reduced to what generation reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from partonomy.io import masks as mask_io
from partonomy.io.descriptor import Descriptor
from partonomy.io.graph import ConceptGraph
from partonomy.io.labels import object_name, part_label
from partonomy.qa.comparator import PartComparator

DEFAULT_CATEGORY = "object"
"""The single category of a derived graph when the descriptor has no ``instance_graph`` (as
the original's PACO, PASCAL-Part and PartImageNet graphs)."""


def graph_from_descriptor(descriptor: Descriptor) -> ConceptGraph:
    """The concept graph of a descriptor: its ``part_graph`` and ``instance_graph``.

    An object missing from ``part_graph`` (or all of them, if it is empty) gets the union of
    the parts annotated on its instances. Without an ``instance_graph`` every object is put in
    one category, :data:`DEFAULT_CATEGORY`.

    Returns:
        A graph whose component lists hold ``obj--part:part`` labels (sorted for derived ones).
    """
    component = {object_name(obj): list(parts) for obj, parts in descriptor.part_graph.items()}
    deduced: dict[str, set[str]] = {}
    for inst in descriptor.instances:
        if inst.image_label not in component:
            deduced.setdefault(inst.image_label, set()).update(inst.part_names())
    for obj, parts in deduced.items():
        component[obj] = [part_label(obj, p) for p in sorted(parts)]
    instance_graph = {k: list(v) for k, v in descriptor.instance_graph.items()}
    if not instance_graph:
        instance_graph = {DEFAULT_CATEGORY: sorted(component)}
    return ConceptGraph(instance_graph=instance_graph, component_graph=component)


@dataclass(frozen=True)
class ConceptIndex:
    """The concepts (objects) a question may compare an image with, and their parts.

    Attributes:
        objects: concept candidates: the graph's objects with at least one part, sorted.
        object_parts: object -> its sorted bare part names.
        object_keys: object -> the canonical keys of its parts.
        key_rows: canonical key -> row of ``membership``.
        membership: ``(K, O)`` bool; ``membership[k, o]`` is whether ``objects[o]`` has key ``k``.
        siblings: object -> the other objects of its category, in graph order (an object listed
            in several categories takes the first).
        all_objects: every object label known (graph objects, categories' members and the
            labels passed to :meth:`build`), sorted: the object distractor fallback; with a
            ``pool``, only the pool's labels.
        comparator: the comparator that made the keys.
        intersection_pairs: ``symmetric`` or ``original`` (see
            :class:`partonomy.qa.generate.GenerationOptions`), read by the intersection types.
    """

    objects: tuple[str, ...]
    object_parts: dict[str, tuple[str, ...]]
    object_keys: dict[str, frozenset[str]]
    key_rows: dict[str, int]
    membership: np.ndarray
    siblings: dict[str, tuple[str, ...]]
    all_objects: tuple[str, ...]
    comparator: PartComparator
    intersection_pairs: str = "symmetric"

    @classmethod
    def build(
        cls,
        graph: ConceptGraph,
        comparator: PartComparator,
        extra_objects: Iterable[str] = (),
        *,
        pool: Iterable[str] | None = None,
        intersection_pairs: str = "symmetric",
    ) -> ConceptIndex:
        """Index ``graph``; ``extra_objects`` (e.g. image labels) join ``all_objects``.

        ``pool``: when given (the labels that have images, the original's pool), only these
        objects are concept candidates, siblings and object distractors."""
        object_parts = {obj: tuple(graph.parts_of(obj)) for obj in graph.component_graph}
        allowed = None if pool is None else set(pool)
        objects = tuple(
            sorted(
                o
                for o, parts in object_parts.items()
                if parts and (allowed is None or o in allowed)
            )
        )
        object_keys = {
            obj: frozenset(comparator.canonical(p) for p in parts)
            for obj, parts in object_parts.items()
        }
        keys = sorted({k for obj in objects for k in object_keys[obj]})
        key_rows = {k: i for i, k in enumerate(keys)}
        membership = np.zeros((len(keys), len(objects)), dtype=bool)
        for col, obj in enumerate(objects):
            membership[[key_rows[k] for k in object_keys[obj]], col] = True
        category_members: dict[str, tuple[str, ...]] = {}
        for members in graph.instance_graph.values():
            for obj in members:
                category_members.setdefault(obj, tuple(members))
        siblings = {
            obj: tuple(
                o for o in dict.fromkeys(members) if o != obj and (allowed is None or o in allowed)
            )
            for obj, members in category_members.items()
        }
        all_objects = tuple(sorted({*graph.component_graph, *category_members, *extra_objects}))
        if allowed is not None:
            all_objects = tuple(o for o in all_objects if o in allowed)
        return cls(
            objects=objects,
            object_parts=object_parts,
            object_keys=object_keys,
            key_rows=key_rows,
            membership=membership,
            siblings=siblings,
            all_objects=all_objects,
            comparator=comparator,
            intersection_pairs=intersection_pairs,
        )

    def overlap(self, key_rows: np.ndarray) -> np.ndarray:
        """How many of the keys ``key_rows`` each object has.

        Args:
            key_rows: ``(n,)`` int rows of distinct keys.

        Returns:
            ``(O,)`` int64 counts aligned with :attr:`objects`.
        """
        return self.membership[key_rows].sum(axis=0, dtype=np.int64)


@dataclass(frozen=True)
class ImageContext:
    """One descriptor instance as the question types see it.

    Attributes:
        index: position of the instance in the descriptor (part of the question id).
        image_path: the instance's ``image_path``, verbatim.
        label: the object label.
        parts: sorted bare names of the parts with at least one mask (the visible parts).
        masks: part name -> its RLE masks (shared, not copied: records copy what they keep).
        keys: part name -> canonical key.
        key_rows: ``(n,)`` int64 sorted distinct rows (in the index) of the keys the graph knows.
        n_keys: how many distinct keys the parts have, known to the graph or not.
        object_parts: the graph's parts of ``label`` (empty if the graph does not know it).
    """

    index: int
    image_path: str
    label: str
    parts: tuple[str, ...]
    masks: dict[str, list[mask_io.Rle]]
    keys: dict[str, str]
    key_rows: np.ndarray
    n_keys: int
    object_parts: tuple[str, ...]

    @classmethod
    def build(
        cls,
        index: int,
        image_path: str,
        label: str,
        masks: dict[str, list[mask_io.Rle]],
        concepts: ConceptIndex,
    ) -> ImageContext:
        """Reduce an instance; ``masks`` maps bare part names to non-empty mask lists."""
        parts = tuple(sorted(masks))
        keys = {p: concepts.comparator.canonical(p) for p in parts}
        distinct = set(keys.values())
        rows = sorted(concepts.key_rows[k] for k in distinct if k in concepts.key_rows)
        return cls(
            index=index,
            image_path=image_path,
            label=label,
            parts=parts,
            masks=masks,
            keys=keys,
            key_rows=np.asarray(rows, dtype=np.int64),
            n_keys=len(distinct),
            object_parts=concepts.object_parts.get(label, ()),
        )

    def parts_where(self, keep: frozenset[str], *, inside: bool) -> tuple[str, ...]:
        """The image's parts whose key is (``inside=True``) or is not in ``keep``, sorted."""
        return tuple(p for p in self.parts if (self.keys[p] in keep) == inside)
