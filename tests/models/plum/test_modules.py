"""PLUM's own modules in isolation: span extractor, span query, FiLM and the feedback pooler."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import SamConfig, SamModel

from partonomy.models.core.feedback import FiLM, MaskFeedbackPooler
from partonomy.models.plum.span_extractor import SpanExtractor
from partonomy.models.plum.span_query import SpanQuery


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("order", ["encoder_then_mlp", "mlp_then_encoder"])
def test_span_extractor_shapes_and_padding_invariance(order):
    tagger = SpanExtractor(16, heads=4, ff=32, dropout=0.0, order=order).eval()
    hidden = torch.randn(2, 5, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    logits = tagger(hidden, mask)
    assert logits.shape == (2, 5, 3)
    # Padding is never attended: changing padded states leaves the real positions unchanged.
    changed = hidden.clone()
    changed[0, 3:] = 100.0
    again = tagger(changed, mask)
    torch.testing.assert_close(again[0, :3], logits[0, :3])
    torch.testing.assert_close(again[1], logits[1])


def test_span_extractor_orders_differ_in_structure():
    code = SpanExtractor(16, heads=4, ff=32, order="encoder_then_mlp")
    paper = SpanExtractor(16, heads=4, ff=32, order="mlp_then_encoder")
    assert isinstance(code.pre, nn.Identity) and isinstance(code.head, nn.Sequential)
    assert isinstance(paper.pre, nn.Sequential) and isinstance(paper.head, nn.Linear)
    assert code.head[-1].out_features == paper.head.out_features == 3
    with pytest.raises(ValueError, match="divisible"):
        SpanExtractor(10, heads=4)


def test_span_query_is_the_mean_of_projected_tokens():
    query = SpanQuery(8, 6)
    hidden = torch.randn(7, 8)
    spans = [[1, 2, 3], [5], [2, 6]]  # token 2 is shared on purpose: projected once, used twice
    pooled = query(hidden, spans)
    assert pooled.shape == (3, 6)
    first, second, third = (query.project(hidden[s]).mean(0) for s in spans)
    torch.testing.assert_close(pooled[0], first)
    torch.testing.assert_close(pooled[1], second)
    torch.testing.assert_close(pooled[2], third)
    # project() is Linear -> ReLU -> Linear, token-wise.
    lin1, lin2 = query.mlp[0], query.mlp[2]
    torch.testing.assert_close(query.project(hidden[5]), lin2(torch.relu(lin1(hidden[5]))))
    assert query(hidden, []).shape == (0, 6)


def test_film_by_hand():
    film = FiLM(2, 1)
    with torch.no_grad():
        film.proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # scale = c0, shift = c1
        film.proj.bias.zero_()
    x = torch.full((1, 1, 2, 2), 3.0)
    out = film(x, torch.tensor([[0.5, -1.0]]))
    # 3 * (0.5 + 1) - 1 = 3.5
    torch.testing.assert_close(out, torch.full((1, 1, 2, 2), 3.5))


@pytest.fixture(scope="module")
def tiny_sam():
    torch.manual_seed(0)
    cfg = SamConfig(
        vision_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 64,
                       "patch_size": 8, "output_channels": 16, "num_pos_feats": 8, "window_size": 2,
                       "global_attn_indexes": [0], "mlp_dim": 64},
        prompt_encoder_config={"hidden_size": 16, "image_size": 64, "patch_size": 8},
        mask_decoder_config={"hidden_size": 16, "mlp_dim": 32, "num_attention_heads": 2, "iou_head_hidden_dim": 16},
    )  # fmt: skip
    return SamModel(cfg)


def test_feedback_encode_uses_sam_mask_convs_with_film(tiny_sam):
    pooler = MaskFeedbackPooler(16, (4, 16), (8, 8), heads=4)
    embed = tiny_sam.prompt_encoder.mask_embed
    masks = torch.randn(3, 1, 32, 32)
    queries = torch.randn(3, 16)
    pe = tiny_sam.get_image_wide_positional_embeddings()
    # With zero FiLM projections (scale = shift = 0) the encoding is SAM's own mask embedding + PE.
    with torch.no_grad():
        for film in (pooler.film1, pooler.film2):
            film.proj.weight.zero_()
            film.proj.bias.zero_()
    torch.testing.assert_close(pooler.encode(embed, masks, queries, pe), embed(masks) + pe)
    # The FiLM conditioning is per history item: each mask is modulated by its own query.
    torch.manual_seed(1)
    pooler = MaskFeedbackPooler(16, (4, 16), (8, 8), heads=4)
    both = pooler.encode(embed, masks[:2], queries[:2], pe)
    alone = pooler.encode(embed, masks[1:2], queries[1:2], pe)
    torch.testing.assert_close(both[1:2], alone)


def test_feedback_pooling_over_one_and_many(tiny_sam):
    pooler = MaskFeedbackPooler(16, (4, 16), (8, 8), heads=4)
    embed = tiny_sam.prompt_encoder.mask_embed
    pe = tiny_sam.get_image_wide_positional_embeddings()
    masks, queries = torch.randn(2, 1, 32, 32), torch.randn(2, 16)
    dense = pooler(embed, masks, queries, pe)
    assert dense.shape == (1, 16, 8, 8)
    # One key: softmax is 1, so the output at every position is out_proj(v_proj(feature)).
    single = pooler(embed, masks[:1], queries[:1], pe)
    feat = pooler.encode(embed, masks[:1], queries[:1], pe)[0]  # (D, h, w)
    d = 16
    w_v, b_v = pooler.attn.in_proj_weight[2 * d :], pooler.attn.in_proj_bias[2 * d :]
    tokens = feat.flatten(1).T  # (h*w, D)
    expected = pooler.attn.out_proj(tokens @ w_v.T + b_v).T.reshape(1, d, 8, 8)
    torch.testing.assert_close(single, expected, rtol=1e-4, atol=1e-5)
    # Gradients reach the history (it is not detached).
    masks.requires_grad_(True)
    pooler(embed, masks, queries, pe).sum().backward()
    assert masks.grad is not None and masks.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="grid"):
        pooler(embed, torch.randn(1, 1, 16, 16), queries[:1], pe[..., :4, :4])


def test_feedback_pooling_batched_over_answers(tiny_sam):
    pooler = MaskFeedbackPooler(16, (4, 16), (8, 8), heads=4)
    embed = tiny_sam.prompt_encoder.mask_embed
    pe = tiny_sam.get_image_wide_positional_embeddings()
    masks, queries = torch.randn(3, 2, 1, 32, 32), torch.randn(3, 2, 16)
    batched = pooler(embed, masks, queries, pe)
    assert batched.shape == (3, 16, 8, 8)
    for r in range(3):
        torch.testing.assert_close(
            batched[r : r + 1], pooler(embed, masks[r], queries[r], pe), rtol=1e-4, atol=1e-5
        )
