"""GLaMM's region encoder: ``<bbox>`` tokens get an embedding pooled from multi-level CLIP features.

What it computes, per image with boxes (GLaMM's ``MLVLROIQueryModule`` in ``model/layers.py``,
wired in ``model/llava/llava_with_region_arch.py``; sizes for CLIP-L/14 at 336 px, ``C = 1024``,
grid ``g = 24``, ``L = 4`` levels, LLM width ``d``):

1. **Levels.** The CLIP tower runs on the LLaVA input ``pixel_values`` with every hidden state kept
   (``hidden_states[0]`` is the embedding output, ``[i]`` the output of layer ``i``). GLaMM takes
   ``hidden_states[select::-3]``, reversed, last ``L``: with ``select = -2`` (``mm_vision_select_layer``)
   and 24 layers that is states 14, 17, 20, 23; a tower with fewer layers repeats its first state.
   CLS is dropped; each level is ``(C, g, g)``.
2. **Scales.** Level ``l`` (shallowest first) is resized bilinearly (``align_corners=True``, in
   float32) to ``g * 2 ** (L - 1 - l)``: 192, 96, 48, 24 px grids, i.e. feature strides
   ``patch / 2 ** (L - 1 - l)`` = 14/8, 14/4, 14/2, 14 input pixels per cell.
3. **Fusion** (``MLVLFuseModule``). Two coordinate channels (x then y, ``linspace(-1, 1)``) are
   appended and a 1x1 conv per level maps ``C + 2 -> C``. Then 5 rounds, each with one shared
   ``conv3x3 (no bias) -> GroupNorm(64) -> ReLU`` block applied to every level after a channel
   shuffle: level ``l`` keeps its first ``C - 2 * C / 4`` channels and takes the last ``C / 4``
   channels of level ``min(l + 1, L - 1)`` and channels ``[C / 2, 3 C / 4)`` of level
   ``max(l - 1, 0)``, both resized (bilinear, ``align_corners=True``) to its grid.
4. **RoIAlign** (``MlvlRoIExtractor``): every level is pooled to ``14 x 14`` per box with its own
   spatial scale (``1 / stride``), ``sampling_ratio=2``, ``aligned=True``
   (:mod:`partonomy.models.glamm.roi_align`); a 3x3 conv per level; summed over levels; ReLU;
   flattened ``(C * 196)`` -> Linear -> ``(C,)``; plus a box embedding of the normalised box
   (Linear(4, 256) -> ReLU -> LayerNorm -> Linear(256, C) -> ReLU -> LayerNorm); then
   Linear(C, d) -> ``(d,)`` per box.

**Box frame, exactly as GLaMM.** The LLaVA input is a shortest-side resize and centre crop, but
GLaMM ignores the crop: a box ``(x0, y0, x1, y1)`` in original pixels of an ``H x W`` image is
normalised to ``(x0 / W, y0 / H, x1 / W, y1 / H)`` (the box embedding's input) and multiplied by
224 for RoIAlign (``single_img_roi * 224`` in ``MlvlRoIExtractor``, kept from GPT4RoI's 224 px
CLIP), while the strides above describe a 336 px frame. So a whole-image box covers the top-left
224/336 of every feature map. The released weights were trained this way, so it is the default
(``box_frame="glamm"``; the 224 scales with the CLIP input size as ``image_size * 2 / 3``).
``box_frame="crop"`` is the geometric alternative: boxes are mapped through the resize and crop
into CLIP pixels (parts outside the crop fall outside the feature maps).

Differences from the original: RoIAlign from torchvision or plain torch instead of mmcv; the
features stay in the module's dtype (GLaMM casts the resized levels to bfloat16 whatever the model
dtype); GroupNorm uses ``gcd(64, C)`` groups so tiny widths work (64 at ``C = 1024``).

Key layout (GLaMM ``model.region_encoder.`` -> ours, see
:data:`GLAMM_REGION_KEYS` and :func:`glamm_region_key`):
``mlvl_fuse.input_conv.N`` -> ``input_convs.N``; ``mlvl_fuse.fuse_convs.N.conv`` ->
``fuse_convs.N.conv``; ``mlvl_fuse.fuse_convs.N.gn`` -> ``fuse_convs.N.norm``;
``roi_align.pconvs.N`` -> ``level_convs.N``; ``roi_align.pos_embedd.K`` -> ``box_embed.K``;
``roi_align.flatten_linear`` -> ``flatten``; ``roi_align.updims`` -> ``project``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from partonomy.models.core.model import InputEncoder
from partonomy.models.core.processing import SegBatch
from partonomy.models.glamm.roi_align import roi_align

NUM_LEVELS = 4
LAYER_STEP = 3
"""GLaMM reads every third CLIP hidden state below ``mm_vision_select_layer``."""
FUSE_ROUNDS = 5
ROI_SIZE = 14
SAMPLING_RATIO = 2
BOX_EMBED_WIDTH = 256
GLAMM_BOX_SCALE = 224 / 336
"""GLaMM multiplies normalised boxes by 224 while its CLIP input is 336 px (module docstring)."""

BoxFrame = Literal["glamm", "crop"]

GLAMM_REGION_KEYS: tuple[tuple[str, str], ...] = (
    (r"mlvl_fuse\.input_conv\.(\d+)\.", r"input_convs.\1."),
    (r"mlvl_fuse\.fuse_convs\.(\d+)\.conv\.", r"fuse_convs.\1.conv."),
    (r"mlvl_fuse\.fuse_convs\.(\d+)\.gn\.", r"fuse_convs.\1.norm."),
    (r"roi_align\.pconvs\.(\d+)\.", r"level_convs.\1."),
    (r"roi_align\.pos_embedd\.(\d+)\.", r"box_embed.\1."),
    (r"roi_align\.flatten_linear\.", "flatten."),
    (r"roi_align\.updims\.", "project."),
)
"""GLaMM ``region_encoder`` key patterns (after that prefix) -> this module's keys."""


