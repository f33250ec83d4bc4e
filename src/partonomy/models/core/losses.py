"""Loss terms of the segmentation LMMs, kept outside the ``nn.Module``.

A family declares its terms once, as a dict ``name -> LossTerm(weight, compute)``
(:attr:`partonomy.models.core.family.Family.loss_terms`); the recipe computes
``total = sum(weight[name] * term(name))`` over that dict, logs every term by name, and a config
may override any weight (``loss.weights.seg: 4``); an unknown name is an error.

Shared terms (every family may use them):

* ``lm``: next-token cross-entropy, logits at ``t`` predict ``labels[t + 1]``; mean over the
  labelled tokens of the batch (HF's reduction); 0 when nothing is labelled.
* ``seg``: Dice (LISA form, ``scale`` 1000, eps 1e-6) or Focal-Tversky (alpha 0.7 on FN, beta 0.3
  on FP, gamma 0.75), per mask on sigmoid probabilities at the original image size, pixels equal to
  :data:`IGNORE_INDEX` (255) excluded; mean over every target of the batch.
* ``bce``: per-pixel BCE with logits, mean over the mask's non-ignored pixels; mean over targets.
* ``kl``: ``0.5 / sigma^2 * MSE`` between the frozen teacher's and the student's last hidden
  states on the span tokens (sigma 1); 0 without a teacher or spans.

PLUM adds ``bio`` (:mod:`partonomy.models.plum.losses`).

Every term is a 0-d float32 tensor. A zero term is still connected to the graph (``0 * x.sum()``),
so distributed training never sees a parameter without a gradient because a batch had no targets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from partonomy.data.sample import IGNORE_INDEX
from partonomy.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from partonomy.models.core.model import SegLMM, SegOutput
    from partonomy.models.core.processing import SegBatch

DICE_SCALE = 1000.0
DICE_SMOOTH = 1e-6
"""LISA's ``eps``. (A smoothing of 1 next to ``scale`` 1000 would swamp every mask under ~1000 px
and leave small parts with almost no gradient.)"""
TVERSKY_ALPHA, TVERSKY_BETA, TVERSKY_GAMMA = 0.7, 0.3, 0.75
TVERSKY_EPS = 1e-6


SegLoss = Literal["dice", "focal_tversky"]


@dataclass
class LossBreakdown:
    """The weighted total and each unweighted term (0-d float32 tensors).

    Attributes:
        total: ``sum(weights[name] * terms[name])``.
        terms: every term of the family, by name, unweighted.
        n_masks: targets whose masks were scored.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    n_masks: int = 0

    def __getattr__(self, name: str) -> torch.Tensor:
        """A term by attribute (``breakdown.seg``), for terms the family has."""
        terms = self.__dict__.get("terms", {})
        if name in terms:
            return terms[name]  # type: ignore[no-any-return]
        raise AttributeError(f"no loss term {name!r}; this breakdown has {', '.join(terms)}")

    def as_floats(self) -> dict[str, float]:
        """``total`` and every term as Python floats (for logging)."""
        return {"total": float(self.total.detach())} | {
            name: float(value.detach()) for name, value in self.terms.items()
        }


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Shifted next-token CE, ``logits`` ``(B, L, V)``, ``labels`` ``(B, L)`` (-100 = no loss)."""
    shift_labels = labels[:, 1:]
    keep = shift_labels != -100
    if not bool(keep.any()):
        return logits.sum().float() * 0.0
    # Only labelled rows go through the (V-wide) softmax: same mean, far less work when most
    # positions (image tokens, prompt, padding) carry no label.
    return F.cross_entropy(logits[:, :-1][keep].float(), shift_labels[keep])


def _valid(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(0/1 float target, 0/1 float validity) from a uint8 target with :data:`IGNORE_INDEX` pixels."""
    valid = (target != IGNORE_INDEX).float()
    return (target == 1).float() * valid, valid


def dice_loss(
    mask_logits: torch.Tensor,
    target: torch.Tensor,
    *,
    scale: float = DICE_SCALE,
    smooth: float = DICE_SMOOTH,
) -> torch.Tensor:
    """``1 - (2 sum(p t)/scale + smooth) / (sum(p)/scale + sum(t)/scale + smooth)`` on valid pixels.

    Args:
        mask_logits: ``(H, W)`` logits; ``p = sigmoid``.
        target: ``(H, W)`` uint8 (0/1, 255 ignored).
    """
    t, valid = _valid(target)
    p = torch.sigmoid(mask_logits.float()) * valid
    numerator = 2 * (p * t).sum() / scale + smooth
    denominator = p.sum() / scale + t.sum() / scale + smooth
    return 1 - numerator / denominator


