import numpy as np
import pytest

from partonomy.io import masks


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    dense = rng.random((37, 53)) > 0.5
    rle = masks.encode(dense)
    assert rle["size"] == [37, 53]
    assert isinstance(rle["counts"], str)
    assert np.array_equal(masks.decode(rle), dense)
    assert masks.area(rle) == int(dense.sum())


def test_union_and_intersection():
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[:, :2] = True
    ra, rb = masks.encode(a), masks.encode(b)
    assert masks.area(masks.union([ra, rb])) == 12
    assert masks.intersection_area(ra, rb) == 4
    assert masks.area(masks.union([], size=(4, 4))) == 0


def test_polygons_and_wrappers():
    poly = [0, 0, 9, 0, 9, 9, 0, 9]
    rle = masks.to_rle({"polygon": [poly], "size": [10, 10]})
    assert masks.area(rle) > 60
    assert masks.to_rle({"segmentation": rle})["counts"] == rle["counts"]
    assert masks.to_rle([poly], 10, 10)["counts"] == rle["counts"]
    with pytest.raises(ValueError, match="at least 3"):
        masks.from_polygons([[0, 0, 1, 1]], 10, 10)


def test_uncompressed_rle_and_resize():
    dense = np.zeros((6, 8), bool)
    dense[1:3, 2:7] = True
    # column-major runs: 2 empty columns + 1 pixel, then 5 x (2 on, 4 off), the rest off
    uncompressed = {"size": [6, 8], "counts": [13, 2, 4, 2, 4, 2, 4, 2, 4, 2, 9]}
    rle = masks.to_rle(uncompressed)
    assert masks.area(rle) == 10
    assert np.array_equal(masks.decode(rle), dense)
    big = masks.resize(masks.encode(dense), 12, 16)
    assert big["size"] == [12, 16]
    assert masks.area(big) == 40


def test_compressed_runs_match_pycocotools():
    rng = np.random.default_rng(1)
    for h, w in [(1, 1), (3, 50), (37, 53), (64, 9)]:
        for density in (0.0, 0.03, 0.5, 1.0):
            dense = rng.random((h, w)) < density
            rle = masks.encode(dense)
            runs = masks.compressed_runs(rle["counts"])
            assert runs.sum() == h * w and runs.min() >= 0
            column_major = dense.T.reshape(-1)
            assert runs[1::2].sum() == column_major.sum()  # odd runs are foreground


@pytest.mark.parametrize(
    "bad",
    [
        {"size": [12, 17], "counts": None},  # runs of a 12 x 16 mask, wrong size
        {"size": [10, 16], "counts": None},
        {"size": [12, 16], "counts": ""},
        {"size": [12, 16], "counts": "abc"},  # truncated varint
        {"size": [12, 16], "counts": "\x01"},  # outside the alphabet
        {"size": [12], "counts": "00"},
        {"size": [12, -1], "counts": "00"},
        {"size": [2, 2], "counts": [1, 2]},  # uncompressed, covers 3 of 4 pixels
        {"size": [2, 2], "counts": [5, -1]},
    ],
)
def test_inconsistent_rle_is_refused(bad):
    """pycocotools trusts 'size' (garbage from decode, merge loops forever): refuse on input."""
    dense = np.zeros((12, 16), bool)
    dense[2:5, 3:9] = True
    if bad["counts"] is None:
        bad = {**bad, "counts": masks.encode(dense)["counts"]}
    with pytest.raises(ValueError, match="RLE"):
        masks.to_rle(bad)
