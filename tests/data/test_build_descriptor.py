"""``partonomy build-descriptor`` on PACO-LVIS, PASCAL-Part, PartImageNet and PARTONOMY-Core
fixtures, and the bad-annotation cases with and without ``--skip-bad``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from partonomy.cli.main import cli
from partonomy.data.sources.descriptor_build import build_descriptor
from partonomy.data.sources.part_coco import PartCategory, parse_obj_part
from partonomy.data.sources.partimagenet import parse_category
from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.descriptor import load_descriptor


def _areas(instance):
    return {
        label: [mask_io.area(r) for r in rles] for label, rles in instance.segmentations.items()
    }


def test_category_names():
    assert parse_obj_part({"name": "glass_(drink_container):rim"}) == PartCategory("glass", "rim")
    assert parse_obj_part({"name": "trash_can:foot_pedal"}) == PartCategory(
        "trash_can", "foot pedal"
    )
    assert parse_obj_part({"name": "bow_(weapon)"}) == PartCategory("bow")
    assert parse_category({"name": "Car Tier", "supercategory": "Car"}) == PartCategory(
        "car", "tire"
    )
    head = {"name": "Quadruped Head", "supercategory": "Quadruped"}
    assert parse_category(head) == PartCategory("quadruped", "head")


def test_paco_lvis_matching_boxes_and_labels(tmp_path, real):
    ds = tmp_path / "dataset"
    ann = real.make_paco(ds)
    out = tmp_path / "out" / "paco.json"
    result = build_descriptor(
        "paco_lvis", annotations=ann, images=ds / "coco", out=out, progress=False
    )
    assert result.skipped == [] and result.boxed_images == 2
    d = load_descriptor(out)
    by_label = {i.image_label: i for i in d.instances}
    assert sorted(by_label) == ["glass", "mug", "trash can"]  # image 632's lone mug is dropped

    mug = by_label["mug"]  # mug 13: 3 parts beat mug 10's 2 parts despite 256 < 400 px
    assert mug.extra["source_annotation_ids"] == [13, 14, 15, 18]
    assert mug.segmentation_labels == ["object--mug", "mug--part:body", "mug--part:handle"]
    assert _areas(mug) == {
        "object--mug": [256],
        "mug--part:body": [144, 64],  # 14 = 12x12, 15 = 8x8 (sorted by annotation id)
        "mug--part:handle": [8],  # 18 = 2x4
    }
    assert mug.image_path == "000000000139-0.jpg"  # two mugs -> red-box copy next to the output
    boxed = np.asarray(Image.open(out.parent / mug.image_path).convert("RGB")).astype(int)
    # mug 13's tight box is columns/rows 22..37; the padded box starts at 17 and is clamped to 39
    r, g, b = boxed[18, 25]  # middle row of the 3-px top edge (rows 17..19)
    assert r > 170 and r - g > 80 and r - b > 60  # red, up to JPEG chroma error
    r, g, b = boxed[30, 30]  # inside the object: the fixture's blue-grey (90, 120, 150)
    assert b > r + 30

    glass = by_label["glass"]  # a single glass: no box, the original image
    assert _areas(glass) == {"object--glass": [100], "glass--part:rim": [20]}
    assert (d.root / glass.image_path).resolve() == (
        ds / "coco" / "train2017" / "000000000139.jpg"
    ).resolve()

    can = by_label["trash can"]  # tie on parts -> the larger can 22; three cans -> box
    assert can.extra["source_annotation_ids"] == [22, 23]
    assert _areas(can) == {"object--trash_can": [400], "trash_can--part:foot pedal": [40]}
    assert can.image_path == "000000000285-0.jpg"

    assert d.part_graph == {
        "glass": ["glass--part:rim"],
        "mug": ["mug--part:body", "mug--part:handle"],
        "trash_can": ["trash_can--part:foot pedal"],
    }
    assert d.instance_graph == {"object": ["glass", "mug", "trash_can"]}
    assert d.dataset_name == "paco_lvis"


def test_object_names_mapping(tmp_path, real):
    ds = tmp_path / "dataset"
    ann = real.make_paco(ds)
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"trash_can": "pedal bin"}))
    result = build_descriptor(
        "paco_lvis",
        annotations=ann,
        images=ds / "coco",
        out=tmp_path / "d.json",
        object_names=names,
        progress=False,
    )
    assert sorted(i.image_label for i in result.descriptor.instances) == [
        "glass",
        "mug",
        "pedal bin",
    ]
    names.write_text(json.dumps({"trash_can": 3}))
    with pytest.raises(FormatError, match="trash_can"):
        build_descriptor(
            "paco_lvis",
            annotations=ann,
            images=ds / "coco",
            out=tmp_path / "d.json",
            object_names=names,
            progress=False,
        )


def test_pascal_part_without_object_annotations(tmp_path, real):
    ds = tmp_path / "dataset"
    ann = real.make_pascal_part(ds)
    images = ds / "vlpart" / "pascal_part" / "VOCdevkit" / "VOC2010" / "JPEGImages"
    result = build_descriptor(
        "pascal_part", annotations=ann, images=images, out=tmp_path / "p.json", progress=False
    )
    by_label = {i.image_label: i for i in result.descriptor.instances}
    # parts only: each class's parts in the image form one instance, no object mask, no box
    assert _areas(by_label["dog"]) == {"dog--part:head": [100], "dog--part:torso": [400]}
    assert _areas(by_label["aeroplane"]) == {"aeroplane--part:wing": [150]}
    assert result.boxed_images == 0


def test_partimagenet_supercategory_objects_and_tire_typo(tmp_path, real):
    ds = tmp_path / "dataset"
    ann = real.make_partimagenet(ds)
    result = build_descriptor(
        "partimagenet",
        annotations=ann,
        images=ds / "PartImageNet" / "images" / "train",  # images sit in per-synset folders
        out=tmp_path / "pin.json",
        progress=False,
    )
    by_label = {i.image_label: i for i in result.descriptor.instances}
    assert _areas(by_label["car"]) == {"car--part:body": [200], "car--part:tire": [20, 20]}
    assert _areas(by_label["quadruped"]) == {
        "quadruped--part:body": [100],
        "quadruped--part:head": [25],
    }
    assert result.descriptor.instance_graph == {"object": ["car", "quadruped"]}


def test_partonomy_core_raw_masks(tmp_path, real):
    ds = tmp_path / "dataset"
    masks = real.make_partonomy_core(ds)
    names = tmp_path / "object_names_to_nl.json"
    names.write_text(json.dumps({"airplanes--agricultural": "agricultural airplane"}))
    result = build_descriptor(
        "partonomy_core",
        annotations=masks,
        images=ds / "partonomy_core" / "images",
        out=tmp_path / "core.json",
        object_names=names,
        progress=False,
    )
    d = load_descriptor(tmp_path / "core.json")
    plane, torpedo = d.instances
    assert plane.image_label == "agricultural airplane"
    assert plane.segmentation_labels == [
        "object--airplanes--agricultural",
        "airplanes--agricultural--part:cockpit",
        "airplanes--agricultural--part:wings",
    ]
    assert _areas(plane) == {
        "object--airplanes--agricultural": [128],
        "airplanes--agricultural--part:cockpit": [8],
        "airplanes--agricultural--part:wings": [32],
    }
    assert plane.part_names() == ["cockpit", "wings"]
    assert torpedo.image_label == "weapons--torpedo"  # not in the mapping: the id
    assert _areas(torpedo) == {"weapons--torpedo--part:fins": [9]}
    assert d.instance_graph == {
        "airplanes": ["airplanes--agricultural"],
        "weapons": ["weapons--torpedo"],
    }
    assert result.skipped == []


# ---------------------------------------------------------------- bad annotations


def _bad_paco(real, case):
    data = real.paco_json()
    anns = {a["id"]: a for a in data["annotations"]}
    if case == "polygon_with_2_points":
        anns[17]["segmentation"] = [[0, 30, 10, 30]]
        return data, [17], "a polygon needs at least 3"
    if case == "unknown_category":
        anns[17]["category_id"] = 99
        return data, [17], "category id 99 does not exist"
    if case == "image_without_file":
        return data, [30], "has no image file"
    if case == "rle_of_wrong_size":
        anns[17]["segmentation"] = mask_io.encode(np.ones((20, 40), np.uint8))
        return data, [17], "differs from the image size [40, 40]"
    raise AssertionError(case)


BAD_CASES = ["polygon_with_2_points", "unknown_category", "image_without_file", "rle_of_wrong_size"]


def _write_bad(tmp_path, real, case):
    data, ids, text = _bad_paco(real, case)
    ds = tmp_path / "dataset"
    ann = real.make_paco(ds, data)
    if case == "image_without_file":
        (ds / "coco" / "train2017" / "000000000632.jpg").unlink()
    return ann, ds / "coco", ids, text


@pytest.mark.parametrize("case", BAD_CASES)
def test_cli_fails_on_bad_annotation_naming_file_and_id(tmp_path, real, case):
    ann, images, ids, text = _write_bad(tmp_path, real, case)
    out = tmp_path / "out" / "d.json"
    args = ["build-descriptor", "--source", "paco_lvis", "--annotations", str(ann)]
    args += ["--images", str(images), "--out", str(out), "--quiet"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    assert str(ann) in res.output and f"annotation id {ids[0]}" in res.output
    assert text in res.output and "--skip-bad" in res.output
    assert not out.exists()


@pytest.mark.parametrize("case", BAD_CASES)
def test_cli_skip_bad_skips_and_reports_every_record(tmp_path, real, case):
    ann, images, ids, text = _write_bad(tmp_path, real, case)
    out = tmp_path / "out" / "d.json"
    args = ["build-descriptor", "--source", "paco_lvis", "--annotations", str(ann)]
    args += ["--images", str(images), "--out", str(out), "--quiet", "--skip-bad"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    skipped_lines = [ln for ln in res.output.splitlines() if ln.startswith("skipped: ")]
    assert len(skipped_lines) == len(ids)
    assert all(f"annotation id {i}" in "".join(skipped_lines) for i in ids)
    assert text in skipped_lines[0]
    listed = json.loads((out.parent / "d.skipped.json").read_text())
    assert [r["record"] for r in listed] == [f"annotation id {i}" for i in ids]
    d = load_descriptor(out)
    labels = sorted(i.image_label for i in d.instances)
    # a bad rim leaves the glass without parts (dropped); mugs and the trash can are unaffected
    expected = (
        ["glass", "mug", "trash can"] if case == "image_without_file" else ["mug", "trash can"]
    )
    assert labels == expected


def test_unknown_source_and_missing_inputs(tmp_path):
    res = CliRunner().invoke(
        cli,
        [
            *("build-descriptor", "--source", "coco", "--annotations", str(tmp_path)),
            *("--images", str(tmp_path), "--out", str(tmp_path / "x.json")),
        ],
    )
    assert res.exit_code == 2 and "paco_lvis" in res.output


def test_absolute_paths_option(tmp_path, real):
    ds = tmp_path / "dataset"
    ann = real.make_paco(ds)
    out = tmp_path / "out" / "d.json"
    args = ["build-descriptor", "--source", "paco_lvis", "--annotations", str(ann)]
    args += ["--images", str(ds / "coco"), "--out", str(out), "--quiet", "--absolute-paths"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    paths = sorted(i.image_path for i in load_descriptor(out).instances)
    assert paths == sorted(
        [
            str((ds / "coco" / "train2017" / "000000000139.jpg").resolve()),
            str((out.parent / "000000000139-0.jpg").resolve()),
            str((out.parent / "000000000285-0.jpg").resolve()),
        ]
    )
