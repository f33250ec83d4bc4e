"""Current backbones at full size (issue 14's GPU check): one PLUM training step on Qwen2.5-VL-7B +
SAM 2.1 Hiera-L, and one ``vlm_sam3`` evaluation batch (the same 7B VLM + SAM 3), random weights.

``--shape 7b`` (one GPU, bf16): the HF models are built at their published shapes from configs
written here (Qwen2.5-VL-7B-Instruct's ``config.json``: LM 3584 wide, 28 layers, 28 / 4 heads,
vocabulary 152,064; vision tower 32 x 1280 with window attention; SAM 2.1 Hiera-L: stages
2 / 6 / 36 / 4 at 144-1152 wide, 1024 px; SAM 3: transformers' ``Sam3Config()`` defaults, the
released model's shape), with random weights, directly on the device. The tokenizer is the tiny
offline byte-level BPE with Qwen's special tokens and chat template
(:func:`~partonomy.models.backbones.vlm_tokenizers.tiny_vlm_tokenizer`): the text is tokenised
into more, shorter pieces than by Qwen's own 151k vocabulary, and the LM head is the full 152k.

1. ``vlm_sam3`` (:class:`~partonomy.models.zeroshot.vlm_sam3.VlmSam3Model`): ``--batch``
   questions of the test fixture (5 choices each, shared-prefix scoring, conversation mode) on
   random 480 x 640 images (Qwen's default pixel budget: 391 image tokens each), then SAM 3 on
   each question's correct parts ("<part> of <object>"). One warm-up batch, then one timed.
2. PLUM (:func:`~partonomy.models.plum.builders.assemble_plum` on the same VLM, the 7B heads),
   the stage-1 trainable set (peft LoRA r 8 on every linear layer of the LM, ``lm_head``, the
   added tokens' embedding rows, SAM 2's prompt encoder and mask decoder, PLUM's heads), one
   recipe step: ``model(batch, lm_rows="labelled")`` -> PLUM's loss terms -> backward -> AdamW
   (SAM 2's frozen image encoder runs in the step). ``--batch`` conversations of one 480 x 640
   image and an answer naming 4 parts with random masks. One warm-up step, then ``--steps`` timed
   (median).

``--shape tiny`` (CPU, float32): the same code on the tiny random Qwen2.5-VL / SAM 2 / SAM 3 of
the tests (a smoke test; its timings mean nothing).

Usage::

    python benchmarks/bench_backbones.py --shape 7b            # one GPU
    .venv/bin/python benchmarks/bench_backbones.py --shape tiny   # CPU smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "qa" / "tiny_qa.json"
PARTS = ("left wing", "right wing", "tail", "engine", "fuselage", "propeller", "landing gear")

QWEN2_5_VL_7B: dict[str, Any] = {
    "text_config": {
        "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944,
        "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
        "max_position_embeddings": 128000, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
        "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
        "tie_word_embeddings": False,
    },
    "vision_config": {
        "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
        "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2,
        "temporal_patch_size": 2, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
    },
}  # fmt: skip
"""Qwen2.5-VL-7B-Instruct's published sizes (token ids come from the tokenizer)."""
QWEN_PIXELS = (56 * 56, 28 * 28 * 1280)
"""Qwen2.5-VL's default ``(min_pixels, max_pixels)`` (its ``preprocessor_config.json``)."""

SAM2_HIERA_L: dict[str, Any] = {
    "backbone_config": {
        "model_type": "sam2_hiera_det_model", "hidden_size": 144, "num_attention_heads": 2,
        "blocks_per_stage": [2, 6, 36, 4], "embed_dim_per_stage": [144, 288, 576, 1152],
        "num_attention_heads_per_stage": [2, 4, 8, 16], "window_size_per_stage": [8, 4, 16, 8],
        "global_attention_blocks": [23, 33, 43],
        "window_positional_embedding_background_size": [7, 7],
    },
    "backbone_channel_list": [1152, 576, 288, 144],
}  # fmt: skip
"""SAM 2.1 Hiera-L's vision config (1024 px; the prompt encoder and decoder are the defaults)."""
PLUM_7B_HEADS = {"bidir_heads": 8, "bidir_ff": 2048, "bidir_dropout": 0.0, "feedback_heads": 8}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """``(fn(), seconds)`` with the device synchronised on both sides."""
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


def peak_gib(device: torch.device) -> str:
    if device.type != "cuda":
        return "n/a (CPU)"
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"