def glamm_region_key(key: str) -> str | None:
    """This module's key for a GLaMM ``region_encoder`` key (without prefix), or None if unknown."""
    for pattern, replacement in GLAMM_REGION_KEYS:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key, count=1)
    return None


def level_layers(num_states: int, select_layer: int, levels: int = NUM_LEVELS) -> list[int]:
    """Indices into CLIP's ``hidden_states`` (``num_states`` = layers + 1) of the levels,
    shallowest first: ``select, select - 3, ...`` (GLaMM), clamped at state 0.

    >>> level_layers(25, -2)
    [14, 17, 20, 23]
    """
    top = select_layer % num_states
    return [max(top - LAYER_STEP * k, 0) for k in reversed(range(levels))]


class _FuseBlock(nn.Module):
    """``conv3x3 (no bias) -> GroupNorm -> ReLU`` (mmcv ``ConvModule`` with GN, as GLaMM)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = nn.GroupNorm(math.gcd(64, channels), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear, ``align_corners=True``, computed in float32, returned in ``x.dtype``."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    out = F.interpolate(x.float(), size=tuple(size), mode="bilinear", align_corners=True)
    return out.to(x.dtype)


class RegionEncoder(InputEncoder):
    """GLaMM's ``MLVLROIQueryModule`` (module docstring) as an :class:`InputEncoder` for ``<bbox>``.

    Args:
        token_id: id of ``<bbox>``.
        vision_hidden: CLIP width ``C`` (1024 for CLIP-L).
        image_size: CLIP input side ``S`` (336).
        patch_size: CLIP patch (14); the grid is ``S / patch``.
        num_states: CLIP ``num_hidden_layers + 1`` (hidden states incl. the embedding output).
        select_layer: LLaVA's ``vision_feature_layer`` (-2).
        llm_hidden: LLM width ``d`` (4096 for 7B).
        vision_tower: callable ``pixel_values (N, 3, S, S) -> output with .hidden_states`` (the
            shared HF CLIP tower of the LLaVA backbone). It is held outside the module tree (not a
            submodule: its weights belong to ``llava``). Needed for :meth:`forward`, not for
            building or converting.
        box_frame: ``"glamm"`` (the original's transform, default) or ``"crop"``.
        roi_backend: ``"auto"`` (torchvision if it imports, else plain torch) or ``"torch"``.
    """

    def __init__(
        self,
        *,
        token_id: int,
        vision_hidden: int,
        image_size: int,
        patch_size: int,
        num_states: int,
        select_layer: int,
        llm_hidden: int,
        vision_tower: Callable[..., Any] | None = None,
        box_frame: BoxFrame = "glamm",
        roi_backend: Literal["auto", "torch"] = "auto",
    ) -> None:
        super().__init__()
        if vision_hidden % 4:
            raise ValueError(f"region encoder: CLIP width {vision_hidden} must be divisible by 4")
        if box_frame not in ("glamm", "crop"):
            raise ValueError(
                f"region encoder: box_frame must be 'glamm' or 'crop', got {box_frame!r}"
            )
        self.token_id = token_id
        self.image_size = image_size
        self.grid = image_size // patch_size
        self.patch_size = patch_size
        self.layers = level_layers(num_states, select_layer)
        self.box_frame = box_frame
        self.roi_backend = roi_backend
        self._vision_tower = [vision_tower]  # a list: keeps it out of the module tree
        c = vision_hidden
        self.input_convs = nn.ModuleList(nn.Conv2d(c + 2, c, 1) for _ in range(NUM_LEVELS))
        self.fuse_convs = nn.ModuleList(_FuseBlock(c) for _ in range(FUSE_ROUNDS))
        self.level_convs = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in range(NUM_LEVELS))
        self.box_embed = nn.Sequential(
            nn.Linear(4, BOX_EMBED_WIDTH),
            nn.ReLU(),
            nn.LayerNorm(BOX_EMBED_WIDTH),
            nn.Linear(BOX_EMBED_WIDTH, c),
            nn.ReLU(),
            nn.LayerNorm(c),
        )
        self.flatten = nn.Linear(c * ROI_SIZE * ROI_SIZE, c)
        self.project = nn.Linear(c, llm_hidden)

    # ------------------------------------------------------------------------- geometry
    def level_sizes(self) -> list[int]:
        """Grid side of each level, shallowest first (192, 96, 48, 24 for CLIP-L/336)."""
        return [self.grid * 2 ** (NUM_LEVELS - 1 - lvl) for lvl in range(NUM_LEVELS)]

    def level_scales(self) -> list[float]:
        """RoIAlign spatial scale (cells per CLIP input pixel) of each level: 8/14 ... 1/14."""
        return [2 ** (NUM_LEVELS - 1 - lvl) / self.patch_size for lvl in range(NUM_LEVELS)]

    def normalise_boxes(
        self, boxes: Sequence[Sequence[float]], original_size: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One image's boxes in the encoder's frames.

        Args:
            boxes: ``(x0, y0, x1, y1)`` in original-image pixels.
            original_size: ``(H, W)`` of the original image.

        Returns:
            ``(normalised (n, 4), roi_pixels (n, 4))`` float32: the box embedding's input (GLaMM:
            divided by ``(W, H, W, H)``) and the RoIAlign box in CLIP-input pixels (GLaMM:
            normalised x ``2/3 S``, i.e. x 224 at 336; ``crop``: through the resize and crop).
        """
        h, w = (float(v) for v in original_size)
        xyxy = torch.tensor([list(map(float, b)) for b in boxes], dtype=torch.float32).reshape(
            -1, 4
        )
        if self.box_frame == "glamm":
            norm = xyxy / torch.tensor([w, h, w, h])
            return norm, norm * (self.image_size * GLAMM_BOX_SCALE)
        # The resize and centre crop of partonomy.models.backbones.preprocess.clip_preprocess.
        s = self.image_size
        scale = s / min(h, w)
        new_h, new_w = max(s, round(h * scale)), max(s, round(w * scale))
        top, left = (new_h - s) // 2, (new_w - s) // 2
        factor = torch.tensor([new_w / w, new_h / h, new_w / w, new_h / h])
        pixels = xyxy * factor - torch.tensor([left, top, left, top], dtype=torch.float32)
        return pixels / s, pixels

    # -------------------------------------------------------------------------- pieces
    def clip_levels(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """The ``L`` CLIP levels ``(N, C, g, g)`` of ``(N, 3, S, S)`` images (no gradient into CLIP,
        as in GLaMM, whose tower runs under ``no_grad``)."""
        tower = self._vision_tower[0]
        if tower is None:
            raise RuntimeError(
                "RegionEncoder has no vision tower; build it with build_region_encoder(llava, ...) "
                "or pass vision_tower="
            )
        with torch.no_grad():
            out = tower(pixel_values, output_hidden_states=True, return_dict=True)
        states = out.hidden_states
        dtype = self.input_convs[0].weight.dtype
        levels = []
        for index in self.layers:
            tokens = states[index][:, 1:]  # (N, g*g, C), CLS dropped
            n, p, c = tokens.shape
            side = math.isqrt(p)
            levels.append(tokens.transpose(1, 2).reshape(n, c, side, side).to(dtype))
        return levels

    def fuse(self, levels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Resize to the level sizes, add coordinates, 1x1 conv, then the shuffle rounds."""
        feats = []
        for lvl, (x, side) in enumerate(zip(levels, self.level_sizes())):
            x = _resize(x, (side, side))
            lin = torch.linspace(-1, 1, side, device=x.device, dtype=x.dtype)
            ys, xs = torch.meshgrid(lin, lin, indexing="ij")
            coords = torch.stack([xs, ys])[None].expand(x.shape[0], -1, -1, -1)
            feats.append(self.input_convs[lvl](torch.cat([x, coords], dim=1)))
        c = feats[0].shape[1]
        share = c // 4
        keep = c - 2 * share
        last = len(feats) - 1
        for block in self.fuse_convs:
            mixed = []
            for lvl, x in enumerate(feats):
                size = x.shape[-2:]
                from_top = _resize(feats[min(lvl + 1, last)][:, keep + share :], size)
                from_down = _resize(feats[max(lvl - 1, 0)][:, keep : keep + share], size)
                mixed.append(torch.cat([x[:, :keep], from_top, from_down], dim=1))
            feats = [block(x) for x in mixed]
        return feats

    def pool(
        self, feats: Sequence[torch.Tensor], rois: torch.Tensor, normalised: torch.Tensor
    ) -> torch.Tensor:
        """``(K, d)`` box embeddings from fused levels and ``(K, 5)`` rois ``(image, x0, y0, x1, y1)``."""
        total = None
        for lvl, (x, scale) in enumerate(zip(feats, self.level_scales())):
            pooled = roi_align(
                x, rois, ROI_SIZE, scale, SAMPLING_RATIO, backend=self.roi_backend
            )  # (K, C, 14, 14)
            pooled = self.level_convs[lvl](pooled)
            total = pooled if total is None else total + pooled
        assert total is not None
        hidden = self.flatten(F.relu(total).flatten(1))  # (K, C)
        hidden = hidden + self.box_embed(normalised.to(hidden.dtype))
        return self.project(hidden)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------------- forward
    def forward(
        self, batch: SegBatch, image_features: Mapping[str, torch.Tensor]
    ) -> list[torch.Tensor]:
        """Per conversation, ``(n_boxes, d)`` embeddings of ``batch.boxes`` (one per ``<bbox>``).

        Args:
            batch: ``boxes`` per conversation in original pixels, ``original_sizes`` ``(H, W)``,
                ``image_index`` the image of each conversation.
            image_features: ``{"pixel_values": (N, 3, S, S)}``, the CLIP inputs of the batch's
                distinct images.

        Returns:
            One ``(n_b, d)`` tensor per conversation in the module's dtype (``(0, d)`` without boxes).
        """
        pixel_values = image_features["pixel_values"]
        dtype = self.project.weight.dtype
        device = self.project.weight.device
        d = self.project.out_features
        empty = torch.zeros(0, d, dtype=dtype, device=device)
        with_boxes = [b for b, boxes in enumerate(batch.boxes) if len(boxes)]
        if not with_boxes:
            return [empty for _ in batch.boxes]
        images = sorted({int(batch.image_index[b]) for b in with_boxes})
        slot = {img: i for i, img in enumerate(images)}
        feats = self.fuse(self.clip_levels(pixel_values[images].to(dtype)))
        rois, normed, owner = [], [], []
        for b in with_boxes:
            norm, pixels = self.normalise_boxes(batch.boxes[b], batch.original_sizes[b])
            index = torch.full((pixels.shape[0], 1), float(slot[int(batch.image_index[b])]))
            rois.append(torch.cat([index, pixels], dim=1))
            normed.append(norm)
            owner += [b] * pixels.shape[0]
        out = self.pool(feats, torch.cat(rois).to(device), torch.cat(normed).to(device))
        owners = torch.tensor(owner)
        return [
            out[(owners == b).nonzero().flatten().to(device)] if b in with_boxes else empty
            for b in range(len(batch.boxes))
        ]


def build_region_encoder(
    llava: Any, tokenizer: Any, *, box_frame: BoxFrame = "glamm"
) -> RegionEncoder:
    """The region encoder sized from a built HF ``LlavaForConditionalGeneration`` and reading its
    CLIP tower; ``<bbox>`` is looked up in ``tokenizer``."""
    from partonomy.models.backbones.llava import token_id
    from partonomy.models.glamm.builders import BBOX_TOKEN

    config = llava.config
    vision = config.vision_config
    select = config.vision_feature_layer
    return RegionEncoder(
        token_id=token_id(tokenizer, BBOX_TOKEN),
        vision_hidden=int(vision.hidden_size),
        image_size=int(vision.image_size),
        patch_size=int(vision.patch_size),
        num_states=int(vision.num_hidden_layers) + 1,
        select_layer=int(select if isinstance(select, int) else select[-1]),
        llm_hidden=int(config.text_config.hidden_size),
        vision_tower=llava.model.vision_tower,
        box_frame=box_frame,
    )
