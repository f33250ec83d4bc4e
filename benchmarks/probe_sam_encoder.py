"""How fast does a tiny, from-scratch SAM learn part masks behind each image encoder?

The experiment behind ``sam.encoder: conv`` in ``configs/tiny_synth.yaml`` (docs/quickstart.md).
It isolates segmentation from the language model: SAM's mask decoder is prompted by a learned
embedding of the part name (the best a span query can do), trained with the recipe's 8 x Dice +
2 x BCE on the quickstart's Synth world, and scored by the mean IoU of held-out images' part masks.

Usage::

    .venv/bin/python benchmarks/probe_sam_encoder.py --encoder conv --steps 1000
    .venv/bin/python benchmarks/probe_sam_encoder.py --encoder vit --device cuda --steps 2000

Prints one JSON line: ``{"encoder", "conv_width", "patch_size", "held_out_iou": [[step, iou], ...],
"step_ms", "seconds"}``, where ``step_ms`` is the median training step (forward, backward, AdamW
over ``--batch-size`` masks, each with its own image encoding).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def load_items(world: Path, size: int) -> tuple[torch.Tensor, list[tuple[int, str, np.ndarray]]]:
    """Normalised images ``(N, 3, size, size)`` and ``(image index, part, mask)`` items."""
    from PIL import Image

    from partonomy.io import masks as mask_io
    from partonomy.io.descriptor import load_descriptor

    desc = load_descriptor(world / "descriptor.json")
    images, items = [], []
    for i, inst in enumerate(desc.instances):
        with Image.open(desc.image_path(inst)) as img:
            rgb = np.asarray(img.convert("RGB").resize((size, size)), dtype=np.float32) / 255.0
        images.append(torch.from_numpy(rgb).permute(2, 0, 1))
        for part, rles in inst.part_masks().items():
            items.append((i, part, mask_io.decode(mask_io.union(rles)).astype(np.float32)))
    return (torch.stack(images) - 0.5) / 0.25, items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", choices=["vit", "conv"], default="conv")
    parser.add_argument("--conv-width", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=4)
    parser.add_argument("--decoder-hidden", type=int, default=128)
    parser.add_argument("--n-images", type=int, default=2500)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--every", type=int, default=250, help="evaluate every N steps")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from partonomy.config import from_dict, to_dict
    from partonomy.data.synth import SynthConfig, generate_world, preset
    from partonomy.models.backbones.sam import SamConfig, build_sam
    from partonomy.training.quickstart import QUICKSTART_WORLD

    with tempfile.TemporaryDirectory() as tmp:
        synth = from_dict(SynthConfig, {**to_dict(preset("easy")), **QUICKSTART_WORLD})
        generate_world(Path(tmp), n_images=args.n_images, seed=0, size=args.size, config=synth,
                       progress=False)  # fmt: skip
        images, items = load_items(Path(tmp), args.size)

    dev = torch.device(args.device)
    parts = sorted({part for _, part, _ in items})
    n_train_images = int(0.9 * len(images))
    train = [k for k, it in enumerate(items) if it[0] < n_train_images]
    held_out = [k for k, it in enumerate(items) if it[0] >= n_train_images][:1024]
    targets = torch.from_numpy(np.stack([m for _, _, m in items])).to(dev)
    image_of = torch.tensor([i for i, _, _ in items], device=dev)
    part_of = torch.tensor([parts.index(p) for _, p, _ in items], device=dev)
    images = images.to(dev)

    torch.manual_seed(0)
    sam = build_sam(SamConfig(image_size=args.size, patch_size=args.patch_size,
                              decoder_hidden=args.decoder_hidden, encoder=args.encoder,
                              conv_width=args.conv_width)).to(dev)  # fmt: skip
    prompts = torch.nn.Embedding(len(parts), args.decoder_hidden).to(dev)
    params = [*sam.parameters(), *prompts.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 30) * max(0.0, 1 - s / args.steps)
    )

    def logits(index: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(index, device=dev)
        emb = sam.vision_encoder(images[image_of[idx]])[0]
        n, _, h, w = emb.shape
        low, _ = sam.mask_decoder(
            image_embeddings=emb,
            image_positional_embeddings=sam.get_image_wide_positional_embeddings().expand(
                n, -1, -1, -1
            ),
            sparse_prompt_embeddings=prompts(part_of[idx]).reshape(n, 1, 1, -1),
            dense_prompt_embeddings=sam.prompt_encoder.no_mask_embed.weight.reshape(
                1, -1, 1, 1
            ).expand(n, -1, h, w),
            multimask_output=False,
        )
        return F.interpolate(low[:, 0], size=targets.shape[-2:], mode="bilinear")[:, 0], targets[
            idx
        ]

    rng = np.random.default_rng(0)
    history, step_times, start = [], [], time.perf_counter()
    for step in range(args.steps + 1):
        tick = time.perf_counter()
        logit, target = logits(rng.choice(train, args.batch_size).tolist())
        prob = logit.sigmoid()
        inter, total = (prob * target).sum((1, 2)), prob.sum((1, 2)) + target.sum((1, 2))
        dice = 1 - (2 * inter + 1e-6) / (total + 1e-6)
        loss = 8 * dice.mean() + 2 * F.binary_cross_entropy_with_logits(logit, target)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step_times.append(time.perf_counter() - tick)
        if step % args.every == 0 or step == args.steps:
            ious: list[float] = []
            with torch.no_grad():
                for k in range(0, len(held_out), 128):
                    logit, target = logits(held_out[k : k + 128])
                    pred, gt = logit > 0, target > 0.5
                    union = (pred | gt).sum((1, 2)).clamp_min(1)
                    ious += ((pred & gt).sum((1, 2)) / union).tolist()
            history.append([step, round(float(np.mean(ious)), 3)])
    width = args.conv_width if args.encoder == "conv" else None
    print(json.dumps({"encoder": args.encoder, "conv_width": width, "patch_size": args.patch_size,
                      "held_out_iou": history,
                      "step_ms": round(1000 * float(np.median(step_times[1:] or step_times))),
                      "seconds": round(time.perf_counter() - start, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
