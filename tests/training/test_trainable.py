"""The trainable-parameter set equals the spec exactly (models/core/trainable.py, PLUM's spec)."""

from __future__ import annotations

import pytest
import torch

from partonomy.errors import ConfigError
from partonomy.models.core.trainable import (
    EMBEDDING_PATH,
    LoraSpec,
    fold_new_rows,
    merge_lora,
    set_trainable,
)
from partonomy.models.plum.builders import build_plum, tiny_config
from partonomy.models.plum.trainable import PlumTrainableSpec as TrainableSpec
from partonomy.training.checkpoint import processor_new_token_ids

GROUPS = TrainableSpec.GROUPS

TINY = {
    "llava": {
        "text_hidden": 32,
        "text_layers": 2,
        "text_heads": 2,
        "text_intermediate": 64,
        "vision_hidden": 32,
        "vision_layers": 1,
        "vision_heads": 2,
        "image_size": 32,
    },
    "sam": {"image_size": 64, "vision_hidden": 32, "vision_layers": 1, "vision_heads": 2},
    "bidir_heads": 2,
    "bidir_ff": 64,
    "feedback_heads": 2,
}


def _fresh():
    model, processor = build_plum(tiny_config(**TINY))
    return model, processor_new_token_ids(processor)


def _expected(model: torch.nn.Module, spec: TrainableSpec) -> set[str]:
    """The trainable names computed independently from the spec, by module path."""
    want: list[str] = []
    for group, prefixes in GROUPS.items():
        on = spec.language_model == "full" if group == "language_model" else getattr(spec, group)
        if on:
            want.extend(prefixes)
    embed_on = spec.language_model == "full" or spec.embeddings == "full"
    delta_on = spec.language_model != "full" and spec.embeddings == "new_rows"
    names = set()
    for name, _ in model.named_parameters():
        if (
            name.startswith("mask_head.sam.shared_image_embedding.")
            and not spec.sam_positional_matrix
        ):
            continue
        in_group = any(name.startswith(p + ".") for p in want)
        is_embedding = embed_on and name == EMBEDDING_PATH + ".weight"
        is_embedding |= delta_on and name == EMBEDDING_PATH + ".new_rows.delta"
        is_adapter = spec.language_model == "lora" and (".lora_A." in name or ".lora_B." in name)
        if in_group or is_embedding or is_adapter:
            names.add(name)
    return names


def test_default_spec_trains_exactly_the_paper_set() -> None:
    model, new_ids = _fresh()
    spec = TrainableSpec()
    names = set_trainable(model, spec, new_token_ids=new_ids)
    assert names == sorted(names)
    actual = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(names) == actual == _expected(model, spec)
    # LoRA adapters: q_proj and v_proj of every LM layer, A and B, nowhere else.
    lora = sorted(n for n in names if ".lora_" in n)
    layers = model.llava.config.text_config.num_hidden_layers
    assert len(lora) == layers * 2 * 2
    assert all(n.startswith("llava.model.language_model.layers.") for n in lora)
    assert {n.split(".")[-4] for n in lora} == {"q_proj", "v_proj"}
    # Frozen: vision tower, projector, SAM image encoder, LM base weights, positional matrix.
    for frozen in (
        "llava.model.vision_tower.",
        "llava.model.multi_modal_projector.",
        "sam.vision_encoder.",
        "sam.shared_image_embedding.",
    ):
        assert not any(n.startswith(frozen) for n in names), frozen
    lm_names = [n for n in names if n.startswith("llava.model.language_model.")]
    assert set(lm_names) - set(lora) == {EMBEDDING_PATH + ".new_rows.delta"}
    # Trained heads.
    for trained in ("llava.lm_head.weight", EMBEDDING_PATH + ".new_rows.delta"):
        assert trained in names
    for prefix in (
        "mask_head.sam.prompt_encoder.",
        "mask_head.sam.mask_decoder.",
        "prompt_source.span_extractor.",
        "prompt_source.span_query.",
        "feedback.",
    ):
        assert any(n.startswith(prefix) for n in names), prefix


