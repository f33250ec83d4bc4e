"""Any Hugging Face VLM as a segmentation LMM's backbone: Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision.

Three things differ between these models and LLaVA-1.5, and each is handled by the model's own
code, never re-derived here:

* **Dynamic resolution.** The HF image processor decides the visual grid of each image (Qwen:
  ``image_grid_thw``; LLaVA-OneVision: anyres crops and ``image_sizes``); the number of image
  tokens an image gets is the model's own formula on that grid (Qwen: ``t*h*w / merge**2``, the
  split HF's ``get_image_features`` uses; LLaVA-OneVision: :func:`onevision_feature_count`), and
  the image tokens are found in ``input_ids`` by id.
* **Positions.** Qwen's multimodal RoPE gives image tokens 3-D (t, h, w) positions and shifts every
  later text position by a per-row delta; :meth:`VlmAdapter.forward` computes them with the
  model's ``get_rope_index`` and returns the delta, so a KV-cached continuation (shared-prefix
  scoring) continues at ``index + delta``.
* **Vision into the LM.** The model's own forward scatters the features (and Qwen3-VL's deepstack
  features) into the LM; this module only builds its keyword arguments.

Images of several rows: every row gets its own copy of its image's vision inputs (the vision
tower runs once per row, not once per distinct image as in the LLaVA path).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from partonomy.errors import ConfigError
from partonomy.models.backbones.llava import Dtype, torch_dtype
from partonomy.models.backbones.preprocess import VisionInput

VlmKind = Literal["qwen2_5_vl", "qwen3_vl", "llava_onevision"]
VLM_KINDS: tuple[str, ...] = ("qwen2_5_vl", "qwen3_vl", "llava_onevision")
TINY_PIXELS = (16 * 16, 64 * 64)
"""A tiny Qwen's default ``(min_pixels, max_pixels)``: 1 to 16 merged tokens per image."""

_MODEL_CLASSES = {
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
    "llava_onevision": "LlavaOnevisionForConditionalGeneration",
}


@dataclass
class VlmConfig:
    """Which HF VLM to build (the architecture, one of :data:`VLM_KINDS`, is chosen by the owner
    of this config, e.g. ``PlumConfig.backbone``).

    Attributes:
        pretrained: local directory of an HF checkpoint of that architecture (config, weights,
            tokenizer with its chat template, ``preprocessor_config.json``); None builds a tiny
            random model with a tiny offline tokenizer
            (:func:`~partonomy.models.backbones.vlm_tokenizers.tiny_vlm_tokenizer`).
        dtype: parameter dtype.
        min_pixels, max_pixels: the Qwen image processor's pixel budget per image (dynamic
            resolution). None: the checkpoint's own (pretrained) or :data:`TINY_PIXELS` (tiny).
        text_hidden, text_layers, text_heads, text_kv_heads, text_intermediate: tiny LM sizes.
        vision_hidden, vision_layers, vision_heads, patch_size: tiny vision tower sizes.
        crop_size: LLaVA-OneVision's tiny base crop side (anyres pinpoints are 1x1..2x2 crops).
    """

    pretrained: str | None = None
    dtype: Dtype = "float32"
    min_pixels: int | None = None
    max_pixels: int | None = None
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 128
    vision_hidden: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    patch_size: int = 8
    crop_size: int = 32

    def __post_init__(self) -> None:
        for name in ("text", "vision"):
            hidden, heads = getattr(self, f"{name}_hidden"), getattr(self, f"{name}_heads")
            if hidden % heads:
                raise ConfigError(
                    f"vlm.{name}_hidden ({hidden}) must be divisible by vlm.{name}_heads"
                )
        if self.text_heads % self.text_kv_heads:
            raise ConfigError("vlm.text_kv_heads must divide vlm.text_heads")


# ----------------------------------------------------------------------------- building
def _check_kind(kind: str) -> None:
    if kind not in VLM_KINDS:
        raise ConfigError(f"unknown VLM backbone {kind!r}; known: {', '.join(VLM_KINDS)}")


