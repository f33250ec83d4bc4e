"""Where each part of each Partonomy-Synth object sits: the world's layout table.

Geometry lives in an *object frame*: ``x`` to the right (the object's front), ``y`` downwards,
the object roughly filling ``[-1, 1]^2``. A :class:`Slot` places one part (and its copies, e.g. two
wheels) in that frame. Each category of :data:`WORLD` has default slots, and an object may override
some of them. Parts written ``?name`` in an object's part list are optional (drawn in only some
images). Part appearance (shape, texture) is not here but in :mod:`partonomy.data.synth.styles`.
"""

from __future__ import annotations

from dataclasses import dataclass

Copy = tuple[float, float, float, float]
"""One copy of a part: ``(x, y, angle_deg, scale)`` in the object frame."""


@dataclass(frozen=True)
class Slot:
    """Where a part is drawn in the object frame.

    Attributes:
        x, y: centre of the first copy (object frame, ``y`` down).
        w, h: half-width along the part's local ``u`` axis and half-height along ``v``.
        angle: rotation of the first copy in degrees, clockwise on screen (image ``y`` is down).
        z: paint order within the object; higher is drawn later (on top).
        more: further copies ``(x, y, angle, scale)``; ``scale`` multiplies ``w`` and ``h``.
    """

    x: float
    y: float
    w: float
    h: float
    angle: float = 0.0
    z: int = 1
    more: tuple[Copy, ...] = ()

    def copies(self) -> tuple[Copy, ...]:
        """Every copy ``(x, y, angle_deg, scale)``, the first one included."""
        return ((self.x, self.y, self.angle, 1.0), *self.more)


S = Slot


def _m(*copies: tuple[float, ...]) -> tuple[Copy, ...]:
    """Extra copies: ``(x, y)``, ``(x, y, angle)`` or ``(x, y, angle, scale)``."""
    out = []
    for c in copies:
        angle = c[2] if len(c) > 2 else 0.0
        scale = c[3] if len(c) > 3 else 1.0
        out.append((float(c[0]), float(c[1]), float(angle), float(scale)))
    return tuple(out)