def build_backbones(shape: str, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """The tokenizer, the VLM and its adapter, SAM 2 and SAM 3 (random weights, on ``device``)."""
    import transformers

    from partonomy.models.backbones.hf_vlm import VlmAdapter, VlmConfig, build_vlm
    from partonomy.models.backbones.sam import SamConfig, build_sam
    from partonomy.models.backbones.vlm_tokenizers import tiny_vlm_tokenizer
    from partonomy.models.zeroshot.sam3 import tiny_sam3_config

    tokenizer = tiny_vlm_tokenizer("qwen2_5_vl")
    torch.manual_seed(0)
    if shape == "tiny":
        vlm_cfg = VlmConfig(text_hidden=64, text_heads=4, text_kv_heads=2)
        model, adapter = build_vlm("qwen2_5_vl", vlm_cfg, tokenizer)
        sam_cfg = SamConfig(kind="sam2", image_size=64, decoder_hidden=32, encoder="conv")
        sam2 = build_sam(sam_cfg)
        sam3 = transformers.Sam3Model(tiny_sam3_config(len(tokenizer)))
        return {"tokenizer": tokenizer, "vlm": model.to(device, dtype), "adapter": adapter,
                "sam2": sam2.to(device, dtype), "sam3": sam3.to(device, dtype)}  # fmt: skip
    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in tokenizer.all_special_tokens}
    config = transformers.Qwen2_5_VLConfig(
        **QWEN2_5_VL_7B,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    config.text_config.pad_token_id = tokenizer.pad_token_id
    config.text_config.eos_token_id = tokenizer.eos_token_id
    with device:  # random weights made where they run
        model = transformers.Qwen2_5_VLForConditionalGeneration(config).to(dtype)
        sam2 = transformers.Sam2Model(transformers.Sam2Config(vision_config=SAM2_HIERA_L))
        sam3 = transformers.Sam3Model(transformers.Sam3Config())
    processor = transformers.Qwen2VLImageProcessorPil(
        patch_size=14, merge_size=2, temporal_patch_size=2,
        min_pixels=QWEN_PIXELS[0], max_pixels=QWEN_PIXELS[1],
    )  # fmt: skip
    adapter = VlmAdapter("qwen2_5_vl", processor, model.config)
    return {"tokenizer": tokenizer, "vlm": model, "adapter": adapter,
            "sam2": sam2.to(dtype), "sam3": sam3.to(dtype)}  # fmt: skip


def params(module: torch.nn.Module) -> str:
    """The parameter count of ``module``, as ``8.29B`` or ``0.52M``."""
    n = sum(p.numel() for p in module.parameters())
    return f"{n / 1e9:.2f}B" if n >= 1e8 else f"{n / 1e6:.2f}M"


def eval_vlm_sam3(parts: dict[str, Any], n: int, size: tuple[int, int]) -> dict[str, Any]:
    """One warm-up and one timed ``vlm_sam3`` batch of ``n`` questions (module docstring)."""
    from partonomy.eval.protocol import EvalItem
    from partonomy.io.qa_pairs import load_qa_pairs
    from partonomy.models.core.processing_vlm import VlmSegProcessor
    from partonomy.models.plum.targets import BioTargets
    from partonomy.models.zeroshot.hf_vlm import VlmChoiceScorer
    from partonomy.models.zeroshot.sam3 import Sam3Segmenter
    from partonomy.models.zeroshot.vlm_sam3 import VlmSam3Model

    model, adapter, tokenizer = parts["vlm"].eval(), parts["adapter"], parts["tokenizer"]
    device = next(model.parameters()).device
    processor = VlmSegProcessor(tokenizer, adapter=adapter, targets=BioTargets(), sam_image_size=0)
    scorer = VlmChoiceScorer(model, adapter, processor)
    segmenter = Sam3Segmenter(parts["sam3"].eval(), tokenizer, score_threshold=0.0)
    pipeline = VlmSam3Model(scorer, segmenter, prompt="part_of_object")
    records = load_qa_pairs(FIXTURE)
    rng = np.random.default_rng(0)

    def batch() -> list[EvalItem]:
        return [
            EvalItem(records[k % len(records)], rng.integers(0, 256, (*size, 3), dtype=np.uint8))
            for k in range(n)
        ]

    pipeline.predict(batch())  # warm-up
    items = batch()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    answers, seconds = timed(lambda: pipeline.predict(items), device)
    tokens = adapter.vision_input(items[0].image).n_tokens
    masks = sum(len(a.masks or {}) for a in answers)
    return {"questions": n, "seconds": seconds, "image_tokens": tokens, "masks": masks,
            "peak": peak_gib(device)}  # fmt: skip


def _conversation(processor: Any, rng: np.random.Generator, size: tuple[int, int]) -> Any:
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    parts = sorted(rng.choice(PARTS, size=4, replace=False).tolist())
    question = "What visible parts does the agricultural airplane in the image have?"
    answer = "The agricultural airplane in the image has the following visible parts: "
    answer += ", ".join(parts[:-1]) + f", and {parts[-1]}."
    masks = {p: (rng.random(size) > 0.5).astype(np.uint8) for p in parts}
    return processor.encode(image, [], question, answer, masks)


def train_plum(
    parts: dict[str, Any], shape: str, batch: int, steps: int, size: tuple[int, int]
) -> dict[str, Any]:
    """PLUM on the backbones: one warm-up and ``steps`` timed recipe steps (module docstring)."""
    from partonomy.models.core.losses import compute_losses, resolve_weights
    from partonomy.models.core.trainable import LoraSpec, set_trainable
    from partonomy.models.plum.builders import assemble_plum
    from partonomy.models.plum.config import PlumConfig
    from partonomy.models.plum.family import FAMILY
    from partonomy.models.plum.trainable import PlumTrainableSpec
    from partonomy.training.batches import touch_outputs
    from partonomy.training.checkpoint import processor_new_token_ids

    heads = PLUM_7B_HEADS if shape != "tiny" else {"bidir_heads": 4, "feedback_heads": 4}
    cfg = PlumConfig(backbone="qwen2_5_vl", max_length=2048, **heads)  # type: ignore[arg-type]
    vlm = parts["vlm"]
    device = next(vlm.parameters()).device
    torch.manual_seed(0)
    with device:
        model, processor = assemble_plum(
            cfg, tokenizer=parts["tokenizer"], llava=vlm, sam=parts["sam2"], vlm=parts["adapter"]
        )
    spec = PlumTrainableSpec(
        language_model="lora", lora=LoraSpec(target_modules=["all-linear"]), sam_prompt_encoder=True
    )
    names = set_trainable(model, spec, new_token_ids=processor_new_token_ids(processor))
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    weights = resolve_weights(FAMILY.loss_terms, {})
    opt = torch.optim.AdamW(trained, lr=1e-6)
    rng = np.random.default_rng(0)
    dtype = next(vlm.parameters()).dtype
    batches = [
        processor.collate([_conversation(processor, rng, size) for _ in range(batch)]).to(
            device, dtype=dtype
        )
        for _ in range(steps + 1)
    ]
    losses: list[float] = []

    def step(b: Any) -> None:
        out = model(b, span_source="target", lm_rows="labelled")
        loss = compute_losses(FAMILY.loss_terms, weights, out, b)
        (loss.total + touch_outputs(out)).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.total.detach()))

    step(batches[0])  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = [timed(lambda b=b: step(b), device)[1] for b in batches[1:]]
    tokens = statistics.mean(float(b.attention_mask.sum()) for b in batches[1:])
    return {"params": params(model), "trainable_m": sum(p.numel() for p in trained) / 1e6,
            "tensors": len(names), "batch": batch, "tokens": tokens,
            "seconds": statistics.median(times), "losses": losses, "peak": peak_gib(device),
            "sam2": params(parts["sam2"])}  # fmt: skip


