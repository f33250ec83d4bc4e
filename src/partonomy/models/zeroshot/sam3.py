"""SAM 3 (HF ``Sam3Model``) as a text-prompted segmenter: a noun phrase -> one binary mask.

SAM 3 detects every instance of a concept: ``num_queries`` candidate masks, each with a
classification logit, gated by one presence logit per image. One phrase's mask here is the union
of the instances whose score ``sigmoid(logit) * sigmoid(presence)`` exceeds ``score_threshold``
(0.5, as HF's instance post-processing), each upsampled bilinearly to the image and thresholded
at ``mask_threshold`` (0.5 on the sigmoid). No instance above the threshold gives an empty mask.

Preprocessing is written here (HF's ``Sam3ImageProcessor`` needs torchvision): the image is
resized (bilinear) to the encoder's square input, scaled to [0, 1] and normalised with the
checkpoint's ``image_mean`` / ``image_std`` (``preprocessor_config.json``; SAM 3's 0.5 / 0.5
when absent). The text goes through the checkpoint's tokenizer, padded to the text encoder's
context length.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from partonomy.errors import ConfigError

SAM3_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
"""SAM 3's normalisation when the checkpoint does not name one."""


class Sam3Segmenter:
    """Text-prompted masks from a ``Sam3Model`` (module docstring).

    Args:
        model: the HF ``Sam3Model``, on its device, in eval mode.
        tokenizer: its text tokenizer.
        mean, std: per-channel normalisation on the [0, 1] scale.
        score_threshold: minimum instance score kept in the union.
        mask_threshold: sigmoid threshold of an instance's mask.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        mean: Sequence[float] = SAM3_MEAN_STD[0],
        std: Sequence[float] = SAM3_MEAN_STD[1],
        score_threshold: float = 0.5,
        mask_threshold: float = 0.5,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.mean = torch.tensor(mean).reshape(3, 1, 1)
        self.std = torch.tensor(std).reshape(3, 1, 1)
        self.score_threshold = score_threshold
        self.mask_threshold = mask_threshold

    @property
    def input_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    def pixels(self, image: np.ndarray) -> torch.Tensor:
        """``(H, W, 3)`` uint8 -> ``(3, S, S)`` float32 encoder input."""
        side = self.input_size
        resized = Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def segment(self, image: np.ndarray, phrases: Sequence[str]) -> list[np.ndarray]:
        """One bool ``(H, W)`` mask per phrase; the image is encoded once for all of them."""
        if not phrases:
            return []
        device = next(self.model.parameters()).device
        dtype = next(self.model.parameters()).dtype
        pixels = self.pixels(image)[None].to(device, dtype)
        vision = self.model.get_vision_features(pixel_values=pixels)
        length = int(self.model.config.text_config.max_position_embeddings)
        text = self.tokenizer(
            list(phrases),
            padding="max_length",
            truncation=True,
            max_length=length,
            return_tensors="pt",
        )
        n = len(phrases)
        expanded = type(vision)(
            **{
                k: (
                    [t.expand(n, *t.shape[1:]) for t in v]
                    if isinstance(v, (list, tuple))
                    else v.expand(n, *v.shape[1:])
                )
                for k, v in vision.items()
            }
        )
        out = self.model(
            vision_embeds=expanded,
            input_ids=text["input_ids"].to(device),
            attention_mask=text["attention_mask"].to(device),
        )
        scores = out.pred_logits.float().sigmoid() * out.presence_logits.float().sigmoid()  # (n, Q)
        h, w = image.shape[:2]
        masks = F.interpolate(out.pred_masks.float(), (h, w), mode="bilinear", align_corners=False)
        keep = (scores > self.score_threshold)[..., None, None]
        union = ((masks.sigmoid() > self.mask_threshold) & keep).any(1)  # (n, H, W)
        return [m.cpu().numpy() for m in union]


def load_sam3(
    checkpoint: str,
    *,
    device: torch.device,
    dtype: torch.dtype,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
) -> Sam3Segmenter:
    """A :class:`Sam3Segmenter` from a local HF SAM 3 checkpoint (weights, tokenizer files and
    optionally ``preprocessor_config.json``).

    Raises:
        ConfigError: ``checkpoint`` is not a directory.
    """
    from transformers import AutoTokenizer, Sam3Model

    path = Path(checkpoint)
    if not path.is_dir():
        raise ConfigError(f"sam3={checkpoint!r} is not a local SAM 3 checkpoint directory")
    model: Any = Sam3Model.from_pretrained(path, local_files_only=True)
    model = model.to(device=device, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    mean, std = SAM3_MEAN_STD
    prep = path / "preprocessor_config.json"
    if prep.is_file():
        cfg = json.loads(prep.read_text())
        mean, std = cfg.get("image_mean", mean), cfg.get("image_std", std)
    return Sam3Segmenter(
        model.eval(),
        tokenizer,
        mean=mean,
        std=std,
        score_threshold=score_threshold,
        mask_threshold=mask_threshold,
    )


def tiny_sam3_config(vocab_size: int) -> Any:
    """A tiny random ``Sam3Config`` (56 px, 4x4 ViT grid, 32-wide, 8 queries) for tests."""
    from transformers import Sam3Config

    d = 32
    small = {"hidden_size": d, "num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    return Sam3Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam3_vit_model",
                "hidden_size": d,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": 56,
                "patch_size": 14,
                "window_size": 2,
                "global_attn_indexes": [1],
                "pretrain_image_size": 28,
            },
            "fpn_hidden_size": d,
            "backbone_feature_sizes": [[16, 16], [8, 8], [4, 4]],
        },
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": d,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "projection_dim": d,
            "max_position_embeddings": 16,
            # eos 2 = CLIP's legacy pooling (at the highest id): any tokenizer works
            "bos_token_id": None,
            "eos_token_id": 2,
            "pad_token_id": 0,
        },
        geometry_encoder_config=dict(small),
        detr_encoder_config=dict(small),
        detr_decoder_config=dict(small) | {"num_queries": 8},
        mask_decoder_config={"hidden_size": d, "num_attention_heads": 2},
    )
