"""Converters for released checkpoints of the original LISA, GLaMM and PLUM code.

``partonomy convert-checkpoint --from lisa|glamm|plum|pixellm SRC --out DST`` (and each family's
``Family.converters``) call :func:`convert` with the layout of the source family:

* :mod:`~partonomy.models.convert.lisa` (``xinlai/LISA-7B-v1``, ``xinlai/LISA-13B-llama2-v1``),
* :mod:`~partonomy.models.convert.glamm` (``MBZUAI/GLaMM-FullScope``, ``MBZUAI/GLaMM-RefSeg``...),
* :mod:`~partonomy.models.convert.plum` (the original PLUM code's merged HF output),
* :mod:`~partonomy.models.convert.pixellm` (``maverickrzw/PixelLM-7B``, ``-13B``, ``hf_model/``).
* :mod:`~partonomy.models.convert.segllm` (``Marlo-Z/SegLLM``; no SAM, its own assembly).

The engine is :mod:`~partonomy.models.convert.common`; lazy reading and family detection are in
:mod:`~partonomy.models.convert.source`. Key mappings are documented in ``docs/models.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from partonomy.errors import ConfigError

SOURCES = ("lisa", "glamm", "plum", "pixellm", "segllm")
"""The families whose released checkpoints convert."""


def layout(family: str) -> Any:
    """The :class:`~partonomy.models.convert.common.SourceLayout` of ``family``."""
    if family == "lisa":
        from partonomy.models.convert.lisa import LAYOUT
    elif family == "glamm":
        from partonomy.models.convert.glamm import LAYOUT
    elif family == "plum":
        from partonomy.models.convert.plum import LAYOUT
    elif family == "pixellm":
        from partonomy.models.convert.pixellm import LAYOUT
    elif family == "segllm":
        from partonomy.models.convert.segllm import LAYOUT
    else:
        raise ConfigError(f"no converter for {family!r}; known: {', '.join(SOURCES)}")
    return LAYOUT


def convert(
    family: str,
    src: str | Path,
    dst: str | Path,
    *,
    vision_tower: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert the released ``family`` checkpoint directory ``src`` into our checkpoint ``dst``
    through the family's registered converter (``Family.converters[family]``; see
    :func:`partonomy.models.convert.common.convert_checkpoint`)."""
    from partonomy.models.core.family import get_family

    converter = get_family(family).converters.get(family)
    if converter is None:
        raise ConfigError(
            f"the {family} family registers no converter for its released checkpoints"
        )
    return converter(src, dst, vision_tower=vision_tower, overwrite=overwrite)  # type: ignore[no-any-return]
