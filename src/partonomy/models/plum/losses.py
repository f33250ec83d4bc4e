"""PLUM's training losses, kept outside the ``nn.Module``.

``total = lm * L_lm + bio * L_bio + seg * L_seg + bce * L_bce + kl * L_kl`` with default weights
1 / 2 / 8 / 2 / 0 (the launched runs: the KL term needs a teacher and was off).

* ``L_lm``: next-token cross-entropy, logits at ``t`` predict ``labels[t + 1]``; mean over the
  labelled tokens of the batch (HF's reduction); 0 when nothing is labelled.
* ``L_bio``: cross-entropy over (O, B, I) with class weights (0.1, 1, 1), on positions whose BIO
  label is not -100 (text of the last answer), in conversations that hold at least one B or I (VQA
  conversations are skipped). Reduction: torch's weighted mean, ``sum_t w[y_t] * ce_t / sum_t w[y_t]``
  over all counted tokens of the batch; 0 when no conversation counts.
* ``L_seg``: Dice (LISA form, ``scale`` 1000, eps 1e-6) or Focal-Tversky (alpha 0.7 on FN, beta
  0.3 on FP, gamma 0.75), per mask on sigmoid probabilities at the original image size, pixels equal
  to :data:`IGNORE_INDEX` (255) excluded; mean over every span of the batch.
* ``L_bce``: per-pixel BCE with logits, mean over the mask's non-ignored pixels; mean over spans.
* ``L_kl``: ``0.5 / sigma^2 * MSE`` between the frozen teacher's and the student's last hidden
  states on the span tokens (sigma 1); 0 without a teacher or spans.

Every term is a 0-d float32 tensor. A zero term is still connected to the graph (``0 * x.sum()``),
so distributed training never sees a parameter without a gradient because a batch had no spans.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from partonomy.data.sample import IGNORE_INDEX
from partonomy.models.plum.bio import BIO_IGNORE, B, I

if TYPE_CHECKING:
    from collections.abc import Iterator

    from partonomy.models.plum.modeling import PlumModel, PlumOutput
    from partonomy.models.plum.processing import PlumBatch

BIO_CLASS_WEIGHTS = (0.1, 1.0, 1.0)
"""Cross-entropy class weights of (O, B, I)."""
DICE_SCALE = 1000.0
DICE_SMOOTH = 1e-6
"""LISA's ``eps``. (A smoothing of 1 next to ``scale`` 1000 would swamp every mask under ~1000 px
and leave small parts with almost no gradient.)"""
TVERSKY_ALPHA, TVERSKY_BETA, TVERSKY_GAMMA = 0.7, 0.3, 0.75
TVERSKY_EPS = 1e-6


@dataclass
class LossWeights:
    """Weights of the loss terms (the launched runs' values)."""

    lm: float = 1.0
    bio: float = 2.0
    seg: float = 8.0
    bce: float = 2.0
    kl: float = 0.0


@dataclass
class LossBreakdown:
    """The weighted total and each unweighted term (0-d float32 tensors); ``n_masks`` spans were scored."""

    total: torch.Tensor
    lm: torch.Tensor
    bio: torch.Tensor
    seg: torch.Tensor
    bce: torch.Tensor
    kl: torch.Tensor
    n_masks: int = 0

    def as_floats(self) -> dict[str, float]:
        """Every term as a Python float (for logging)."""
        names = ("total", "lm", "bio", "seg", "bce", "kl")
        return {n: float(getattr(self, n).detach()) for n in names}


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Shifted next-token CE, ``logits`` ``(B, L, V)``, ``labels`` ``(B, L)`` (-100 = no loss)."""
    shift_labels = labels[:, 1:]
    keep = shift_labels != -100
    if not bool(keep.any()):
        return logits.sum().float() * 0.0
    # Only labelled rows go through the (V-wide) softmax: same mean, far less work when most
    # positions (image tokens, prompt, padding) carry no label.
    return F.cross_entropy(logits[:, :-1][keep].float(), shift_labels[keep])


def bio_loss(bio_logits: torch.Tensor, bio_labels: torch.Tensor) -> torch.Tensor:
    """Class-weighted BIO CE over conversations with at least one B/I (module docstring)."""
    counted = ((bio_labels == B) | (bio_labels == I)).any(dim=1)  # (B,)
    if not bool(counted.any()):
        return bio_logits.sum().float() * 0.0
    logits = bio_logits[counted].float()  # (b, L, 3)
    labels = bio_labels[counted]
    weight = torch.tensor(BIO_CLASS_WEIGHTS, device=logits.device)
    return F.cross_entropy(
        logits.reshape(-1, 3), labels.reshape(-1), weight=weight, ignore_index=BIO_IGNORE
    )


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


def plum_loss(
    output: PlumOutput,
    batch: PlumBatch,
    weights: LossWeights | None = None,
    *,
    seg_loss: Literal["dice", "focal_tversky"] = "dice",
    teacher_hidden: torch.Tensor | None = None,
    dice_scale: float = DICE_SCALE,
) -> LossBreakdown:
    """All terms and the weighted total (module docstring).

    Args:
        output: from ``PlumModel.forward(batch, span_source="target")`` (its masks align with the
            batch's ``span_targets``).
        batch: the collated batch.
        weights: term weights (default :class:`LossWeights`).
        seg_loss: ``"dice"`` (stage 1) or ``"focal_tversky"`` (stage 2).
        teacher_hidden: ``(B, L, d)`` frozen-teacher hidden states (:func:`teacher_hidden_states`).
        dice_scale: the Dice loss's pixel-sum divisor (1000 in the original, tuned for SAM's
            1024-pixel inputs; 1 gives the plain soft Dice that small images need).

    Raises:
        ValueError: the output's masks do not line up with the batch's targets.
    """
    weights = weights or LossWeights()
    lm = lm_loss(output.logits, batch.labels)
    bio = bio_loss(output.bio_logits, batch.bio_labels)
    seg_fn = partial(dice_loss, scale=dice_scale) if seg_loss == "dice" else focal_tversky_loss
    seg_terms, bce_terms = [], []
    for row, (masks, targets) in enumerate(zip(output.masks, batch.span_targets, strict=True)):
        if len(masks) != len(targets):
            raise ValueError(
                f"conversation {row}: {len(masks)} predicted masks but {len(targets)} target masks "
                "(compute the loss on span_source='target' outputs)"
            )
        for logit, target in zip(masks, targets):
            target = target.to(logit.device)
            if logit.shape != target.shape:
                raise ValueError(
                    f"conversation {row}: mask {tuple(logit.shape)} vs target {tuple(target.shape)}"
                )
            seg_terms.append(seg_fn(logit, target))
            bce_terms.append(bce_loss(logit, target))
    anchor = output.hidden.sum().float() * 0.0
    seg = torch.stack(seg_terms).mean() if seg_terms else anchor
    bce = torch.stack(bce_terms).mean() if bce_terms else anchor
    kl = anchor if teacher_hidden is None else kl_loss(output.hidden, teacher_hidden, batch.spans)
    total = (
        weights.lm * lm
        + weights.bio * bio
        + weights.seg * seg
        + weights.bce * bce
        + weights.kl * kl
    )
    return LossBreakdown(
        total=total, lm=lm, bio=bio, seg=seg, bce=bce, kl=kl, n_masks=len(seg_terms)
    )


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


def teacher_hidden_states(model: PlumModel, batch: PlumBatch) -> torch.Tensor:
    """Last hidden states ``(B, L, d)`` of the same LLaVA with its LoRA adapters off, without grad.

    No second copy of the model is held: the frozen base weights are the teacher.
    """
    with torch.no_grad(), adapters_disabled(model.llava):
        hidden, _ = model.language_model(
            batch.input_ids, batch.attention_mask, batch.pixel_values, batch.image_index
        )
    return hidden
