"""Building a family's model for inference: from a checkpoint (any family; the checkpoint names
its own) or from a preset, and the model-registry entry that wraps it in a
:class:`~partonomy.models.core.predictor.SegPredictor`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from partonomy.errors import ConfigError
from partonomy.models.core.devices import resolve_device, resolve_dtype
from partonomy.models.core.predictor import SegPredictor
from partonomy.models.core.scoring import CHOICE_SCORES

if TYPE_CHECKING:
    from partonomy.models.core.model import SegLMM
    from partonomy.models.core.processing import SegProcessor


def load_model(
    family: str,
    checkpoint: str | None = None,
    preset: str = "tiny",
    device: str = "auto",
    dtype: str = "auto",
) -> tuple[SegLMM, SegProcessor]:
    """A model and processor of ``family``: trained from ``checkpoint`` (a checkpoint or run
    directory, whose config names its family), or freshly built from one of the family's presets
    (``tiny`` is random; the real presets load their backbones only).

    Raises:
        ConfigError: unknown family or preset, or a checkpoint of another family.
    """
    from partonomy.models.core.family import get_family

    spec = get_family(family)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if checkpoint is not None:
        from partonomy.training.checkpoint import load_checkpoint

        model, processor = load_checkpoint(checkpoint, device=dev, dtype=dt)
        if model.family != family:
            raise ConfigError(
                f"{checkpoint} holds a {model.family!r} model, not {family!r}; "
                f"use --model {model.family}"
            )
        return model, processor
    model, processor = spec.build(spec.preset(preset))
    for param in model.parameters():
        param.requires_grad_(False)
    return model.to(device=dev, dtype=dt).eval(), processor


PREDICTOR_OPTIONS = (
    "max_new_tokens",
    "generation",
    "layout",
    "max_rows",
    "image_cache",
    "pipeline",
    "compile_encoder",
    "embedding_cache",
    "share_image_prefix",
    "scoring_kernels",
)


def build_predictor(
    family: str,
    checkpoint: str | None = None,
    preset: str = "tiny",
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 8,
    choice_score: str = "conversation",
    **kw: Any,
) -> SegPredictor:
    """The model-registry entry of a family (``partonomy eval --model plum|lisa|glamm``).

    Args:
        family: the family name.
        checkpoint: a training checkpoint or run directory (``--model-opt checkpoint=RUN_DIR``),
            or a converted released checkpoint; None builds ``preset`` untrained.
        preset: a preset of the family, used without a checkpoint.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:1``...
        dtype: ``auto`` (bfloat16 on GPU, float32 on CPU), ``float32``, ``bfloat16``, ``float16``.
        batch_size: questions per scoring step.
        choice_score: ``conversation`` (the paper's) or ``answer``.
        kw: further :class:`SegPredictor` options (:data:`PREDICTOR_OPTIONS`).

    Raises:
        ConfigError: an unknown option or value, or a checkpoint that cannot be loaded.
    """
    unknown = sorted(set(kw) - set(PREDICTOR_OPTIONS))
    if unknown:
        raise ConfigError(
            f"{family}: unknown option {unknown[0]!r}; options: checkpoint, preset, device, dtype, "
            f"batch_size, choice_score, {', '.join(PREDICTOR_OPTIONS)}"
        )
    if choice_score not in CHOICE_SCORES:
        raise ConfigError(
            f"{family}: choice_score must be one of {', '.join(CHOICE_SCORES)}, got {choice_score!r}"
        )
    model, processor = load_model(family, checkpoint, preset, device, dtype)
    return SegPredictor(model, processor, batch_size=batch_size, choice_score=choice_score, **kw)


def family_model(family: str) -> Callable[..., SegPredictor]:
    """The model-registry entry of ``family``: ``build_predictor(family, **options)``."""

    def build(**options: Any) -> SegPredictor:
        return build_predictor(family, **options)

    build.__doc__ = f"``partonomy eval --model {family}``: see :func:`build_predictor`."
    return build
