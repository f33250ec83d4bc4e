"""Descriptor JSON and concept-graph YAML: round trips in the original layout and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.descriptor import load_descriptor, save_descriptor
from partonomy.io.graph import load_graph, save_graph


def _rle(h: int, w: int, rows: slice, cols: slice) -> dict:
    dense = np.zeros((h, w), bool)
    dense[rows, cols] = True
    return mask_io.encode(dense)


def _descriptor() -> dict:
    """A cleaned descriptor as the original writes it: sorted segmentation_labels, RLE lists."""
    plane = {
        "airplane--part:tail": [_rle(12, 16, slice(1, 5), slice(12, 15))],
        "airplane--part:wing": [
            _rle(12, 16, slice(4, 7), slice(1, 8)),
            _rle(12, 16, slice(4, 7), slice(8, 15)),
        ],
        "object--airplane": [_rle(12, 16, slice(1, 11), slice(1, 15))],
    }
    boat = {"sailboat--part:hull": [_rle(10, 8, slice(6, 10), slice(0, 8))]}
    return {
        "dataset_name": "tiny",
        "instances": [
            {
                "image_path": "plane.png",
                "image_label": "object--airplane",
                "segmentations": plane,
                "segmentation_labels": sorted(plane),
            },
            {
                "image_path": "/abs/boat.png",
                "image_label": "object--sailboat",
                "segmentations": boat,
                "segmentation_labels": sorted(boat),
            },
        ],
        "part_graph": {"airplane": ["airplane--part:tail", "airplane--part:wing"]},
        "instance_graph": {"vehicle": ["airplane", "sailboat"]},
    }


def test_descriptor_round_trip(tmp_path):
    src = tmp_path / "d.json"
    src.write_text(json.dumps(_descriptor()))
    desc = load_descriptor(src)
    assert desc.dataset_name == "tiny" and len(desc.instances) == 2
    plane = desc.instances[0]
    assert plane.part_names() == ["tail", "wing"]
    assert len(plane.part_masks()["wing"]) == 2
    assert desc.image_path(plane) == tmp_path / "plane.png"
    assert str(desc.image_path(desc.instances[1])) == "/abs/boat.png"
    out = tmp_path / "out" / "d.json"
    save_descriptor(desc, out)
    assert json.loads(out.read_text()) == _descriptor()
    assert load_descriptor(out).instances == desc.instances


def test_descriptor_keeps_unknown_instance_keys(tmp_path):
    raw = _descriptor()
    raw["instances"][0]["source_id"] = 17
    src = tmp_path / "d.json"
    src.write_text(json.dumps(raw))
    out = tmp_path / "o.json"
    save_descriptor(load_descriptor(src), out)
    assert json.loads(out.read_text())["instances"][0]["source_id"] == 17


def test_descriptor_polygons_use_image_size(tmp_path):
    raw = _descriptor()
    inst = raw["instances"][1]
    inst["image_size"] = [10, 8]
    inst["segmentations"]["sailboat--part:mast"] = [[[3, 1, 4, 1, 4, 6, 3, 6]]]
    src = tmp_path / "d.json"
    src.write_text(json.dumps(raw))
    mast = load_descriptor(src).instances[1].segmentations["sailboat--part:mast"][0]
    assert mast["size"] == [10, 8] and mask_io.area(mast) > 0


@pytest.mark.parametrize(
    ("mutate", "record", "field"),
    [
        (lambda d: d["instances"][1].pop("image_label"), 1, "image_label"),
        (lambda d: d["instances"][0].update(segmentations=[]), 0, "segmentations"),
        (
            lambda d: d["instances"][0]["segmentations"].update({"airplane--part:nose": 3}),
            0,
            "segmentations.airplane--part:nose",
        ),
        (
            lambda d: d["instances"][0]["segmentations"].update(
                {"airplane--part:nose": [{"size": [2, 2]}]}
            ),
            0,
            "segmentations.airplane--part:nose[0]",
        ),
        (lambda d: d["instances"][1].update(segmentation_labels="x"), 1, "segmentation_labels"),
    ],
)
def test_descriptor_bad_instances(tmp_path, mutate, record, field):
    raw = _descriptor()
    mutate(raw)
    src = tmp_path / "d.json"
    src.write_text(json.dumps(raw))
    with pytest.raises(FormatError) as info:
        load_descriptor(src)
    assert (info.value.file, info.value.record, info.value.field) == (str(src), record, field)


def test_descriptor_truncated_and_missing(tmp_path):
    src = tmp_path / "d.json"
    src.write_text(json.dumps(_descriptor())[:-40])
    with pytest.raises(FormatError, match="truncated"):
        load_descriptor(src)
    with pytest.raises(FormatError, match="not found"):
        load_descriptor(tmp_path / "nope.json")
    src.write_text(json.dumps({"dataset_name": "x"}))
    with pytest.raises(FormatError) as info:
        load_descriptor(src)
    assert info.value.field == "instances"


GRAPH_YAML = """\
instance_graph:
  vehicle:
  - airplane
  - sailboat
component_graph:
  airplane:
  - airplane--part:wing
  - airplane--part:tail
  sailboat:
  - sailboat--part:hull
id2cat_map:
  1: airplane
"""


def test_graph_round_trip_keeps_extra_keys(tmp_path):
    src = tmp_path / "graph.yaml"
    src.write_text(GRAPH_YAML)
    graph = load_graph(src)
    assert graph.parts_of("airplane") == ["tail", "wing"]
    assert graph.category_of("sailboat") == "vehicle"
    assert graph.siblings("airplane") == ["sailboat"]
    assert graph.objects() == ["airplane", "sailboat"]
    out = tmp_path / "again.yaml"
    save_graph(graph, out)
    assert out.read_text() == GRAPH_YAML
    assert load_graph(out) == graph


def test_graph_bad_inputs(tmp_path):
    src = tmp_path / "graph.yaml"
    src.write_text("instance_graph: {vehicle: [airplane]}\n")
    with pytest.raises(FormatError) as info:
        load_graph(src)
    assert info.value.field == "component_graph"
    src.write_text("instance_graph: {vehicle: airplane}\ncomponent_graph: {}\n")
    with pytest.raises(FormatError) as info:
        load_graph(src)
    assert info.value.field == "instance_graph.vehicle"
    src.write_text("instance_graph: [\n")
    with pytest.raises(FormatError, match="invalid YAML at line"):
        load_graph(src)
    assert yaml.safe_load(GRAPH_YAML)["id2cat_map"] == {1: "airplane"}