def _tiny_hf_config(kind: str, cfg: VlmConfig, tokenizer: Any) -> Any:
    import transformers

    ids = {t: int(tokenizer.convert_tokens_to_ids(t)) for t in tokenizer.all_special_tokens}
    head_dim = cfg.text_hidden // cfg.text_heads
    text: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": cfg.text_hidden,
        "intermediate_size": cfg.text_intermediate,
        "num_hidden_layers": cfg.text_layers,
        "num_attention_heads": cfg.text_heads,
        "num_key_value_heads": cfg.text_kv_heads,
        "max_position_embeddings": 4096,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": None,
    }
    if kind in ("qwen2_5_vl", "qwen3_vl"):
        # mrope sections split head_dim / 2 rotary frequencies over (t, h, w), as 16/24/24 of 64
        # in the real models.
        half = head_dim // 2
        section = [half // 4, (half - half // 4) // 2, half - half // 4 - (half - half // 4) // 2]
        vision: dict[str, Any] = {
            "depth": cfg.vision_layers,
            "hidden_size": cfg.vision_hidden,
            "intermediate_size": 2 * cfg.vision_hidden,
            "num_heads": cfg.vision_heads,
            "out_hidden_size": cfg.text_hidden,
            "patch_size": cfg.patch_size,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        }
        tokens: dict[str, Any] = {
            "image_token_id": ids["<|image_pad|>"],
            "video_token_id": ids["<|video_pad|>"],
            "vision_start_token_id": ids["<|vision_start|>"],
            "vision_end_token_id": ids["<|vision_end|>"],
        }
        if kind == "qwen2_5_vl":
            text["rope_scaling"] = {"type": "mrope", "mrope_section": section}
            vision.update(
                window_size=4 * cfg.patch_size, fullatt_block_indexes=[cfg.vision_layers - 1]
            )
            return transformers.Qwen2_5_VLConfig(text_config=text, vision_config=vision, **tokens)
        text["head_dim"] = head_dim
        text["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": 5000000.0,
            "mrope_section": section,
            "mrope_interleaved": True,
        }
        vision.update(num_position_embeddings=64, deepstack_visual_indexes=[0])
        return transformers.Qwen3VLConfig(text_config=text, vision_config=vision, **tokens)
    crop = cfg.crop_size
    vision = {
        "model_type": "siglip_vision_model",
        "hidden_size": cfg.vision_hidden,
        "intermediate_size": 2 * cfg.vision_hidden,
        "num_hidden_layers": cfg.vision_layers,
        "num_attention_heads": cfg.vision_heads,
        "image_size": crop,
        "patch_size": cfg.patch_size,
    }
    text["model_type"] = "qwen2"
    return transformers.LlavaOnevisionConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=ids["<image>"],
        video_token_index=ids["<video>"],
        image_grid_pinpoints=[[crop * a, crop * b] for a in (1, 2) for b in (1, 2)],
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
    )


def _image_processor(kind: str, cfg: VlmConfig, model: Any) -> Any:
    import transformers

    if cfg.pretrained is not None:
        name = (
            "Qwen2VLImageProcessorPil"
            if kind in ("qwen2_5_vl", "qwen3_vl")
            else "LlavaOnevisionImageProcessorPil"
        )
        proc = getattr(transformers, name).from_pretrained(cfg.pretrained, local_files_only=True)
        if kind != "llava_onevision":
            size = dict(proc.size)
            if cfg.min_pixels is not None:
                size["shortest_edge"] = cfg.min_pixels
            if cfg.max_pixels is not None:
                size["longest_edge"] = cfg.max_pixels
            proc.size = size
        return proc
    vision = model.config.vision_config
    if kind in ("qwen2_5_vl", "qwen3_vl"):
        return transformers.Qwen2VLImageProcessorPil(
            patch_size=int(vision.patch_size),
            merge_size=int(vision.spatial_merge_size),
            temporal_patch_size=int(vision.temporal_patch_size),
            min_pixels=cfg.min_pixels or TINY_PIXELS[0],
            max_pixels=cfg.max_pixels or TINY_PIXELS[1],
        )
    crop = int(vision.image_size)
    return transformers.LlavaOnevisionImageProcessorPil(
        size={"height": crop, "width": crop},
        crop_size={"height": crop, "width": crop},
        image_grid_pinpoints=model.config.image_grid_pinpoints,
        do_pad=True,
    )


def load_vlm_tokenizer(kind: str, cfg: VlmConfig) -> Any:
    """The tokenizer (with its chat template): the checkpoint's own, or a tiny offline one."""
    _check_kind(kind)
    if cfg.pretrained is None:
        from partonomy.models.backbones.vlm_tokenizers import tiny_vlm_tokenizer

        return tiny_vlm_tokenizer(kind)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg.pretrained, local_files_only=True)
    if tok.chat_template is None:
        raise ConfigError(f"vlm.pretrained={cfg.pretrained!r}: the tokenizer has no chat template")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def build_vlm(kind: str, cfg: VlmConfig, tokenizer: Any) -> tuple[Any, VlmAdapter]:
    """Build (tiny, random) or load the VLM of architecture ``kind`` and its adapter.

    Returns:
        ``(model, adapter)``: the HF ``*ForConditionalGeneration`` in ``cfg.dtype`` on CPU, and the
        :class:`VlmAdapter` holding its image processor.

    Raises:
        ConfigError: ``pretrained`` is not a local directory.
    """
    import transformers

    _check_kind(kind)
    cls = getattr(transformers, _MODEL_CLASSES[kind])
    model: Any
    if cfg.pretrained is None:
        model = cls(_tiny_hf_config(kind, cfg, tokenizer))
    else:
        if not Path(cfg.pretrained).is_dir():
            raise ConfigError(
                f"vlm.pretrained={cfg.pretrained!r} is not a local directory (nothing is downloaded)"
            )
        model = cls.from_pretrained(
            cfg.pretrained, dtype=torch_dtype(cfg.dtype), local_files_only=True
        )
    if model.config.text_config.vocab_size < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    model = model.to(torch_dtype(cfg.dtype))
    return model, VlmAdapter(kind, _image_processor(kind, cfg, model), model.config)


