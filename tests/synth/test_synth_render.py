"""Rendering and the visibility rule, on hand-built scenes with hand-computed pixel counts.

A ``rect`` of half-size 4 centred on an integer pixel corner covers exactly 8 x 8 pixels
(see test_synth_shapes), which makes every count below easy to check by hand.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

from partonomy.data.synth.render import annotate, draw_red_box, render
from partonomy.data.synth.scene import OCCLUDER, Drawable, Scene
from partonomy.data.synth.styles import PartStyle
from partonomy.data.synth.taxonomy import ObjectSpec

SIZE = 32
RECT = PartStyle("rect", "solid")
THING = ObjectSpec("thing", "things", ("a", "b"), frozenset(), MappingProxyType({}))


def _rect(cx: float, cy: float, half: float, label: int, half_y: float | None = None) -> Drawable:
    grey = np.full(3, 100.0, dtype=np.float32)
    matrix = np.diag([half, half if half_y is None else half_y])
    return Drawable(RECT, matrix, np.array([cx, cy]), grey, grey + 50, label, shade=False)


def _scene(*layers: Drawable, part_of: dict[int, str] | None = None) -> Scene:
    part_of = part_of or {3: "a", 4: "b"}
    return Scene(
        size=SIZE,
        background=np.zeros((SIZE, SIZE, 3), dtype=np.float32),
        layers=list(layers),
        target=THING,
        target_ids=(min(part_of), max(part_of) + 1),
        part_of=part_of,
    )


def _annotate(scene: Scene, threshold: float = 0.3, min_pixels: int = 6):  # type: ignore[no-untyped-def]
    rendered = render(scene, np.random.default_rng(0), outline=False, noise=0.0)
    return rendered, annotate(
        scene, rendered, visibility_threshold=threshold, min_part_pixels=min_pixels
    )


def test_unoccluded_parts_are_annotated_with_exact_masks() -> None:
    rendered, ann = _annotate(_scene(_rect(8, 8, 4, 3), _rect(22, 22, 4, 4)))
    assert list(ann.parts) == ["a", "b"] and ann.hidden_parts == []
    expected = np.zeros((SIZE, SIZE), dtype=bool)
    expected[4:12, 4:12] = True
    np.testing.assert_array_equal(ann.parts["a"], expected)
    assert ann.parts["b"].sum() == 64
    assert ann.object_mask.sum() == 128
    assert rendered.image.shape == (SIZE, SIZE, 3) and rendered.image.dtype == np.uint8
    assert (rendered.image[ann.parts["a"]] == 100).all()  # solid base colour, no shading


def test_a_fully_occluded_part_is_not_in_the_annotation() -> None:
    occluder = _rect(22, 22, 5, OCCLUDER)  # 10 x 10 over part b's 8 x 8
    _, ann = _annotate(_scene(_rect(8, 8, 4, 3), _rect(22, 22, 4, 4), occluder))
    assert list(ann.parts) == ["a"]
    assert ann.hidden_parts == ["b"]
    assert ann.object_mask.sum() == 64  # b has no visible pixel left


def test_a_partly_occluded_part_keeps_exactly_its_visible_pixels() -> None:
    # The occluder covers columns 14..21; part b spans columns 18..25: 4 of 8 columns stay (50 %).
    occluder = _rect(18, 22, 4, OCCLUDER)
    _, ann = _annotate(_scene(_rect(8, 8, 4, 3), _rect(22, 22, 4, 4), occluder))
    expected = np.zeros((SIZE, SIZE), dtype=bool)
    expected[18:26, 22:26] = True
    np.testing.assert_array_equal(ann.parts["b"], expected)
    assert ann.hidden_parts == []


def test_visibility_threshold_is_a_fraction_of_the_parts_own_area() -> None:
    # The occluder covers columns 12..23; part b keeps columns 24..25: 2 of 8 = 25 % visible.
    layers = (_rect(8, 8, 4, 3), _rect(22, 22, 4, 4), _rect(18, 22, 6, OCCLUDER))
    _, strict = _annotate(_scene(*layers), threshold=0.3)
    assert "b" not in strict.parts and strict.hidden_parts == ["b"]
    _, lenient = _annotate(_scene(*layers), threshold=0.2)
    assert lenient.parts["b"].sum() == 16


def test_pixels_cut_off_by_the_frame_count_towards_a_parts_area() -> None:
    # b at x = 30 spans columns 26..33: 6 of 8 columns inside a 32-px image (75 %): kept.
    rendered, ann = _annotate(_scene(_rect(8, 8, 4, 3), _rect(30, 10, 4, 4)))
    assert rendered.full_area[4] == 64
    assert ann.parts["b"].sum() == 48
    # At x = 34 it spans columns 30..37: 2 of 8 inside (25 %): dropped as cut off.
    _, cut = _annotate(_scene(_rect(8, 8, 4, 3), _rect(34, 10, 4, 4)))
    assert cut.hidden_parts == ["b"]


def test_copies_of_a_part_are_judged_one_by_one() -> None:
    # Two copies of part "a" (ids 3 and 4), the second fully occluded: "a" keeps copy 3 only.
    layers = (_rect(8, 8, 4, 3), _rect(22, 22, 4, 4), _rect(22, 22, 5, OCCLUDER))
    _, ann = _annotate(_scene(*layers, part_of={3: "a", 4: "a"}))
    assert list(ann.parts) == ["a"] and ann.parts["a"].sum() == 64
    assert ann.hidden_parts == []


def test_min_part_pixels_drops_specks() -> None:
    # A 2 x 2 part is 100 % visible but has only 4 pixels.
    _, ann = _annotate(_scene(_rect(8, 8, 4, 3), _rect(20, 20, 1, 4)), min_pixels=6)
    assert ann.hidden_parts == ["b"]
    _, ann = _annotate(_scene(_rect(8, 8, 4, 3), _rect(20, 20, 1, 4)), min_pixels=4)
    assert ann.parts["b"].sum() == 4


def test_outline_darkens_boundaries_but_never_moves_a_mask() -> None:
    scene = _scene(_rect(8, 8, 4, 3), _rect(22, 22, 4, 4))
    plain = render(scene, np.random.default_rng(0), outline=False, noise=0.0)
    lined = render(scene, np.random.default_rng(0), outline=True, noise=0.0)
    np.testing.assert_array_equal(plain.labels, lined.labels)
    assert lined.image[4, 4, 0] == 60  # 100 * 0.6 on the part's border
    assert lined.image[7, 7, 0] == 100  # interior untouched
    assert lined.image[0, 0, 0] == 0  # background side of the border untouched


def test_red_box_is_drawn_outside_the_boxed_object() -> None:
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    draw_red_box(image, (10, 12, 20, 22), width=2, pad=3)
    red = (image == [255, 0, 0]).all(axis=2)
    expected = np.zeros((40, 40), dtype=bool)
    expected[7:28, 5:7] = expected[7:28, 24:26] = (
        True  # left, right: columns x0-5..x0-4, x1+4..x1+5
    )
    expected[7:9, 5:26] = expected[26:28, 5:26] = True  # top, bottom
    np.testing.assert_array_equal(red, expected)
    assert not red[9:26, 7:24].any()  # nothing within pad of the box


def test_red_box_is_clipped_at_the_image_border() -> None:
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    draw_red_box(image, (0, 0, 10, 10), width=1, pad=2)
    red = (image == [255, 0, 0]).all(axis=2)
    assert red[:, 13].sum() == 14 and red[13, :].sum() == 14  # right and bottom lines only
    assert red.sum() == 27


@pytest.mark.parametrize("noise", [0.0, 5.0])
def test_render_is_a_pure_function_of_scene_and_generator(noise: float) -> None:
    scene = _scene(_rect(8, 8, 4, 3), _rect(22, 22, 4, 4))
    a = render(scene, np.random.default_rng(5), outline=True, noise=noise)
    b = render(scene, np.random.default_rng(5), outline=True, noise=noise)
    np.testing.assert_array_equal(a.image, b.image)
