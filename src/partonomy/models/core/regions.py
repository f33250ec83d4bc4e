"""Region inputs (GLaMM's ``<bbox>``): parsing a box from the command line and writing its tokens
into a question."""

from __future__ import annotations

from collections.abc import Sequence

from partonomy.errors import ConfigError

BOX_TOKEN = "<bbox>"
Box = tuple[float, float, float, float]


def parse_box(text: str, size: Sequence[int]) -> Box:
    """``"x0,y0,x1,y1"`` (pixels) -> a box inside an image of ``size = (H, W)``.

    Raises:
        ConfigError: not four numbers, an empty box, or a box outside the image.
    """
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--box {text!r}: expected four comma-separated numbers x0,y0,x1,y1 (pixels)"
        ) from None
    h, w = int(size[0]), int(size[1])
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ConfigError(
            f"--box {text!r}: needs 0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h} (the image is "
            f"{w} x {h} pixels)"
        )
    return (x0, y0, x1, y1)


def with_box_tokens(question: str, n_boxes: int) -> str:
    """``question`` with one ``<bbox>`` per box: kept when it already has exactly that many,
    appended as "(region: <bbox>, ...)" when it has none.

    Raises:
        ConfigError: the question holds another number of ``<bbox>`` tokens than boxes.
    """
    found = question.count(BOX_TOKEN)
    if found == n_boxes:
        return question
    if found == 0:
        regions = ", ".join([BOX_TOKEN] * n_boxes)
        return f"{question} (region{'s' if n_boxes > 1 else ''}: {regions})"
    raise ConfigError(
        f"the question holds {found} {BOX_TOKEN} token(s) but {n_boxes} box(es) were given"
    )