def run(shape: str, batch: int, steps: int, device: torch.device) -> dict[str, Any]:
    """Both measurements; prints them and returns them."""
    import transformers

    dtype = torch.float32 if shape == "tiny" else torch.bfloat16
    size = (64, 80) if shape == "tiny" else (480, 640)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name} ({os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.2f})  torch "
          f"{torch.__version__}  transformers {transformers.__version__}  {dtype}")  # fmt: skip
    parts, build_s = timed(lambda: build_backbones(shape, device, dtype), device)
    print(f"built in {build_s:.1f} s (random weights): Qwen2.5-VL {params(parts['vlm'])}, "
          f"SAM 2 {params(parts['sam2'])}, SAM 3 {params(parts['sam3'])}")  # fmt: skip
    evaluation = eval_vlm_sam3(parts, batch, size)
    print(f"vlm_sam3: {evaluation['questions']} questions ({evaluation['image_tokens']} image "
          f"tokens each, 5 choices, {evaluation['masks']} SAM 3 part masks) in "
          f"{evaluation['seconds']:.2f} s = {evaluation['questions'] / evaluation['seconds']:.2f} "
          f"questions/s; peak {evaluation['peak']}")  # fmt: skip
    parts["sam3"] = None  # free it before training
    if device.type == "cuda":
        torch.cuda.empty_cache()
    train = train_plum(parts, shape, batch, steps, size)
    print(f"plum train step: {train['params']} params ({train['sam2']} SAM 2), "
          f"{train['trainable_m']:.1f}M trainable in {train['tensors']} tensors; "
          f"{train['batch']} conversations x {train['tokens'] / train['batch']:.0f} tokens, "
          f"4 masks each: {train['seconds'] * 1e3:.0f} ms/step (median of {steps}), "
          f"{train['tokens'] / train['seconds']:.0f} tok/s; peak {train['peak']}; "
          f"losses {[round(x, 3) for x in train['losses']]}")  # fmt: skip
    return {"eval": evaluation, "train": train}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shape", choices=["tiny", "7b"], default="tiny")
    parser.add_argument("--batch", type=int, default=4, help="questions / conversations")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps")
    parser.add_argument("--device", default=None, help="default: cuda for 7b, cpu for tiny")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cpu" if args.shape == "tiny" else "cuda"))
    return run(args.shape, args.batch, args.steps, device)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
