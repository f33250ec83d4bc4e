"""Object-part matching (threshold 0.1 of the part's area), instance choice and the red box."""

from __future__ import annotations

import numpy as np
from PIL import Image

from partonomy.data.matching import (
    BOX_COLOR,
    Candidate,
    choose_instance,
    draw_red_box,
    match_parts,
    overlap_fraction,
    red_box,
    save_boxed_image,
)
from partonomy.io import masks as mask_io


def _rect(y0, y1, x0, x1, h=20, w=20):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return mask_io.encode(m)


def test_overlap_is_a_fraction_of_the_part():
    part = _rect(0, 10, 0, 10)  # 100 px
    obj = _rect(0, 1, 0, 10)  # covers 10 px of the part
    assert overlap_fraction(part, obj) == 0.1
    assert overlap_fraction(obj, part) == 1.0
    assert overlap_fraction(_rect(0, 0, 0, 0), obj) == 0.0  # empty part


def test_threshold_is_inclusive_and_each_part_goes_to_its_best_object():
    objects = [(1, _rect(0, 1, 0, 10)), (2, _rect(0, 20, 9, 20))]
    parts = [
        (10, _rect(0, 10, 0, 10)),  # 10/100 in obj 1, 10/100 in obj 2 (column 9): tie -> obj 1
        (11, _rect(12, 20, 0, 5)),  # in neither
        (12, _rect(0, 10, 8, 12)),  # 4/40 in obj 1, 30/40 in obj 2 -> obj 2
    ]
    c1, c2 = match_parts(objects, parts)
    assert (c1.ann_id, c1.parts, c1.area) == (1, [10], 10)
    assert (c2.ann_id, c2.parts, c2.area) == (2, [12], 220)
    # just below the threshold: no match at all
    [c] = match_parts([(1, _rect(0, 1, 0, 9))], [(10, _rect(0, 10, 0, 10))])
    assert c.parts == []  # 9 / 100 < 0.1


def test_choice_prefers_parts_then_area_then_lower_id():
    rle = _rect(0, 1, 0, 1)
    many = Candidate(5, rle, 10, [1, 2, 3])
    big = Candidate(3, rle, 500, [4, 5])
    assert choose_instance([big, many]) is many
    same_a = Candidate(8, rle, 100, [1])
    same_b = Candidate(4, rle, 100, [2])
    assert choose_instance([same_a, same_b]) is same_b
    larger = Candidate(9, rle, 101, [3])
    assert choose_instance([same_a, same_b, larger]) is larger
    assert choose_instance([Candidate(1, rle, 5)]) is None


def test_red_box_is_padded_by_5_and_clamped():
    # tight box: columns 10..19, rows 12..15 -> padded: 5..24, 7..20
    assert red_box((10, 12, 10, 4), width=100, height=100) == (5, 7, 24, 20)
    assert red_box((1, 2, 10, 4), width=12, height=8) == (0, 0, 11, 7)


def test_drawn_box_has_width_3_and_leaves_the_rest_alone():
    img = Image.new("RGB", (40, 30), (0, 200, 0))
    out = np.asarray(draw_red_box(img, (10, 10, 10, 5)))  # box -> (5, 5)-(24, 19)
    red = np.all(out == BOX_COLOR, axis=-1)
    # the top edge: rows 5, 6, 7 are red across columns 5..24, row 8 is not (inside)
    assert red[5:8, 5:25].all()
    assert not red[8, 8:22].any()
    # left edge is 3 px wide: columns 5..7
    assert red[5:20, 5:8].all() and not red[10, 8]
    # outside the box untouched
    assert not red[0:5].any() and not red[:, 25:].any() and not red[20:].any()
    assert np.asarray(img).max() == 200  # the input is not modified


def test_saved_boxed_image_is_a_jpeg_with_a_red_frame(tmp_path):
    src = tmp_path / "a.jpg"
    Image.new("RGB", (40, 30), (0, 120, 0)).save(src)
    dst = tmp_path / "out" / "a-0.jpg"
    save_boxed_image(src, (10, 10, 10, 5), dst)
    with Image.open(dst) as img:
        assert img.format == "JPEG" and img.size == (40, 30)
        pixel = np.asarray(img.convert("RGB"))[6, 15].astype(int)
    assert pixel[0] > 200 and pixel[1] < 80  # red, up to JPEG error
