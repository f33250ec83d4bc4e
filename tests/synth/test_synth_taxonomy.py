"""The Partonomy-Synth taxonomy: size, shared parts, specialised objects, styles, graph file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from partonomy.data.synth import CATEGORIES, OBJECTS, select_objects, taxonomy
from partonomy.data.synth.styles import PART_STYLES
from partonomy.errors import ConfigError
from partonomy.io.graph import load_graph, save_graph
from partonomy.io.labels import CATEGORY_SEP, PART_SEP, part_label


def test_world_is_at_least_the_size_the_issue_asks_for() -> None:
    parts = {p for o in OBJECTS for p in o.parts}
    assert len(CATEGORIES) >= 8
    assert len(OBJECTS) >= 40
    assert len(parts) >= 60
    assert len({o.name for o in OBJECTS}) == len(OBJECTS)  # object labels are unique


def test_parts_are_shared_across_objects_and_categories() -> None:
    users = Counter(p for o in OBJECTS for p in set(o.parts))
    for part in ("wheel", "wing", "handle", "blade", "propeller", "seat", "window"):
        assert users[part] >= 2, part
    categories_of = {
        part: {o.category for o in OBJECTS if part in o.parts}
        for part in ("wheel", "handle", "blade", "propeller")
    }
    for part, cats in categories_of.items():
        assert len(cats) >= 2, (part, cats)


def test_specialised_objects_differ_from_siblings_by_parts() -> None:
    by_name = {o.name: o for o in OBJECTS}
    ag, glider = by_name["agricultural airplane"], by_name["glider"]
    assert ag.category == glider.category == "airplanes"
    assert {"spraying rig", "landing gear"} <= set(ag.parts) - set(glider.parts)
    assert set(glider.parts) < set(ag.parts)
    # Every category has at least two objects whose part sets differ.
    for category in CATEGORIES:
        sets = {frozenset(o.parts) for o in OBJECTS if o.category == category}
        assert len(sets) >= 2, category


def test_object_labels_are_natural_language() -> None:
    for obj in OBJECTS:
        assert CATEGORY_SEP not in obj.name and PART_SEP not in obj.name
        assert obj.name == obj.name.strip().lower()
    assert "agricultural airplane" in {o.name for o in OBJECTS}


def test_every_part_has_a_style_and_parts_of_one_object_look_different() -> None:
    used = {p for o in OBJECTS for p in o.parts}
    assert used == set(PART_STYLES)
    for obj in OBJECTS:
        looks = [(PART_STYLES[p].shape, PART_STYLES[p].texture) for p in obj.parts]
        assert len(set(looks)) == len(looks), obj.name
        assert obj.optional <= set(obj.parts)
        assert set(obj.slots) == set(obj.parts)
        assert len(obj.parts) - len(obj.optional) >= 2, obj.name  # always >= 2 parts drawn


def test_taxonomy_graph_and_its_yaml_round_trip(tmp_path: Path) -> None:
    graph = taxonomy()
    assert list(graph.instance_graph) == list(CATEGORIES)
    assert sum(len(v) for v in graph.instance_graph.values()) == len(OBJECTS)
    assert graph.component_graph["glider"] == [
        part_label("glider", p) for p in ("fuselage", "wing", "tail", "cockpit")
    ]
    assert graph.parts_of("glider") == ["cockpit", "fuselage", "tail", "wing"]
    assert graph.category_of("glider") == "airplanes"
    save_graph(graph, tmp_path / "graph.yaml")
    loaded = load_graph(tmp_path / "graph.yaml")
    assert loaded.instance_graph == graph.instance_graph
    assert loaded.component_graph == graph.component_graph


def test_select_objects_filters_and_explains_mistakes() -> None:
    cycles = select_objects(["cycles"])
    assert {o.category for o in cycles} == {"cycles"}
    assert [o.name for o in select_objects(objects=["car", "glider"])] == ["glider", "car"]
    with pytest.raises(ConfigError, match="Did you mean: airplanes"):
        select_objects(["airplane"])
    with pytest.raises(ConfigError, match="unknown synth object 'kar'"):
        select_objects(objects=["kar"])
    with pytest.raises(ConfigError, match="not in categories"):
        select_objects(["cycles"], ["glider"])