# Each category: (name, default slots, [(object, "part, part, ?optional part", {overrides})]).
WORLD: tuple[tuple[str, dict[str, Slot], list[tuple[str, str, dict[str, Slot]]]], ...] = (
    (
        "airplanes",  # seen from above, nose to the right
        {
            "fuselage": S(0.0, 0.0, 0.85, 0.15, z=2),
            "wing": S(0.0, -0.42, 0.22, 0.3, more=_m((0.0, 0.42, 180))),
            "tail": S(-0.8, -0.22, 0.1, 0.14, more=_m((-0.8, 0.22, 180))),
            "cockpit": S(0.52, 0.0, 0.16, 0.08, z=3),
            "propeller": S(0.93, 0.0, 0.14, 0.14, z=3),
            "jet engine": S(0.08, -0.3, 0.14, 0.055, z=3, more=_m((0.08, 0.3))),
            "landing gear": S(0.32, -0.22, 0.06, 0.045, z=3, more=_m((0.32, 0.22))),
            "spraying rig": S(-0.34, 0.0, 0.035, 0.72, z=3),
            "float": S(0.1, -0.27, 0.55, 0.05, z=2, more=_m((0.1, 0.27))),
            "missile": S(0.05, -0.6, 0.2, 0.04, z=2, more=_m((0.05, 0.6))),
        },
        [
            (
                "glider",
                "fuselage, wing, tail, cockpit",
                {"wing": S(0.0, -0.55, 0.12, 0.42, more=_m((0.0, 0.55, 180)))},
            ),
            (
                "agricultural airplane",
                "fuselage, wing, tail, cockpit, propeller, landing gear, spraying rig",
                {},
            ),
            ("airliner", "fuselage, wing, tail, cockpit, jet engine, ?landing gear", {}),
            ("fighter jet", "fuselage, wing, tail, cockpit, jet engine, ?missile", {}),
            ("seaplane", "fuselage, wing, tail, cockpit, propeller, float", {}),
        ],
    ),
    (
        "helicopters",  # side view, nose to the right
        {
            "cabin": S(0.25, 0.08, 0.42, 0.32, z=2),
            "tail boom": S(-0.52, -0.02, 0.42, 0.07),
            "rotor blade": S(0.2, -0.45, 0.85, 0.045, z=3),
            "tail rotor": S(-0.9, -0.12, 0.13, 0.13, z=3),
            "skid": S(0.25, 0.58, 0.5, 0.045),
            "wheel": S(0.0, 0.52, 0.09, 0.09, more=_m((0.5, 0.52))),
            "window": S(0.47, -0.02, 0.13, 0.1, z=3),
            "winch": S(-0.02, 0.2, 0.06, 0.1, z=3),
            "water bucket": S(0.25, 0.82, 0.13, 0.13, 180),
            "weapon pod": S(0.2, 0.42, 0.2, 0.06, z=3),
        },
        [
            (
                "transport helicopter",
                "cabin, tail boom, rotor blade, tail rotor, wheel, ?window",
                {},
            ),
            (
                "attack helicopter",
                "cabin, tail boom, rotor blade, tail rotor, skid, weapon pod",
                {},
            ),
            (
                "rescue helicopter",
                "cabin, tail boom, rotor blade, tail rotor, skid, winch, ?window",
                {},
            ),
            (
                "firefighting helicopter",
                "cabin, tail boom, rotor blade, tail rotor, skid, water bucket",
                {},
            ),
        ],
    ),
    (
        "drones",  # side view
        {
            "hub": S(0.0, 0.0, 0.3, 0.16, z=2),
            "arm": S(-0.55, -0.05, 0.27, 0.045, more=_m((0.55, -0.05))),
            "propeller": S(-0.82, -0.24, 0.17, 0.17, z=2, more=_m((0.82, -0.24))),
            "camera": S(0.18, 0.27, 0.09, 0.09, z=3),
            "payload box": S(0.0, 0.42, 0.2, 0.17),
            "spray tank": S(0.0, 0.33, 0.26, 0.13),
            "nozzle": S(-0.14, 0.6, 0.06, 0.09, 180, more=_m((0.14, 0.6, 180))),
            "landing leg": S(-0.4, 0.42, 0.06, 0.26, z=0, more=_m((0.4, 0.42))),
            "antenna": S(-0.2, -0.33, 0.045, 0.16),
            "battery": S(0.07, -0.24, 0.17, 0.075, z=3),
        },
        [
            ("camera drone", "hub, arm, propeller, camera, ?landing leg", {}),
            ("delivery drone", "hub, arm, propeller, payload box, landing leg", {}),
            ("agricultural drone", "hub, arm, propeller, spray tank, nozzle, ?landing leg", {}),
            ("racing drone", "hub, arm, propeller, antenna, battery, ?camera", {}),
        ],
    ),
    (
        "boats",  # side view, bow to the right
        {
            "hull": S(0.0, 0.32, 0.95, 0.22, 180),
            "seat": S(0.05, 0.05, 0.14, 0.05, z=2, more=_m((-0.45, 0.05))),
            "paddle": S(0.35, -0.14, 0.5, 0.07, -30, z=3),
            "mast": S(0.0, -0.42, 0.04, 0.52, z=2),
            "sail": S(-0.3, -0.42, 0.24, 0.46),
            "cabin": S(-0.1, -0.06, 0.3, 0.16, z=0),
            "windshield": S(0.3, -0.06, 0.06, 0.13, 15),
            "outboard motor": S(-1.0, 0.28, 0.09, 0.22, z=2),
            "seating tube": S(0.0, -0.02, 0.82, 0.12, z=2),
            "handle": S(-0.35, -0.2, 0.06, 0.05, z=3, more=_m((0.15, -0.2), (0.6, -0.2))),
            "inflation valve": S(0.82, -0.05, 0.05, 0.05, z=3),
            "propeller": S(-0.6, -0.3, 0.2, 0.2, z=2),
            "propeller cage": S(-0.6, -0.3, 0.3, 0.3),
            "fishing net": S(-0.55, -0.32, 0.22, 0.26),
            "rudder": S(-0.98, 0.45, 0.06, 0.16, z=0),
        },
        [
            ("canoe", "hull, seat, ?paddle", {"hull": S(0.0, 0.3, 0.95, 0.16, 180)}),
            ("sailboat", "hull, mast, sail, ?rudder", {}),
            ("motorboat", "hull, cabin, windshield, outboard motor", {}),
            (
                "banana boat",
                "hull, seating tube, handle, ?inflation valve",
                {"hull": S(0.0, 0.25, 0.9, 0.13, 180)},
            ),
            ("fishing boat", "hull, cabin, mast, fishing net, ?outboard motor", {}),
            (
                "airboat",
                "hull, seat, propeller, propeller cage, ?rudder",
                {
                    "hull": S(0.0, 0.36, 0.9, 0.15, 180),
                    "seat": S(0.25, 0.14, 0.13, 0.06, z=2),
                    "rudder": S(-0.98, -0.22, 0.05, 0.15, z=2),
                },
            ),
        ],
    ),
    (
        "road vehicles",  # side view, front to the right
        {
            "vehicle body": S(0.0, 0.12, 0.95, 0.26),
            "wheel": S(-0.55, 0.42, 0.2, 0.2, z=2, more=_m((0.55, 0.42))),
            "window": S(0.0, -0.27, 0.42, 0.14),
            "door": S(0.05, 0.08, 0.22, 0.17, z=2),
            "headlight": S(0.88, 0.02, 0.06, 0.05, z=3),
            "cab": S(0.6, -0.05, 0.33, 0.38),
            "cargo bed": S(-0.35, 0.14, 0.6, 0.17),
            "ladder": S(-0.25, -0.24, 0.62, 0.06, z=3),
            "siren": S(0.45, -0.48, 0.1, 0.07, z=2),
            "exhaust pipe": S(0.25, -0.55, 0.035, 0.2, z=0),
            "caterpillar track": S(-0.05, 0.5, 0.82, 0.2, z=2),
            "blade": S(0.9, 0.35, 0.32, 0.12, 90, z=2),
            "engine": S(0.3, 0.1, 0.38, 0.22),
        },
        [
            ("car", "vehicle body, wheel, window, headlight, ?door", {}),
            (
                "pickup truck",
                "cab, cargo bed, wheel, window, ?headlight",
                {"window": S(0.68, -0.2, 0.16, 0.12, z=2)},
            ),
            (
                "bus",
                "vehicle body, wheel, window, door, ?headlight",
                {
                    "vehicle body": S(0.0, 0.05, 0.95, 0.36),
                    "window": S(-0.6, -0.12, 0.14, 0.1, z=2, more=_m((-0.2, -0.12), (0.2, -0.12))),
                    "door": S(0.68, 0.1, 0.1, 0.22, z=2),
                },
            ),
            (
                "fire truck",
                "cab, vehicle body, wheel, ladder, siren",
                {
                    "cab": S(0.68, 0.02, 0.28, 0.33),
                    "vehicle body": S(-0.27, 0.1, 0.65, 0.26),
                    "wheel": S(-0.6, 0.42, 0.18, 0.18, z=2, more=_m((-0.15, 0.42), (0.65, 0.42))),
                },
            ),
            (
                "ambulance",
                "vehicle body, wheel, siren, door, ?window",
                {"window": S(0.55, -0.22, 0.22, 0.1, z=2)},
            ),
            (
                "tractor",
                "cab, wheel, engine, exhaust pipe, ?headlight",
                {
                    "cab": S(-0.35, -0.25, 0.3, 0.35),
                    "wheel": S(-0.4, 0.4, 0.38, 0.38, z=2, more=_m((0.6, 0.52, 0, 0.55))),
                    "headlight": S(0.82, 0.02, 0.06, 0.05, z=3),
                },
            ),
            (
                "bulldozer",
                "cab, caterpillar track, blade, exhaust pipe",
                {"cab": S(-0.2, -0.05, 0.35, 0.3), "exhaust pipe": S(0.05, -0.45, 0.035, 0.2)},
            ),
        ],
    ),
    (
        "cycles",  # side view, front to the right
        {
            "frame": S(0.0, 0.05, 0.55, 0.38),
            "wheel": S(-0.62, 0.45, 0.36, 0.36, z=0, more=_m((0.62, 0.45))),
            "handlebar": S(0.5, -0.45, 0.1, 0.12, z=2),
            "saddle": S(-0.3, -0.42, 0.15, 0.06, z=2),
            "pedal": S(0.0, 0.5, 0.08, 0.08, z=2),
            "basket": S(0.85, -0.2, 0.15, 0.13, 180, z=2),
            "engine": S(0.0, 0.25, 0.22, 0.18, z=2),
            "fuel tank": S(0.12, -0.18, 0.22, 0.09, z=2),
            "headlight": S(0.85, -0.3, 0.06, 0.06, z=3),
            "exhaust pipe": S(-0.45, 0.35, 0.3, 0.035, 10, z=3),
            "deck": S(0.0, 0.38, 0.55, 0.05),
            "shaft": S(0.6, -0.05, 0.45, 0.035, 90),
        },
        [
            ("bicycle", "frame, wheel, handlebar, saddle, pedal", {}),
            (
                "tandem bicycle",
                "frame, wheel, handlebar, saddle, pedal",
                {
                    "frame": S(0.0, 0.08, 0.7, 0.34),
                    "wheel": S(-0.75, 0.5, 0.28, 0.28, z=0, more=_m((0.75, 0.5))),
                    "saddle": S(-0.45, -0.38, 0.14, 0.06, z=2, more=_m((0.15, -0.38))),
                    "pedal": S(-0.3, 0.5, 0.08, 0.08, z=2, more=_m((0.3, 0.5))),
                    "handlebar": S(0.62, -0.38, 0.1, 0.12, z=2),
                },
            ),
            (
                "tricycle",
                "frame, wheel, handlebar, saddle, ?basket",
                {
                    "wheel": S(0.55, 0.45, 0.36, 0.36, z=0, more=_m((-0.62, 0.6, 0, 0.55))),
                    "basket": S(-0.85, 0.05, 0.15, 0.13, 180, z=2),
                },
            ),
            ("cargo bicycle", "frame, wheel, handlebar, saddle, pedal, basket", {}),
            (
                "motorcycle",
                "wheel, handlebar, saddle, engine, fuel tank, exhaust pipe, ?headlight, ?frame",
                {},
            ),
            (
                "kick scooter",
                "deck, wheel, handlebar, shaft",
                {
                    "wheel": S(-0.5, 0.5, 0.15, 0.15, z=2, more=_m((0.6, 0.5))),
                    "handlebar": S(0.62, -0.55, 0.1, 0.12, z=2),
                },
            ),
        ],
    ),
    (
        "kitchenware",
        {
            "body": S(0.0, 0.1, 0.55, 0.5),
            "handle": S(-0.62, 0.1, 0.12, 0.25, z=0),
            "spout": S(0.72, -0.12, 0.1, 0.25, 60, z=0),
            "lid": S(0.0, -0.46, 0.32, 0.1, z=2),
            "knob": S(0.0, -0.62, 0.07, 0.06, z=3),
            "pan": S(0.3, 0.0, 0.5, 0.5),
            "pot": S(0.15, 0.12, 0.45, 0.35),
            "blade": S(0.32, -0.03, 0.62, 0.15, 180),
            "bolster": S(-0.32, 0.0, 0.04, 0.14, z=2),
            "rivet": S(-0.75, 0.0, 0.04, 0.04, z=3, more=_m((-0.52, 0.0))),
            "teeth": S(0.32, 0.14, 0.6, 0.05, z=2),
            "jar": S(0.0, -0.15, 0.4, 0.45, 180),
            "base": S(0.0, 0.58, 0.45, 0.18),
            "button": S(-0.18, 0.62, 0.06, 0.06, z=3, more=_m((0.18, 0.62))),
        },
        [
            (
                "kettle",
                "body, handle, spout, lid",
                {
                    "body": S(0.0, 0.15, 0.55, 0.48),
                    "handle": S(0.0, -0.62, 0.35, 0.07, z=0),
                    "lid": S(0.0, -0.38, 0.28, 0.08, z=2),
                },
            ),
            ("teapot", "body, handle, spout, lid, ?knob", {}),
            (
                "mug",
                "body, handle",
                {"body": S(0.0, 0.05, 0.45, 0.6), "handle": S(-0.52, 0.05, 0.12, 0.28, z=0)},
            ),
            ("frying pan", "pan, handle", {"handle": S(-0.6, 0.0, 0.4, 0.07)}),
            (
                "saucepan",
                "pot, handle, ?lid",
                {
                    "handle": S(-0.62, 0.0, 0.33, 0.06),
                    "lid": S(0.15, -0.3, 0.45, 0.08, z=2),
                },
            ),
            (
                "kitchen knife",
                "blade, handle, bolster, ?rivet",
                {"handle": S(-0.62, 0.0, 0.28, 0.09)},
            ),
            ("bread knife", "blade, handle, teeth", {"handle": S(-0.62, 0.0, 0.28, 0.09)}),
            (
                "blender",
                "jar, lid, base, ?button",
                {"lid": S(0.0, -0.67, 0.42, 0.08, z=2)},
            ),
        ],
    ),
    (
        "hand tools",  # lying horizontally, working end to the right
        {
            "handle": S(-0.2, 0.0, 0.68, 0.08),
            "head": S(0.55, 0.0, 0.12, 0.28, z=2),
            "claw": S(0.55, -0.42, 0.12, 0.14, -90),
            "shaft": S(0.2, 0.0, 0.45, 0.035),
            "tip": S(0.7, 0.0, 0.045, 0.07, 90),
            "jaw": S(0.68, 0.0, 0.22, 0.22, z=2),
            "teeth": S(0.18, 0.2, 0.62, 0.05, z=2),
            "blade": S(0.18, -0.05, 0.65, 0.2),
            "housing": S(-0.05, -0.2, 0.45, 0.18, z=2),
            "chuck": S(0.5, -0.2, 0.1, 0.11, z=2),
            "drill bit": S(0.8, -0.2, 0.22, 0.03),
            "trigger": S(-0.12, 0.1, 0.05, 0.07, z=3),
            "battery": S(-0.3, 0.72, 0.22, 0.12),
        },
        [
            ("hammer", "handle, head, claw", {}),
            (
                "sledgehammer",
                "handle, head",
                {"handle": S(-0.25, 0.0, 0.7, 0.07), "head": S(0.6, 0.0, 0.2, 0.3, z=2)},
            ),
            (
                "axe",
                "handle, head, blade",
                {
                    "head": S(0.42, -0.05, 0.1, 0.15, z=2),
                    "blade": S(0.68, -0.1, 0.32, 0.2, 90, z=2),
                },
            ),
            ("screwdriver", "handle, shaft, tip", {"handle": S(-0.55, 0.0, 0.35, 0.12)}),
            ("wrench", "handle, jaw", {"handle": S(-0.1, 0.0, 0.6, 0.07)}),
            ("handsaw", "handle, blade, teeth", {"handle": S(-0.72, -0.05, 0.22, 0.22)}),
            (
                "power drill",
                "housing, handle, chuck, drill bit, trigger, ?battery",
                {"handle": S(-0.25, 0.32, 0.3, 0.09, 80)},
            ),
        ],
    ),
    (
        "garden tools",  # long tools lying horizontally, working end to the right
        {
            "shaft": S(-0.1, 0.0, 0.72, 0.035),
            "grip": S(-0.9, 0.0, 0.1, 0.14),
            "blade": S(0.8, 0.0, 0.22, 0.2, 90),
            "head": S(0.64, 0.0, 0.04, 0.4, z=2),
            "tines": S(0.82, 0.0, 0.38, 0.14, -90),
            "tray": S(0.05, -0.1, 0.55, 0.25, 180),
            "wheel": S(0.75, 0.35, 0.2, 0.2, z=2),
            "handle": S(-0.7, -0.25, 0.3, 0.05, 15),
            "leg": S(-0.35, 0.35, 0.04, 0.22, z=0),
            "body": S(0.0, 0.1, 0.45, 0.4),
            "spout": S(0.6, -0.15, 0.07, 0.35, 55, z=0),
            "rose": S(0.92, -0.42, 0.1, 0.08, 55),
            "deck": S(0.15, 0.25, 0.5, 0.15),
            "engine": S(0.15, -0.02, 0.25, 0.15, z=2),
            "grass bag": S(-0.6, 0.1, 0.25, 0.2),
        },
        [
            ("shovel", "shaft, blade, grip", {}),
            ("rake", "shaft, head, tines", {}),
            ("pitchfork", "shaft, tines, ?grip", {"tines": S(0.78, 0.0, 0.3, 0.16, -90)}),
            ("hoe", "shaft, blade", {"blade": S(0.7, 0.1, 0.14, 0.16, 180)}),
            ("wheelbarrow", "tray, wheel, handle, leg", {}),
            (
                "watering can",
                "body, spout, handle, ?rose",
                {"handle": S(-0.1, -0.5, 0.32, 0.07)},
            ),
            (
                "lawn mower",
                "deck, wheel, handle, engine, ?grass bag",
                {
                    "wheel": S(-0.25, 0.42, 0.13, 0.13, z=2, more=_m((0.55, 0.42))),
                    "handle": S(-0.5, -0.35, 0.55, 0.035, 40),
                },
            ),
        ],
    ),
    (
        "furniture",  # side view
        {
            "seat": S(0.0, 0.1, 0.45, 0.07, z=2),
            "backrest": S(-0.42, -0.42, 0.07, 0.45),
            "leg": S(-0.38, 0.55, 0.04, 0.38, more=_m((0.38, 0.55))),
            "armrest": S(0.0, -0.15, 0.4, 0.05, z=3),
            "cushion": S(0.02, -0.02, 0.42, 0.06, z=3),
            "wheel": S(-0.45, 0.85, 0.08, 0.08, z=2, more=_m((0.45, 0.85))),
            "gas lift": S(0.0, 0.4, 0.25, 0.05, 90),
            "base": S(0.0, 0.68, 0.5, 0.06),
            "tabletop": S(0.0, -0.25, 0.95, 0.07, z=2),
            "lampshade": S(0.35, -0.55, 0.28, 0.22, z=2),
            "bulb": S(0.35, -0.22, 0.09, 0.09),
            "arm": S(-0.05, 0.2, 0.55, 0.04, -55),
        },
        [
            ("chair", "seat, backrest, leg", {}),
            (
                "armchair",
                "seat, backrest, leg, armrest, ?cushion",
                {
                    "seat": S(0.0, 0.1, 0.55, 0.1, z=2),
                    "backrest": S(-0.52, -0.35, 0.1, 0.45),
                    "leg": S(-0.45, 0.42, 0.04, 0.2, more=_m((0.45, 0.42))),
                    "armrest": S(0.0, -0.18, 0.42, 0.05, z=3),
                },
            ),
            ("office chair", "seat, backrest, gas lift, base, wheel, ?armrest", {}),
            (
                "table",
                "tabletop, leg",
                {"leg": S(-0.8, 0.3, 0.05, 0.48, more=_m((0.8, 0.3)))},
            ),
            (
                "desk lamp",
                "base, arm, lampshade, ?bulb",
                {"base": S(-0.4, 0.82, 0.32, 0.08)},
            ),
        ],
    ),
)
"""Categories in order: ``(category, default slots, [(object, "part, ?optional part", overrides)])``."""
