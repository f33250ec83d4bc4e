"""Every PLUM loss term against a hand-computed value, and the teacher hidden states."""

from __future__ import annotations

import math

import pytest
import torch

from partonomy.models.core.losses import (
    bce_loss,
    dice_loss,
    focal_tversky_loss,
    kl_loss,
    lm_loss,
)
from partonomy.models.core.model import SegOutput
from partonomy.models.core.processing import SegBatch
from partonomy.models.plum.losses import bio_loss, plum_loss

IGN = 255


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_lm_loss_shifts_by_one():
    # Row of 3 tokens, vocab 2. Logits at t predict labels[t + 1]; labels[0] is never predicted.
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]]])
    labels = torch.tensor([[-100, 1, 0]])
    # t=0 predicts 1 with p=1/2; t=1 predicts 0 with p=3/4; t=2 predicts nothing.
    expected = (math.log(2.0) + math.log(4.0 / 3.0)) / 2
    assert lm_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_lm_loss_without_labels_is_a_connected_zero():
    logits = torch.zeros(1, 3, 2, requires_grad=True)
    loss = lm_loss(logits, torch.full((1, 3), -100))
    assert loss.item() == 0.0 and loss.requires_grad


def test_bio_loss_class_weights_and_skipped_rows():
    # Row 0 has a span (counts); row 1 is all O (a VQA answer: skipped); -100 positions ignored.
    logits = torch.zeros(2, 4, 3)
    logits[0, 0] = torch.tensor([math.log(2.0), 0.0, 0.0])  # p(O) = 2/4
    labels = torch.tensor([[0, 1, 2, -100], [0, 0, 0, 0]])
    ce_o, ce_b, ce_i = -math.log(0.5), -math.log(1 / 3), -math.log(1 / 3)
    expected = (0.1 * ce_o + 1.0 * ce_b + 1.0 * ce_i) / (0.1 + 1.0 + 1.0)
    assert bio_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_bio_loss_without_spans_is_zero():
    logits = torch.randn(2, 4, 3, requires_grad=True)
    loss = bio_loss(logits, torch.tensor([[0, 0, -100, -100], [0, 0, 0, 0]]))
    assert loss.item() == 0.0 and loss.requires_grad


# Logit 0 everywhere: p = 1/2 on each pixel. Target: two foreground, one background, one ignored.
ZERO = torch.zeros(2, 2)
TARGET = torch.tensor([[1, 0], [1, IGN]], dtype=torch.uint8)


def test_dice_lisa_form_ignores_255():
    # sum(p t) = 1, sum(p) = 1.5 (3 valid pixels), sum(t) = 2.
    expected = 1 - (2 * 1.0 / 1000 + 1e-6) / (1.5 / 1000 + 2.0 / 1000 + 1e-6)
    assert dice_loss(ZERO, TARGET).item() == pytest.approx(expected, rel=1e-5)  # float32 math


def test_dice_with_a_confident_perfect_mask_is_near_zero():
    logits = torch.tensor([[20.0, -20.0], [20.0, 0.0]])
    assert dice_loss(logits, TARGET).item() == pytest.approx(0.0, abs=1e-6)


def test_focal_tversky():
    # TP = 1, FN = (1 - 0.5) * 2 = 1, FP = 0.5 * 1 = 0.5 -> TI = 1 / (1 + 0.7 + 0.15).
    ti = (1.0 + 1e-6) / (1.0 + 0.7 * 1.0 + 0.3 * 0.5 + 1e-6)
    assert focal_tversky_loss(ZERO, TARGET).item() == pytest.approx((1 - ti) ** 0.75, rel=1e-5)


def test_bce_mean_over_valid_pixels():
    logits = torch.tensor([[2.0, 0.0], [-1.0, 5.0]])
    target = torch.tensor([[1, 0], [0, IGN]], dtype=torch.uint8)
    # BCE(x, 1) = softplus(-x), BCE(x, 0) = softplus(x); the 255 pixel is excluded.
    expected = (softplus(-2.0) + softplus(0.0) + softplus(-1.0)) / 3
    assert bce_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_kl_is_half_mse_over_span_tokens():
    student = torch.zeros(2, 4, 2)
    teacher = torch.zeros(2, 4, 2)
    teacher[0, 1] = torch.tensor([1.0, 1.0])  # span token: counts
    teacher[0, 3] = torch.tensor([9.0, 9.0])  # not a span token: ignored
    teacher[1, 2] = torch.tensor([2.0, 0.0])  # span token
    spans = [[[1, 2]], [[2]]]
    # Span tokens (0,1), (0,2), (1,2): squared errors 1+1, 0, 4 over 3 tokens x 2 dims.
    assert kl_loss(student, teacher, spans).item() == pytest.approx(0.5 * 6.0 / 6.0)