# ------------------------------------------------------------------------------ adapter
def onevision_feature_count(
    size: tuple[int, int],
    *,
    crop: int,
    patch: int,
    pinpoints: Sequence[Sequence[int]],
    max_crops: int,
) -> int:
    """How many features LLaVA-OneVision's vision side gives an ``(H, W)`` image ("anyres_max",
    the ``full`` feature selection of SigLIP, which has no CLS token).

    The model packs, in order:

    1. the base crop (the whole image resized to ``crop``): ``g * g`` features, ``g = crop //
       patch``;
    2. the anyres grid: the image processor resizes the image into the best pinpoint resolution
       ``(h*, w*)`` (HF's public ``select_best_resolution``, the same choice the processor made)
       keeping its aspect ratio and pads it centred, then cuts ``h*/crop x w*/crop`` crops: a
       feature grid of ``R = g h*/crop`` rows by ``C = g w*/crop`` columns;
    3. unpadding: the rows (image wider than the grid) or columns (otherwise) that hold only
       padding are dropped, the same number on each side: the image's extent scaled to the grid,
       ``int(round(H * C / W, 7))`` rows (or ``int(round(W * R / H, 7))`` columns, the model's
       own rounding), and ``(R - rows) // 2`` dropped on each side;
    4. "anyres_max_N": when ``r = sqrt(R C / (N g^2)) > 1.1`` the grid is resized to
       ``(R // r, C // r)``;
    5. one learned newline feature after each row: ``R (C + 1)``.

    The tests check this count against the features HF's model itself produces.

    Returns:
        ``g^2 + R (C + 1)`` after steps 3-4.
    """
    from transformers.image_processing_utils import select_best_resolution

    height, width = size
    g = crop // patch
    best_h, best_w = select_best_resolution((height, width), [list(p) for p in pinpoints])
    rows, cols = g * (best_h // crop), g * (best_w // crop)
    if width / height > cols / rows:
        kept = int(round(height * (cols / width), 7))
        rows -= 2 * ((rows - kept) // 2)
    else:
        kept = int(round(width * (rows / height), 7))
        cols -= 2 * ((cols - kept) // 2)
    ratio = math.sqrt(rows * cols / (max_crops * g * g))
    if ratio > 1.1:
        rows, cols = int(rows // ratio), int(cols // ratio)
    return g * g + rows * (cols + 1)


class VlmAdapter:
    """What a segmentation LMM needs from an HF VLM, in the model's own terms (no parameters).

    Args:
        kind: the architecture.
        image_processor: its HF image processor.
        config: the HF model config (token ids, merge size, anyres settings).
    """

    def __init__(self, kind: str, image_processor: Any, config: Any) -> None:
        if kind not in VLM_KINDS:
            raise ValueError(f"unknown VLM kind {kind!r}; known: {', '.join(VLM_KINDS)}")
        self.kind = kind
        self.image_processor = image_processor
        self.config = config

    @property
    def image_token_id(self) -> int:
        c = self.config
        return int(c.image_token_id if hasattr(c, "image_token_id") else c.image_token_index)

    @property
    def placeholder_token_ids(self) -> list[int]:
        """The image / video placeholder ids (and Qwen's vision start / end): only the processor
        places them, with the count an image needs, so generation never may."""
        names = ("image_token_id", "image_token_index", "video_token_id", "video_token_index",
                 "vision_start_token_id", "vision_end_token_id")  # fmt: skip
        found = (getattr(self.config, n, None) for n in names)
        return sorted({int(i) for i in found if i is not None})

    @property
    def uses_mrope(self) -> bool:
        return self.kind in ("qwen2_5_vl", "qwen3_vl")

    # --------------------------------------------------------------------------- images
    def vision_input(self, image: np.ndarray) -> VisionInput:
        """Preprocess one ``(H, W, 3)`` uint8 image and give its token count (module docstring)."""
        from PIL import Image

        out = self.image_processor(images=[Image.fromarray(image)], return_tensors="pt")
        if self.uses_mrope:
            grid = out["image_grid_thw"]  # (1, 3)
            merge = int(self.config.vision_config.spatial_merge_size)
            n = int(grid.prod()) // merge**2
            return VisionInput(out["pixel_values"], {"image_grid_thw": grid}, n)
        sizes = out["image_sizes"]  # (1, 2)
        pixels = out["pixel_values"][0]  # (crops, 3, S, S)
        return VisionInput(pixels, {"image_sizes": sizes}, self._onevision_tokens(sizes[0]))

    def _onevision_tokens(self, size: torch.Tensor) -> int:
        """LLaVA-OneVision's feature count of an image of ``size (H, W)``
        (:func:`onevision_feature_count` with this model's crop, patch, pinpoints and
        ``vision_aspect_ratio``)."""
        vision = self.config.vision_config
        return onevision_feature_count(
            (int(size[0]), int(size[1])),
            crop=int(vision.image_size),
            patch=int(vision.patch_size),
            pinpoints=self.config.image_grid_pinpoints,
            max_crops=int(str(self.config.vision_aspect_ratio).removeprefix("anyres_max_")),
        )

    def collate(
        self, inputs: Sequence[VisionInput]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Batch the vision inputs of ``N`` images as the HF model takes them."""
        extras = {k: torch.cat([i.extras[k] for i in inputs]) for k in inputs[0].extras}
        if self.uses_mrope:
            return torch.cat([i.pixel_values for i in inputs]), extras
        crops = max(int(i.pixel_values.shape[0]) for i in inputs)
        first = inputs[0].pixel_values
        out = first.new_zeros((len(inputs), crops, *first.shape[1:]))
        for k, i in enumerate(inputs):
            out[k, : i.pixel_values.shape[0]] = i.pixel_values
        return out, extras

    def rows(
        self,
        pixel_values: torch.Tensor,
        extras: Mapping[str, torch.Tensor],
        image_index: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """HF keyword arguments with one image per row: image ``image_index[b]`` for row ``b``."""
        index = image_index.tolist()
        if not self.uses_mrope:
            return {
                "pixel_values": pixel_values[index],
                "image_sizes": extras["image_sizes"][index],
            }
        grid = extras["image_grid_thw"]
        counts = grid.prod(-1).tolist()
        starts = [0, *np.cumsum(counts).tolist()]
        parts = [pixel_values[starts[i] : starts[i + 1]] for i in index]
        return {"pixel_values": torch.cat(parts), "image_grid_thw": grid[index]}

    def token_counts(self, vision: Mapping[str, torch.Tensor]) -> list[int]:
        """Image tokens each row's image needs (``vision`` from :meth:`rows`)."""
        if self.uses_mrope:
            merge = int(self.config.vision_config.spatial_merge_size)
            return [int(n) // merge**2 for n in vision["image_grid_thw"].prod(-1).tolist()]
        return [self._onevision_tokens(size) for size in vision["image_sizes"]]

    # ------------------------------------------------------------------------- forward
    def forward(
        self,
        base: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        vision: Mapping[str, torch.Tensor],
        *,
        use_cache: bool = False,
    ) -> tuple[Any, torch.Tensor | None]:
        """Run the HF base model (``*ForConditionalGeneration.model``) on right-padded rows.

        Args:
            base: the HF base model (vision tower + LM, no ``lm_head``).
            input_ids, attention_mask: ``(B, L)``, each row holding its image's tokens.
            vision: from :meth:`rows` (one image per row), on the model's device.
            use_cache: return a KV cache (prefill for shared-prefix scoring).

        Returns:
            ``(output, deltas)``: the HF output (``last_hidden_state``, ``cache``) and, for mrope
            models, ``(B,)`` the offset of text positions after the image (a continuation token at
            sequence index ``j`` has position ``j + delta``); None for 1-D positions.

        Raises:
            ValueError: a row's number of image tokens differs from its image's feature count.
        """
        found = (input_ids == self.image_token_id).sum(1).tolist()
        needed = self.token_counts(vision)
        if found != needed:
            raise ValueError(
                f"image tokens per row {found} differ from the features of each row's image "
                f"{needed}; encode the image and its conversation together (VlmSegProcessor)"
            )
        dtype = next(base.parameters()).dtype
        kwargs = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in vision.items()}
        deltas = None
        if self.uses_mrope:
            mm_types = (input_ids == self.image_token_id).int()
            position_ids, rope_deltas = base.get_rope_index(
                input_ids,
                mm_token_type_ids=mm_types,
                image_grid_thw=kwargs["image_grid_thw"],
                attention_mask=attention_mask,
            )
            kwargs["position_ids"] = position_ids
            kwargs["mm_token_type_ids"] = mm_types
            deltas = rope_deltas.reshape(-1)
        out = base(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache, **kwargs
        )
        return out, deltas
