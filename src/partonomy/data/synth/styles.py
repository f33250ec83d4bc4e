"""How each part looks: one shape, one texture and a texture frequency per part name.

The appearance of a part depends on the part only (a wheel is a spoked ring in a car, a bicycle
and an office chair alike), so a model can learn "wheel" vs "wing" from pixels. Colours do NOT
belong to the style: every object instance draws a fresh palette shared by all its parts (see
:mod:`partonomy.data.synth.scene`), so colour alone never names a part. Where and how large a part
is drawn relative to its object comes from the object's layout in
:mod:`partonomy.data.synth.taxonomy`.

Within one object no two parts share both shape and texture (checked by the tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from partonomy.data.synth.shapes import SHAPES, TEXTURES


@dataclass(frozen=True)
class PartStyle:
    """The look of one part.

    Attributes:
        shape: a key of :data:`partonomy.data.synth.shapes.SHAPES`.
        texture: a key of :data:`partonomy.data.synth.shapes.TEXTURES`.
        freq: texture periods across the part's local square (ignored by solid textures).
    """

    shape: str
    texture: str
    freq: float = 2.0

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape '{self.shape}'; known: {', '.join(SHAPES)}")
        if self.texture not in TEXTURES:
            raise ValueError(f"unknown texture '{self.texture}'; known: {', '.join(TEXTURES)}")


def _s(shape: str, texture: str, freq: float = 2.0) -> PartStyle:
    return PartStyle(shape, texture, freq)


PART_STYLES: MappingProxyType[str, PartStyle] = MappingProxyType(
    {
        # aircraft
        "fuselage": _s("capsule", "stripes_v", 3),
        "wing": _s("trapezoid", "diagonal", 3),
        "tail": _s("triangle", "solid"),
        "cockpit": _s("ellipse", "gradient"),
        "propeller": _s("star", "spot"),
        "jet engine": _s("capsule", "rings", 3),
        "landing gear": _s("rect", "checker", 2),
        "spraying rig": _s("rect", "stripes_v", 8),
        "float": _s("capsule", "zigzag", 3),
        "missile": _s("chevron", "stripes_u", 4),
        "cabin": _s("roundrect", "rim"),
        "tail boom": _s("rect", "stripes_u", 6),
        "rotor blade": _s("capsule", "gradient"),
        "tail rotor": _s("cross", "spot"),
        "skid": _s("rect", "solid"),
        "winch": _s("hook", "solid"),
        "water bucket": _s("trapezoid", "stripes_v", 4),
        "weapon pod": _s("capsule", "dots", 4),
        "hub": _s("roundrect", "zigzag", 3),
        "arm": _s("rect", "grid", 3),
        "camera": _s("ellipse", "rings", 3),
        "payload box": _s("roundrect", "checker", 2),
        "spray tank": _s("ellipse", "stripes_v", 3),
        "nozzle": _s("triangle", "spot"),
        "landing leg": _s("trapezoid", "solid"),
        "antenna": _s("rect", "stripes_v", 6),
        "battery": _s("rect", "stripes_u", 3),
        # boats
        "hull": _s("trapezoid", "stripes_v", 2),
        "seat": _s("rect", "stripes_u", 5),
        "paddle": _s("ellipse", "diagonal", 4),
        "mast": _s("rect", "solid"),
        "sail": _s("triangle", "stripes_v", 4),
        "windshield": _s("trapezoid", "gradient"),
        "outboard motor": _s("roundrect", "stripes_v", 4),
        "seating tube": _s("capsule", "stripes_u", 6),
        "handle": _s("roundrect", "stripes_u", 5),
        "inflation valve": _s("ellipse", "spot"),
        "propeller cage": _s("ring", "grid", 6),
        "fishing net": _s("diamond", "grid", 5),
        "rudder": _s("dome", "stripes_v", 2),
        # road vehicles and cycles
        "vehicle body": _s("roundrect", "stripes_v", 2),
        "wheel": _s("ring", "spokes", 6),
        "window": _s("roundrect", "grid", 2),
        "door": _s("rect", "rim"),
        "headlight": _s("ellipse", "rings", 2),
        "cab": _s("roundrect", "diagonal", 2),
        "cargo bed": _s("rect", "checker", 3),
        "ladder": _s("rect", "stripes_u", 10),
        "siren": _s("dome", "stripes_u", 3),
        "exhaust pipe": _s("rect", "gradient"),
        "caterpillar track": _s("capsule", "stripes_u", 12),
        "blade": _s("dome", "diagonal", 3),
        "engine": _s("hexagon", "grid", 3),
        "frame": _s("hollow_triangle", "solid"),
        "handlebar": _s("hook", "stripes_v", 3),
        "saddle": _s("dome", "stripes_u", 3),
        "pedal": _s("cross", "solid"),
        "basket": _s("trapezoid", "grid", 4),
        "fuel tank": _s("capsule", "diagonal", 2),
        "deck": _s("rect", "checker", 6),
        "shaft": _s("capsule", "solid"),
        # kitchenware and tools
        "body": _s("ellipse", "stripes_v", 3),
        "spout": _s("triangle", "gradient"),
        "lid": _s("dome", "rim"),
        "knob": _s("ellipse", "solid"),
        "pan": _s("ellipse", "rings", 3),
        "pot": _s("rect", "rim"),
        "bolster": _s("rect", "solid"),
        "rivet": _s("ellipse", "spot"),
        "teeth": _s("serrated", "solid"),
        "jar": _s("trapezoid", "grid", 3),
        "base": _s("trapezoid", "stripes_v", 2),
        "button": _s("ellipse", "spot"),
        "head": _s("roundrect", "gradient"),
        "claw": _s("crescent", "solid"),
        "tip": _s("triangle", "solid"),
        "jaw": _s("crescent", "stripes_v", 3),
        "housing": _s("capsule", "rim"),
        "chuck": _s("hexagon", "stripes_u", 4),
        "drill bit": _s("rect", "diagonal", 6),
        "trigger": _s("dome", "solid"),
        # garden tools and furniture
        "grip": _s("ring", "stripes_u", 2),
        "tines": _s("comb", "solid"),
        "tray": _s("trapezoid", "rim"),
        "leg": _s("rect", "stripes_v", 4),
        "rose": _s("dome", "dots", 4),
        "grass bag": _s("roundrect", "grid", 5),
        "backrest": _s("roundrect", "stripes_v", 3),
        "armrest": _s("capsule", "stripes_u", 2),
        "cushion": _s("roundrect", "dots", 4),
        "tabletop": _s("rect", "zigzag", 2),
        "lampshade": _s("trapezoid", "stripes_u", 4),
        "bulb": _s("ellipse", "gradient"),
        "gas lift": _s("capsule", "stripes_v", 2),
    }
)
"""Part name -> its :class:`PartStyle`. Every part of the taxonomy has an entry."""

OCCLUDER_STYLES: tuple[PartStyle, ...] = (
    PartStyle("ellipse", "speckle", 3),
    PartStyle("roundrect", "speckle", 3),
    PartStyle("capsule", "speckle", 2),
)
"""Looks of occluders and background clutter: a speckle no part uses, so they read as "not a part"."""
