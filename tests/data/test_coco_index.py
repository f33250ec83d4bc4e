"""CocoIndex: grouping, lazy masks, and every bad-annotation case with and without skipping."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from partonomy.data.coco_index import CocoIndex, Problems, check_segmentation
from partonomy.errors import FormatError


def _data(real):
    return real.paco_json()


def _load(tmp_path, data, skip_bad=False):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path, CocoIndex.load(path, problems=Problems(skip_bad=skip_bad))


def test_groups_annotations_by_image_and_keeps_masks_lazy(tmp_path, real):
    _, index = _load(tmp_path, _data(real))
    assert len(index) == 16
    assert index.image_ids() == [139, 285, 632]
    assert [a["id"] for a in index.annotations(285)] == [20, 21, 22, 23, 24]
    assert index.annotations(999) == []
    # a rectangle polygon [0,0,20,20] covers 20 x 20 pixels
    mask = index.mask(index.annotation(10))
    assert mask.shape == (40, 40) and mask.dtype == bool and int(mask.sum()) == 400
    union = index.union_mask([index.annotation(10), index.annotation(13)], 40, 40)
    assert union.dtype == np.uint8 and int(union.sum()) == 400 + 256


def _corrupt(data, case):
    data = copy.deepcopy(data)
    anns = {a["id"]: a for a in data["annotations"]}
    if case == "polygon_with_2_points":
        anns[11]["segmentation"] = [[0, 0, 4, 4]]
        return data, 11, "segmentation", "needs at least 3"
    if case == "unknown_category":
        anns[12]["category_id"] = 77
        return data, 12, "category_id", "category id 77 does not exist"
    if case == "image_not_in_images":
        anns[14]["image_id"] = 4242
        return data, 14, "image_id", "image id 4242 is not in 'images'"
    if case == "rle_of_wrong_size":
        anns[16]["segmentation"] = {"size": [30, 40], "counts": "0"}
        return data, 16, "segmentation", "RLE size [30, 40] differs from the image size [40, 40]"
    if case == "uncompressed_rle_wrong_total":
        anns[17]["segmentation"] = {"size": [40, 40], "counts": [5, 10]}
        return data, 17, "segmentation", "sum to 15"
    raise AssertionError(case)


CASES = [
    "polygon_with_2_points",
    "unknown_category",
    "image_not_in_images",
    "rle_of_wrong_size",
    "uncompressed_rle_wrong_total",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_annotation_raises_naming_file_and_annotation_id(tmp_path, real, case):
    data, ann_id, field, text = _corrupt(_data(real), case)
    with pytest.raises(FormatError) as info:
        _load(tmp_path, data)
    err = info.value
    assert err.file == str(tmp_path / "ann.json")
    assert err.record == f"annotation id {ann_id}"
    assert err.field == field
    assert text in str(err)
    assert "--skip-bad" in str(err)


@pytest.mark.parametrize("case", CASES)
def test_bad_annotation_is_skipped_and_reported_with_skip_bad(tmp_path, real, case):
    data, ann_id, field, text = _corrupt(_data(real), case)
    _, index = _load(tmp_path, data, skip_bad=True)
    assert len(index) == 15
    with pytest.raises(KeyError):
        index.annotation(ann_id)
    [bad] = index.problems.records
    assert (bad.record, bad.field) == (f"annotation id {ann_id}", field)
    assert text in bad.message and bad.file.endswith("ann.json")


def test_compressed_counts_are_checked_before_any_decode(tmp_path, real):
    from partonomy.io import masks as mask_io

    data = _data(real)
    data["annotations"][0]["segmentation"] = {"size": [40, 40], "counts": "\x7f\x7f"}
    # valid counts of a 20x40 mask under a [40, 40] size: would overrun pycocotools' buffer
    short = mask_io.encode(np.ones((20, 40), np.uint8))["counts"]
    data["annotations"][1]["segmentation"] = {"size": [40, 40], "counts": short}
    _, index = _load(tmp_path, data, skip_bad=True)
    bad = {b.record: b.message for b in index.problems.records}
    assert bad["annotation id 10"] == "corrupt compressed RLE counts"
    assert bad["annotation id 11"] == "compressed RLE counts cover 800 pixels, not h*w = 1600"


def test_non_numeric_polygon_fails_when_decoded(tmp_path, real):
    data = _data(real)
    data["annotations"][0]["segmentation"] = [[0, "a", 4, 0, 4, 4]]
    _, index = _load(tmp_path, data, skip_bad=True)  # only the first number is type-checked
    assert index.rle(index.annotation(10)) is None
    [bad] = index.problems.records
    assert bad.record == "annotation id 10" and "cannot decode" in bad.message
    _, strict = _load(tmp_path, data)
    with pytest.raises(FormatError, match="annotation id 10"):
        strict.rle(strict.annotation(10))


def test_duplicate_ids_and_missing_keys(tmp_path, real):
    data = _data(real)
    data["annotations"].append(dict(data["annotations"][0]))  # duplicate id 10
    del data["annotations"][1]["segmentation"]  # id 11
    data["images"].append({"id": 7, "file_name": "x.jpg"})  # no height / width
    _, index = _load(tmp_path, data, skip_bad=True)
    records = sorted(b.record for b in index.problems.records)
    assert records == ["annotation id 10", "annotation id 11", "image id 7"]


def test_not_a_coco_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(FormatError, match="annotations"):
        CocoIndex.load(path)


def test_check_segmentation_accepts_the_real_variants():
    assert check_segmentation([[0, 0, 4, 0, 4, 4]], 10, 10) is None
    assert check_segmentation({"size": [10, 10], "counts": [100]}, 10, 10) is None
    from partonomy.io import masks as mask_io

    rle = mask_io.encode(np.eye(10, dtype=np.uint8))
    assert check_segmentation([rle], 10, 10) is None  # a list of RLEs (refCLEF)
    assert "odd number" in check_segmentation([[0, 0, 4, 0, 4, 4, 1]], 10, 10)
    assert "empty" in check_segmentation([], 10, 10)