def focal_tversky_loss(
    mask_logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = TVERSKY_ALPHA,
    beta: float = TVERSKY_BETA,
    gamma: float = TVERSKY_GAMMA,
    eps: float = TVERSKY_EPS,
) -> torch.Tensor:
    """``(1 - TI)^gamma``, ``TI = (TP + eps) / (TP + alpha FN + beta FP + eps)`` on valid pixels."""
    t, valid = _valid(target)
    p = torch.sigmoid(mask_logits.float()) * valid
    tp = (p * t).sum()
    fn = ((1 - p) * t).sum()
    fp = (p * (1 - t) * valid).sum()
    tversky = (tp + eps) / (tp + alpha * fn + beta * fp + eps)
    return (1 - tversky).clamp_min(0) ** gamma


def bce_loss(mask_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel BCE with logits, mean over valid pixels (0 if none is valid)."""
    t, valid = _valid(target)
    per_pixel = F.binary_cross_entropy_with_logits(mask_logits.float(), t, reduction="none")
    return (per_pixel * valid).sum() / valid.sum().clamp_min(1.0)


def kl_loss(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    spans: list[list[list[int]]],
    *,
    sigma: float = 1.0,
) -> torch.Tensor:
    """``0.5 / sigma^2 * mean((teacher - student)^2)`` over every span token of the batch."""
    rows = [r for r, conv in enumerate(spans) for span in conv for _ in span]
    cols = [k for conv in spans for span in conv for k in span]
    if not rows:
        return student_hidden.sum().float() * 0.0
    r = torch.tensor(rows, device=student_hidden.device)
    c = torch.tensor(cols, device=student_hidden.device)
    s = student_hidden[r, c].float()
    t = teacher_hidden[r, c].float().detach()
    return 0.5 / sigma**2 * F.mse_loss(s, t)


@dataclass
class LossInputs:
    """What a loss term may read.

    Attributes:
        output: the model output (``span_source="target"``: its masks align with the targets).
        batch: the collated batch.
        seg_loss: the ``seg`` term's form: ``dice`` (stage 1) or ``focal_tversky`` (stage 2).
        dice_scale: the Dice loss's pixel-sum divisor (1000 in the original, tuned for SAM's
            1024-pixel inputs; 1 gives the plain soft Dice that small images need).
        teacher_hidden: ``(B, L, d)`` frozen-teacher hidden states, or None.
    """

    output: SegOutput
    batch: SegBatch
    seg_loss: SegLoss = "dice"
    dice_scale: float = DICE_SCALE
    teacher_hidden: torch.Tensor | None = None
    _mask_terms: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    def anchor(self) -> torch.Tensor:
        """A connected float32 zero (``0 * hidden.sum()``)."""
        return self.output.hidden.sum().float() * 0.0

    def mask_terms(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-target ``(seg, bce)`` losses of the batch, computed once.

        Raises:
            ValueError: the output's masks do not line up with the batch's targets.
        """
        if self._mask_terms is None:
            seg_fn = (
                partial(dice_loss, scale=self.dice_scale)
                if self.seg_loss == "dice"
                else focal_tversky_loss
            )
            seg_terms, bce_terms = [], []
            pairs = zip(self.output.masks, self.batch.span_targets, strict=True)
            for row, (masks, targets) in enumerate(pairs):
                if len(masks) != len(targets):
                    raise ValueError(
                        f"conversation {row}: {len(masks)} predicted masks but {len(targets)} "
                        "target masks (compute the loss on span_source='target' outputs)"
                    )
                for logit, target in zip(masks, targets):
                    target = target.to(logit.device)
                    if logit.shape != target.shape:
                        raise ValueError(
                            f"conversation {row}: mask {tuple(logit.shape)} vs target "
                            f"{tuple(target.shape)}"
                        )
                    seg_terms.append(seg_fn(logit, target))
                    bce_terms.append(bce_loss(logit, target))
            self._mask_terms = (seg_terms, bce_terms)
        return self._mask_terms


@dataclass(frozen=True)
class LossTerm:
    """One named term of a family's loss.

    Attributes:
        weight: the family's default weight (the original recipe's).
        compute: the unweighted term from :class:`LossInputs`.
        needs_teacher: the recipe must pass ``teacher_hidden`` when the weight is > 0.
    """

    weight: float
    compute: Callable[[LossInputs], torch.Tensor]
    needs_teacher: bool = False