@pytest.mark.parametrize(
    "spec",
    [
        TrainableSpec(
            language_model="full", vision_tower=True, mm_projector=True, sam_image_encoder=True
        ),
        TrainableSpec(
            language_model="frozen",
            embeddings="frozen",
            lm_head=False,
            sam_prompt_encoder=False,
            feedback_pooler=False,
        ),
        TrainableSpec(lora=LoraSpec(r=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])),
    ],
)
def test_other_specs_match_exactly(spec: TrainableSpec) -> None:
    model, new_ids = _fresh()
    names = set_trainable(model, spec, new_token_ids=new_ids)
    assert set(names) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(names) == _expected(model, spec)


def test_new_rows_train_through_a_small_delta_only_added_rows_change() -> None:
    model, new_ids = _fresh()
    names = set_trainable(model, TrainableSpec(), new_token_ids=new_ids)
    embedding = model.get_submodule(EMBEDDING_PATH)
    # The gradient (and the data-parallel traffic) is n_new x D, not vocab x D.
    assert EMBEDDING_PATH + ".weight" not in names
    assert not embedding.weight.requires_grad
    delta = embedding.new_rows.delta
    assert delta.shape == (len(new_ids), embedding.weight.shape[1])
    before = embedding.weight.detach().clone()
    opt = torch.optim.AdamW([delta], lr=0.1, weight_decay=0.0)
    ids = torch.tensor([[1, 5, 9, new_ids[0]]])
    for _ in range(2):
        (embedding(ids) ** 2).sum().backward()
        opt.step()
        opt.zero_grad()
    out = embedding(ids).detach()
    torch.testing.assert_close(out[0, :3], before[[1, 5, 9]], rtol=0, atol=0)  # untouched rows
    assert not torch.equal(out[0, 3], before[new_ids[0]])  # the added token's row trained
    # Folding writes the effective rows into the weight: same embeddings, plain module.
    assert fold_new_rows(model)
    assert not hasattr(embedding, "new_rows")
    torch.testing.assert_close(embedding(ids), out, rtol=0, atol=0)
    changed = (embedding.weight.detach() != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == new_ids


def test_set_trainable_is_idempotent_and_needs_token_ids() -> None:
    model, new_ids = _fresh()
    first = set_trainable(model, TrainableSpec(), new_token_ids=new_ids)
    second = set_trainable(model, TrainableSpec(), new_token_ids=new_ids)
    assert first == second  # LoRA not injected twice
    with pytest.raises(ConfigError, match="new_token_ids"):
        set_trainable(model, TrainableSpec())


def test_merge_lora_keeps_outputs() -> None:
    model, new_ids = _fresh()
    set_trainable(model, TrainableSpec(), new_token_ids=new_ids)
    lm = model.llava.model.language_model
    with torch.no_grad():
        for name, param in lm.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)  # B starts at zero; make the adapters do something
    model.eval()
    ids = torch.tensor([[1, 20, 30, 40]])
    with torch.no_grad():
        before = lm(input_ids=ids).last_hidden_state
        assert merge_lora(model) == 2 * model.llava.config.text_config.num_hidden_layers
        after = lm(input_ids=ids).last_hidden_state
    torch.testing.assert_close(before, after, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("train_encoder", [True, False])
def test_conv_sam_encoder_follows_the_sam_image_encoder_flag(train_encoder: bool) -> None:
    model, processor = build_plum(
        tiny_config(**{**TINY, "sam": {**TINY["sam"], "encoder": "conv"}})
    )
    spec = TrainableSpec(sam_image_encoder=train_encoder)
    names = set_trainable(model, spec, new_token_ids=processor_new_token_ids(processor))
    conv = {
        n
        for n, _ in model.named_parameters()
        if n.startswith("mask_head.sam.vision_encoder.layers.")
    }
    assert conv
    assert (conv <= set(names)) if train_encoder else not (conv & set(names))
    assert set(names) == _expected(model, spec)