def _batch_and_output(
    mask_logits, targets, *, v: int = 2, length: int = 3
) -> tuple[SegOutput, SegBatch]:
    b = len(targets)
    labels = torch.full((b, length), -100)
    labels[:, 1] = 1
    bio = torch.full((b, length), -100)
    bio[:, 1] = 0
    out = SegOutput(
        logits=torch.zeros(b, length, v),
        hidden=torch.zeros(b, length, 4),
        tag_logits=torch.zeros(b, length, 3),
        text_positions=torch.ones(b, length, dtype=torch.bool),
        masks=mask_logits,
    )
    batch = SegBatch(
        input_ids=torch.zeros(b, length, dtype=torch.long),
        attention_mask=torch.ones(b, length, dtype=torch.long),
        labels=labels,
        tag_labels=bio,
        pixel_values=torch.zeros(1, 3, 2, 2),
        sam_pixel_values=torch.zeros(1, 3, 2, 2),
        image_index=torch.zeros(b, dtype=torch.long),
        original_sizes=[(2, 2)] * b,
        sam_input_sizes=[(2, 2)] * b,
        spans=[[[1]] * len(t) for t in targets],
        span_parts=[["p"] * len(t) for t in targets],
        span_targets=targets,
    )
    return out, batch


def test_plum_loss_weights_and_mask_average_over_all_spans():
    strong = torch.tensor([[3.0, -3.0], [3.0, 0.0]])
    masks = [[ZERO], [strong, ZERO]]
    targets = [[TARGET], [TARGET, TARGET]]
    out, batch = _batch_and_output(masks, targets)
    weights = {"lm": 1.0, "bio": 2.0, "seg": 8.0, "bce": 2.0, "kl": 0.0}
    loss = plum_loss(out, batch, weights)
    # Masks are averaged over the 3 spans of the batch, not per conversation.
    seg = (2 * dice_loss(ZERO, TARGET) + dice_loss(strong, TARGET)) / 3
    bce = (2 * bce_loss(ZERO, TARGET) + bce_loss(strong, TARGET)) / 3
    assert loss.seg.item() == pytest.approx(seg.item(), rel=1e-6)
    assert loss.bce.item() == pytest.approx(bce.item(), rel=1e-6)
    assert loss.lm.item() == pytest.approx(math.log(2.0), rel=1e-6)  # uniform over 2 tokens
    assert loss.bio.item() == 0.0  # no B/I anywhere: every row skipped
    assert loss.kl.item() == 0.0
    total = 1.0 * math.log(2.0) + 8.0 * seg.item() + 2.0 * bce.item()
    assert loss.total.item() == pytest.approx(total, rel=1e-6)
    assert loss.n_masks == 3
    focal = plum_loss(out, batch, weights, seg_loss="focal_tversky")
    ft = (2 * focal_tversky_loss(ZERO, TARGET) + focal_tversky_loss(strong, TARGET)) / 3
    assert focal.seg.item() == pytest.approx(ft.item(), rel=1e-6)


def test_plum_loss_without_spans_and_with_teacher():
    out, batch = _batch_and_output([[], []], [[], []])
    out.hidden.requires_grad_(True)
    loss = plum_loss(out, batch)
    assert loss.seg.item() == 0.0 and loss.bce.item() == 0.0 and loss.n_masks == 0
    assert loss.seg.requires_grad  # still connected, for distributed training
    teacher = torch.ones_like(out.hidden)
    out2, batch2 = _batch_and_output([[ZERO]], [[TARGET]])
    with_kl = plum_loss(out2, batch2, {"kl": 0.1}, teacher_hidden=teacher[:1])
    assert with_kl.kl.item() == pytest.approx(0.5)  # (0 - 1)^2 on every dim of the span token
    assert with_kl.total.item() == pytest.approx(
        with_kl.lm.item() + 8 * with_kl.seg.item() + 2 * with_kl.bce.item() + 0.1 * 0.5, rel=1e-6
    )


def test_plum_loss_rejects_misaligned_masks():
    out, batch = _batch_and_output([[ZERO, ZERO]], [[TARGET]])
    with pytest.raises(ValueError, match="2 predicted masks but 1 target"):
        plum_loss(out, batch)
