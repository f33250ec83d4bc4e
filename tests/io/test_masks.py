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
    uncompressed = {"size": [6, 8], "counts": [8 * 2 + 1, 2, 4, 2, 4, 2, 4, 2, 4, 2, 13]}
    rle = masks.to_rle(uncompressed)
    assert masks.area(rle) == 10
    big = masks.resize(masks.encode(dense), 12, 16)
    assert big["size"] == [12, 16]
    assert masks.area(big) == 40