def lm_term(inputs: LossInputs) -> torch.Tensor:
    positions = inputs.output.logit_positions
    if positions is None:
        return lm_loss(inputs.output.logits, inputs.batch.labels)
    # Rows of the positions that predict a labelled token only (forward(lm_rows="labelled")):
    # the same mean as lm_loss over the full logits.
    targets = inputs.batch.labels[:, 1:][positions[:, :-1]]
    if targets.numel() == 0:
        return inputs.output.logits.sum().float() * 0.0
    return F.cross_entropy(inputs.output.logits.float(), targets)


def seg_term(inputs: LossInputs) -> torch.Tensor:
    seg, _ = inputs.mask_terms()
    return torch.stack(seg).mean() if seg else inputs.anchor()


def bce_term(inputs: LossInputs) -> torch.Tensor:
    _, bce = inputs.mask_terms()
    return torch.stack(bce).mean() if bce else inputs.anchor()


def kl_term(inputs: LossInputs) -> torch.Tensor:
    if inputs.teacher_hidden is None:
        return inputs.anchor()
    return kl_loss(inputs.output.hidden, inputs.teacher_hidden, inputs.batch.spans)


def resolve_weights(
    terms: Mapping[str, LossTerm], overrides: Mapping[str, float] | None = None
) -> dict[str, float]:
    """The family's default weights with ``overrides`` applied.

    Raises:
        ConfigError: an override names a term the family does not have, or is negative.
    """
    import difflib

    weights = {name: term.weight for name, term in terms.items()}
    for name, value in (overrides or {}).items():
        if name not in terms:
            close = difflib.get_close_matches(name, terms, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"loss.weights: unknown term {name!r}.{hint} This family's terms: "
                f"{', '.join(terms)}"
            )
        if value < 0:
            raise ConfigError(f"loss.weights.{name} must be >= 0, got {value}")
        weights[name] = float(value)
    return weights


def compute_losses(
    terms: Mapping[str, LossTerm],
    weights: Mapping[str, float],
    output: SegOutput,
    batch: SegBatch,
    *,
    seg_loss: SegLoss = "dice",
    dice_scale: float = DICE_SCALE,
    teacher_hidden: torch.Tensor | None = None,
) -> LossBreakdown:
    """Every term of ``terms`` and the weighted total.

    Args:
        terms: the family's terms (:attr:`Family.loss_terms`).
        weights: a weight per term (:func:`resolve_weights`).
        output: from ``model(batch, span_source="target")``.
        batch: the collated batch.
        seg_loss, dice_scale, teacher_hidden: see :class:`LossInputs`.

    Raises:
        ValueError: the output's masks do not line up with the batch's targets.
    """
    inputs = LossInputs(output, batch, seg_loss, dice_scale, teacher_hidden)
    values = {name: term.compute(inputs) for name, term in terms.items()}
    total = inputs.anchor()
    for name, value in values.items():
        total = total + weights[name] * value
    seg, _ = inputs.mask_terms()
    return LossBreakdown(total=total, terms=values, n_masks=len(seg))


SHARED_TERMS: dict[str, Callable[[LossInputs], torch.Tensor]] = {
    "lm": lm_term,
    "seg": seg_term,
    "bce": bce_term,
    "kl": kl_term,
}
"""The shared terms' functions, for families to compose their ``loss_terms`` from."""


@contextmanager
def adapters_disabled(module: torch.nn.Module) -> Iterator[None]:
    """Temporarily switch off PEFT adapters: ``disable_adapter()`` of a ``PeftModel``, else every
    injected tuner layer's ``enable_adapters(False)``; a module without adapters is left as is."""
    disable = getattr(module, "disable_adapter", None)
    if callable(disable):
        with disable():
            yield
        return
    layers: list[Any] = [
        m
        for m in module.modules()
        if hasattr(m, "enable_adapters") and hasattr(m, "active_adapters")
    ]
    for m in layers:
        m.enable_adapters(False)
    try:
        yield
    finally:
        for m in layers:
            m.enable_adapters(True)


def teacher_hidden_states(model: SegLMM, batch: SegBatch) -> torch.Tensor:
    """Last hidden states ``(B, L, d)`` of the same LLaVA with its LoRA adapters off, without grad.

    No second copy of the model is held: the frozen base weights are the teacher.
    """
    with torch.no_grad(), adapters_disabled(model.llava):
        hidden, _ = model.language_model(
            batch.input_ids, batch.attention_mask, batch.pixel_values, batch.image_index, batch
        )
    return hidden
