"""generate_world: determinism, format validity, coverage, the visibility rule in whole worlds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from partonomy.data.synth import OBJECTS, SynthConfig, generate_world, preset, taxonomy
from partonomy.data.synth.world import draw_image
from partonomy.errors import ConfigError
from partonomy.io import masks as mask_io
from partonomy.io.descriptor import load_descriptor
from partonomy.io.graph import load_graph
from partonomy.io.labels import is_object_label, object_label, part_label

from .conftest import WORLD_IMAGES, WORLD_SEED, WORLD_SIZE


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    cfg = SynthConfig(multi_object_prob=0.5, occlusion_prob=0.5, truncation_prob=0.3, noise=2.0)
    a = generate_world(tmp_path / "a", n_images=12, seed=5, size=64, config=cfg, progress=False)
    generate_world(tmp_path / "b", n_images=12, seed=5, size=64, config=cfg, progress=False)
    assert a[0].name == "descriptor.json" and a[1].name == "graph.yaml"
    files_a, files_b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(files_a) == 12 + 3  # images, descriptor, graph, synth_config.yaml
    assert files_a == files_b


def test_output_does_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    one = SynthConfig(workers=1)
    two = SynthConfig(workers=2)
    generate_world(tmp_path / "one", n_images=8, seed=2, size=48, config=one, progress=False)
    generate_world(tmp_path / "two", n_images=8, seed=2, size=48, config=two, progress=False)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_another_seed_gives_another_world_and_a_short_world_is_a_prefix(tmp_path: Path) -> None:
    generate_world(tmp_path / "s1", n_images=6, seed=1, size=48, progress=False)
    generate_world(tmp_path / "s2", n_images=6, seed=2, size=48, progress=False)
    generate_world(tmp_path / "s1long", n_images=9, seed=1, size=48, progress=False)
    short, other, long = (_files(tmp_path / d) for d in ("s1", "s2", "s1long"))
    images = [k for k in short if k.startswith("images/")]
    assert any(short[k] != other[k] for k in images)
    assert all(short[k] == long[k] for k in images)
    d_short = load_descriptor(tmp_path / "s1" / "descriptor.json")
    d_long = load_descriptor(tmp_path / "s1long" / "descriptor.json")
    assert [i.to_dict() for i in d_short.instances] == [i.to_dict() for i in d_long.instances[:6]]


# ----------------------------------------------------------------------------- formats


def test_descriptor_and_graph_load_through_the_io_readers(world: tuple[Path, Path]) -> None:
    descriptor_path, graph_path = world
    descriptor = load_descriptor(descriptor_path)
    graph = load_graph(graph_path)
    assert descriptor.dataset_name == "partonomy-synth"
    assert len(descriptor.instances) == WORLD_IMAGES
    assert graph.instance_graph == taxonomy().instance_graph
    assert graph.component_graph == taxonomy().component_graph
    assert descriptor.instance_graph == graph.instance_graph
    for obj, parts in descriptor.part_graph.items():  # parts actually annotated, bare names
        assert set(parts) <= set(graph.parts_of(obj)), obj
    saved = yaml.safe_load((descriptor_path.parent / "synth_config.yaml").read_text())
    assert saved["seed"] == WORLD_SEED and saved["config"]["size"] == WORLD_SIZE
    assert "workers" not in saved["config"]


def test_every_instance_is_well_formed(world: tuple[Path, Path]) -> None:
    descriptor = load_descriptor(world[0])
    graph = load_graph(world[1])
    for inst in descriptor.instances:
        assert not Path(inst.image_path).is_absolute()
        with Image.open(descriptor.image_path(inst)) as image:
            assert image.format == "PNG" and image.mode == "RGB"
            assert image.size == (WORLD_SIZE, WORLD_SIZE)
        obj = inst.image_label
        assert obj in graph.component_graph
        assert inst.segmentation_labels == list(inst.segmentations)
        assert inst.segmentation_labels[0] == object_label(obj)
        (object_rle,) = inst.segmentations[object_label(obj)]
        assert object_rle["size"] == [WORLD_SIZE, WORLD_SIZE]
        parts = inst.part_masks()
        assert parts, "every image shows at least one part"
        assert set(parts) <= set(graph.parts_of(obj))
        assert not set(parts) & set(inst.extra["hidden_parts"])
        union = np.zeros((WORLD_SIZE, WORLD_SIZE), dtype=bool)
        for part, rles in parts.items():
            assert inst.segmentations[part_label(obj, part)] == rles
            (rle,) = rles
            assert rle["size"] == [WORLD_SIZE, WORLD_SIZE]  # masks at the image resolution
            area = mask_io.area(rle)
            assert area > 0
            # Part masks lie inside the object mask and never overlap one another.
            assert mask_io.intersection_area(rle, object_rle) == area
            dense = mask_io.decode(rle)
            assert not (union & dense).any()
            union |= dense
        assert union.sum() <= mask_io.area(object_rle)


def test_jpeg_worlds_write_jpeg_files(tmp_path: Path) -> None:
    cfg = SynthConfig(image_format="jpeg", jpeg_quality=80)
    descriptor_path, _ = generate_world(
        tmp_path, n_images=3, seed=0, size=40, config=cfg, progress=False
    )
    descriptor = load_descriptor(descriptor_path)
    for inst in descriptor.instances:
        assert inst.image_path.endswith(".jpg")
        with Image.open(descriptor.image_path(inst)) as image:
            assert image.format == "JPEG" and image.size == (40, 40)


# ----------------------------------------------------------------------------- coverage


def test_a_few_hundred_images_cover_every_object_and_part_label(tmp_path: Path) -> None:
    descriptor_path, _ = generate_world(tmp_path, n_images=300, seed=11, size=128, progress=False)
    descriptor = load_descriptor(descriptor_path)
    seen_objects = {inst.image_label for inst in descriptor.instances}
    seen_labels = {lbl for inst in descriptor.instances for lbl in inst.segmentations}
    assert seen_objects == {o.name for o in OBJECTS}
    expected = {part_label(o.name, p) for o in OBJECTS for p in o.parts}
    expected |= {object_label(o.name) for o in OBJECTS}
    assert seen_labels == expected
    # Balanced: 300 images over 59 objects is 5 or 6 images each.
    counts = [sum(i.image_label == o.name for i in descriptor.instances) for o in OBJECTS]
    assert min(counts) >= 300 // len(OBJECTS)


def test_first_round_shows_every_object_whole() -> None:
    cfg = SynthConfig(size=256)
    for index in range(len(OBJECTS)):
        _, rec = draw_image(index, 4, cfg)
        assert list(rec["parts"]) == list(rec["target"].parts), rec["target"].name
        assert rec["n_objects"] == 1 and rec["hidden_parts"] == []


# ----------------------------------------------------------------------------- busy scenes


def test_multi_object_images_mark_the_target_with_a_red_box(busy_world: tuple[Path, Path]) -> None:
    descriptor = load_descriptor(busy_world[0])
    for inst in descriptor.instances:
        assert inst.extra["n_objects"] >= 2
        x, y, w, h = inst.extra["red_box"]
        object_mask = mask_io.decode(inst.segmentations[object_label(inst.image_label)][0])
        ys, xs = np.nonzero(object_mask)
        assert (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) == (
            x,
            y,
            w,
            h,
        )
        with Image.open(descriptor.image_path(inst)) as image:
            pixels = np.asarray(image)
        red = (pixels == [255, 0, 0]).all(axis=2)
        assert red.sum() > 0
        assert not (red & object_mask).any()


def test_occluders_hide_parts_that_then_leave_the_annotation(busy_world: tuple[Path, Path]) -> None:
    descriptor = load_descriptor(busy_world[0])
    hidden = [p for inst in descriptor.instances for p in inst.extra["hidden_parts"]]
    assert hidden, "with occlusion_prob=1 and other objects, some parts must get hidden"
    for inst in descriptor.instances:
        annotated = set(inst.part_names())
        assert annotated.isdisjoint(inst.extra["hidden_parts"])


# ----------------------------------------------------------------------------- config


def test_config_errors_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_images"):
        generate_world(tmp_path, n_images=0, seed=0, progress=False)
    with pytest.raises(ConfigError, match="seed"):
        generate_world(tmp_path, n_images=1, seed=-1, progress=False)
    with pytest.raises(ConfigError, match="size"):
        generate_world(tmp_path, n_images=1, seed=0, size=8, progress=False)
    with pytest.raises(ConfigError, match="Did you mean: cycles"):
        generate_world(tmp_path, n_images=1, seed=0, config=SynthConfig(categories=["cycle"]))
    with pytest.raises(ConfigError, match="occlusion_prob"):
        SynthConfig(occlusion_prob=1.5)
    with pytest.raises(ConfigError, match="unknown synth preset"):
        preset("hard")


def test_size_argument_overrides_the_config_and_subsets_are_respected(tmp_path: Path) -> None:
    cfg = preset("easy")
    cfg.objects = ["car", "bus"]
    descriptor_path, graph_path = generate_world(
        tmp_path, n_images=4, seed=0, size=32, config=cfg, progress=False
    )
    descriptor = load_descriptor(descriptor_path)
    assert {i.image_label for i in descriptor.instances} == {"car", "bus"}
    assert load_graph(graph_path).instance_graph == {"road vehicles": ["car", "bus"]}
    for inst in descriptor.instances:
        for label, (rle,) in inst.segmentations.items():
            assert rle["size"] == [32, 32], label
            assert is_object_label(label) or label.startswith(inst.image_label)
    assert preset("easy").objects == []  # presets are copies: editing one changed nothing
