"""The conversion engine shared by every source family (LISA, GLaMM, PLUM, PixelLM, SegLLM):
routing and assembly here, reading the tokenizer and writing the checkpoint in
:mod:`~partonomy.models.convert.writer`.

A family supplies a :class:`SourceLayout`: how each released key routes (to the LLaVA backbone in
the original LLaVA-v1 layout, to SAM in the segment-anything layout, to one of our own modules, or
dropped with a reason), the tokens it added in id order, and how to build its own modules and typed
config from the sizes found. The engine then:

1. reads the source lazily (:class:`~partonomy.models.convert.source.SourceCheckpoint`) and refuses
   a directory that looks like another family;
2. routes every key; an unknown key is an error (strict);
3. assembles the HF ``LlavaForConditionalGeneration`` state (through
   :mod:`partonomy.models.backbones.llava_v1_layout`, the CLIP tower from ``--vision-tower`` because
   the releases drop it) with one new embedding and ``lm_head`` row for ``<image>`` (the mean of the
   existing rows), the HF ``SamModel`` state (:mod:`partonomy.models.backbones.sam_layout`) and our
   modules' state; each is compared key by key and shape by shape with the module built on the meta
   device, and any missing, unexpected or mis-shaped key is an error listing them;
4. writes ``DST.tmp/`` and renames it to ``DST``: ``llava/`` (``save_pretrained`` + the source
   tokenizer with ``<image>`` appended), ``sam/`` (``save_pretrained``), ``weights.safetensors``
   (every parameter outside the two backbones), ``config.yaml`` (a ``TrainConfig`` with the family
   and a model section naming ``llava`` and ``sam`` relative to the checkpoint), ``manifest.json``
   and ``conversion.json`` (source, dropped keys and why, token ids).

Every step works on meta tensors as well (:func:`assemble`), which is how the 7B/13B key and shape
checks run without weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from partonomy.errors import ConfigError

EMBED = "model.language_model.embed_tokens.weight"
"""The converted LLaVA's input-embedding key."""
LLAVA_DIR = "llava"
SAM_DIR = "sam"
SHOWN = 20
"""How many offending keys an error lists (with the total count)."""


ClipAdapter = Callable[[Mapping[str, torch.Tensor], Any], tuple[dict[str, torch.Tensor], Any]]
"""``(clip_state, clip_config) -> (clip_state, clip_config)``, applied to ``--vision-tower``."""


@dataclass(frozen=True)
class Route:
    """Where one source key goes.

    Attributes:
        part: ``"llava"`` (a LLaVA-v1-layout key), ``"sam"`` (a segment-anything key), ``"extra"``
            (a key of our SegLMM outside the backbones), ``"alias"`` (a duplicate of ``target``, a
            source key: dropped when ``target`` exists with the same values, else used in its place)
            or ``"drop"`` (``target`` holds the reason).
        target: the key in that part's layout (or the reason, for ``drop``).
    """

    part: str
    target: str


@dataclass
class Assembled:
    """Target state dicts and configs (tensors may be meta tensors).

    Attributes:
        llava_state, llava_config: HF ``LlavaForConditionalGeneration`` state dict and config.
        sam_state, sam_config: HF ``SamModel`` state dict and config (empty and None without SAM).
        extra_state: our SegLMM keys outside the backbones (``prompt_source.*``, ...).
        extra_modules: prefix -> our module, built on the meta device (the key/shape reference).
        family_config: the family's typed model config (backbone paths relative to the checkpoint).
        image_token_id: id of the appended ``<image>``.
        dropped: source key -> why it was dropped.
    """

    llava_state: dict[str, torch.Tensor]
    llava_config: Any
    sam_state: dict[str, torch.Tensor]
    sam_config: Any
    extra_state: dict[str, torch.Tensor]
    extra_modules: dict[str, nn.Module]
    family_config: Any
    image_token_id: int
    dropped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sizes:
    """What a family needs to build its own modules and config.

    Attributes:
        llava_config: the HF Llava config of the converted backbone.
        sam_config: the HF SAM config (None for a family without SAM).
        token_ids: the family's added tokens -> ids.
        extra: the routed source tensors of the family's own modules, by target key.
        dtype: the parameter dtype name (``"bfloat16"`` ...).
    """

    llava_config: Any
    sam_config: Any
    token_ids: Mapping[str, int]
    extra: Mapping[str, torch.Tensor]
    dtype: str


@dataclass(frozen=True)
class SourceLayout:
    """One released family's layout (module docstring).

    Attributes:
        family: the family name (``lisa``).
        added_tokens: the tokens the original code added to the 32k LLaMA vocabulary, in id order.
        route: source key -> :class:`Route`, or None for an unknown key.
        build: ``Sizes -> (family_config, {prefix: module built on meta})``.
        released: names of the released checkpoints this layout reads (for messages and docs).
        sam: the release holds a SAM (False for PixelLM: no ``sam/`` is written, ``sam_config`` is
            None in :class:`Sizes`).
        own_projector: the family's ``mm_projector`` is its own module, not transformers' (PixelLM's
            is ``C -> 2d -> d``): its converted keys (``model.multi_modal_projector.*``) leave the
            LLaVA state for the family's modules, under ``llava.``, and the saved ``llava/`` lacks it.
        adapt_clip: ``(clip_state, clip_config) -> (clip_state, clip_config)`` applied to the
            ``--vision-tower`` weights before assembly (PixelLM: positions resized to 448).
    """

    family: str
    added_tokens: tuple[str, ...]
    route: Callable[[str], Route | None]
    build: Callable[[Sizes], tuple[Any, dict[str, nn.Module]]]
    released: tuple[str, ...] = ()
    sam: bool = True
    own_projector: bool = False
    adapt_clip: ClipAdapter | None = None


class ConversionError(ConfigError):
    """A released checkpoint cannot be converted (the message says which keys and what to do)."""


def listing(title: str, keys: Sequence[str]) -> str:
    """``title (n): k1, k2, ...`` with the first :data:`SHOWN` keys."""
    keys = sorted(keys)
    more = f", ... ({len(keys) - SHOWN} more)" if len(keys) > SHOWN else ""
    return f"{title} ({len(keys)}): {', '.join(keys[:SHOWN])}{more}"


def compare(
    where: str,
    got: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    hint: str,
) -> None:
    """Raise :class:`ConversionError` unless ``got`` has exactly ``expected``'s keys and shapes."""
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    shapes = [
        f"{k} {tuple(got[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected
        if k in got and tuple(got[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(listing("target keys not filled", missing))
    if extra:
        problems.append(listing("source keys with no target", extra))
    if shapes:
        problems.append(listing("shape mismatches", shapes))
    if problems:
        raise ConversionError(f"{where}: " + "; ".join(problems) + f" ({hint})")


def meta_state(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """``module``'s state dict (persistent entries), keys prefixed."""
    return {prefix + k: v for k, v in module.state_dict().items()}


def dtype_name(dtype: torch.dtype) -> str:
    table = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}
    if dtype not in table:
        raise ConversionError(f"unsupported parameter dtype {dtype} (expected bf16, fp16 or fp32)")
    return table[dtype]


def route_all(
    layout: SourceLayout, source: Mapping[str, torch.Tensor], where: str
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Route every source key: ``({part: {target: source_key}}, {dropped_key: reason})``.

    Aliases are resolved here: an alias whose target exists is dropped after a shape check (and a
    value check on real tensors); one whose target is absent stands in for it.

    Raises:
        ConversionError: unknown keys, or an alias that differs from the key it duplicates.
    """
    parts: dict[str, dict[str, str]] = {"llava": {}, "sam": {}, "extra": {}}
    dropped: dict[str, str] = {}
    unknown: list[str] = []
    aliases: dict[str, str] = {}
    for key in source:
        route = layout.route(key)
        if route is None:
            unknown.append(key)
        elif route.part == "drop":
            dropped[key] = route.target
        elif route.part == "alias":
            aliases[key] = route.target
        else:
            parts[route.part][route.target] = key
    if unknown:
        raise ConversionError(
            f"{where}: "
            + listing(f"keys that are not part of the released {layout.family} layout", unknown)
            + f" (is this a {layout.family} checkpoint of a variant with extra modules? "
            "Converting it would lose them)"
        )
    for alias, canonical in aliases.items():
        if canonical in source:
            a, b = source[alias], source[canonical]
            same = a.shape == b.shape and (a.is_meta or b.is_meta or torch.equal(a, b))
            if not same:
                raise ConversionError(
                    f"{where}: {alias!r} should duplicate {canonical!r} (shared weights) but differs"
                )
            dropped[alias] = f"duplicate of {canonical} (the same tensor, shared in the original)"
            continue
        route = layout.route(canonical)
        assert route is not None and route.part in parts
        parts[route.part][route.target] = alias
    return parts, dropped


def _append_mean_row(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` ``(V, d)`` with one more row, the mean of the others (the new ``<image>`` row)."""
    if weight.is_meta:
        return torch.empty(
            (weight.shape[0] + 1, weight.shape[1]), dtype=weight.dtype, device="meta"
        )
    row = weight.float().mean(0, keepdim=True).to(weight.dtype)
    return torch.cat([weight, row])


@dataclass
class LlavaParts:
    """The converted LLaVA backbone (:func:`assemble_llava`).

    Attributes:
        state: HF ``LlavaForConditionalGeneration`` state dict, with the ``<image>`` rows appended
            (without the projector when ``own_projector``).
        config: its HF Llava config.
        vision_config: the CLIP vision config used.
        image_token_id: id of the appended ``<image>`` (the source vocabulary's size).
        dtype: the source's parameter dtype.
        moved: the projector's converted keys under ``llava.`` (``own_projector`` only).
    """

    state: dict[str, torch.Tensor]
    config: Any
    vision_config: Any
    image_token_id: int
    dtype: torch.dtype
    moved: dict[str, torch.Tensor]


def assemble_llava(
    llava_src: Mapping[str, torch.Tensor],
    config_json: Mapping[str, Any],
    *,
    clip_state: Mapping[str, torch.Tensor] | None,
    clip_config: Any | None,
    where: str,
    own_projector: bool = False,
    adapt_clip: ClipAdapter | None = None,
) -> LlavaParts:
    """The HF LLaVA state and config from LLaVA-v1-layout source tensors (real or meta).

    Raises:
        ConversionError: no embedding, no CLIP tower, or unfilled / mis-shaped keys (listed).
    """
    from transformers import LlavaForConditionalGeneration

    from partonomy.models.backbones.llava_v1_layout import (
        HF_PROJECTOR,
        HF_VISION_PREFIX,
        V1_VISION_PREFIX,
        convert_llava_v1_state_dict,
        infer_clip_vision_config,
        projector_kind,
        translate_llava_v1_config,
    )

    if "model.embed_tokens.weight" not in llava_src:
        raise ConversionError(
            f"{where}: no model.embed_tokens.weight; not a LLaVA-based checkpoint"
        )
    has_tower = any(k.startswith(V1_VISION_PREFIX) for k in llava_src)
    if not has_tower and clip_state is None:
        raise ConversionError(
            f"{where}: the release holds no CLIP weights (the original merge scripts drop every "
            f"'vision_tower' key); pass --vision-tower with a local copy of "
            f"{config_json.get('mm_vision_tower') or config_json.get('vision_tower') or 'the CLIP tower'}"
        )
    dtype = llava_src["model.embed_tokens.weight"].dtype
    if adapt_clip is not None and clip_state is not None and not has_tower:
        clip_state, clip_config = adapt_clip(clip_state, clip_config)
    hf = convert_llava_v1_state_dict(llava_src, None if has_tower else clip_state)
    hf = {k: v.to(dtype) if v.dtype != dtype else v for k, v in hf.items()}
    vocab = int(hf[EMBED].shape[0])
    for key in (EMBED, "lm_head.weight"):
        hf[key] = _append_mean_row(hf[key])
    vision = {
        k[len(HF_VISION_PREFIX) :]: v for k, v in hf.items() if k.startswith(HF_VISION_PREFIX)
    }
    vision_cfg = clip_config if (clip_config is not None and not has_tower) else None
    vision_cfg = vision_cfg or infer_clip_vision_config(vision)
    llava_config = translate_llava_v1_config(
        {**config_json, "vocab_size": vocab + 1},
        vision_cfg,
        image_token_index=vocab,
        projector=projector_kind(llava_src),
    )
    with torch.device("meta"):
        reference = LlavaForConditionalGeneration(llava_config)
    expected = meta_state(reference)
    moved: dict[str, torch.Tensor] = {}
    if own_projector:
        moved = {f"llava.{k}": hf.pop(k) for k in list(hf) if k.startswith(HF_PROJECTOR)}
        expected = {k: v for k, v in expected.items() if not k.startswith(HF_PROJECTOR)}
    compare(
        f"{where} (LLaVA backbone)",
        hf,
        expected,
        "the LLaVA keys must be the LLaMA decoder, lm_head, mm_projector and the CLIP tower",
    )
    return LlavaParts(hf, llava_config, vision_cfg, vocab, dtype, moved)


def check_modules(
    where: str, family: str, extra: Mapping[str, torch.Tensor], modules: Mapping[str, nn.Module]
) -> None:
    """Raise unless ``extra`` fills exactly the state of ``modules`` (``{prefix: meta module}``)."""
    expected: dict[str, torch.Tensor] = {}
    for prefix, module in modules.items():
        expected.update(meta_state(module, prefix + "."))
    compare(
        f"{where} ({family} modules)",
        extra,
        expected,
        f"the {family} heads of the release must match ours one to one",
    )


def assemble(
    layout: SourceLayout,
    source: Mapping[str, torch.Tensor],
    config_json: Mapping[str, Any],
    *,
    clip_state: Mapping[str, torch.Tensor] | None,
    clip_config: Any | None,
    where: str = "source",
) -> Assembled:
    """Every target state dict and config from source tensors (real or meta); no files written.

    Args:
        layout: the source family's layout.
        source: released key -> tensor.
        config_json: the released ``config.json``.
        clip_state: a HF CLIP checkpoint's tensors (``vision_model.*`` or bare), None when the
            source embeds its tower.
        clip_config: the ``CLIPVisionConfig`` of ``clip_state``, or None to infer from shapes.
        where: the source's name for messages.

    Raises:
        ConversionError: unknown, unfilled or mis-shaped keys (listed), or no CLIP tower.
    """
    from transformers import SamModel

    from partonomy.models.backbones.sam_layout import convert_sam_state_dict, infer_sam_config

    parts, dropped = route_all(layout, source, where)
    llava = assemble_llava(
        {k: source[s] for k, s in parts["llava"].items()},
        config_json,
        clip_state=clip_state,
        clip_config=clip_config,
        where=where,
        own_projector=layout.own_projector,
        adapt_clip=layout.adapt_clip,
    )
    sam_src = {k: source[s] for k, s in parts["sam"].items()}
    sam_state: dict[str, torch.Tensor] = {}
    sam_config = None
    if layout.sam:
        if not sam_src:
            raise ConversionError(f"{where}: no SAM weights found")
        try:
            sam_config = infer_sam_config(sam_src)
        except ConfigError as err:
            raise ConversionError(f"{where} (SAM): {err}") from None
        sam_state = convert_sam_state_dict(sam_src)
        with torch.device("meta"):
            sam_reference = SamModel(sam_config)
        compare(f"{where} (SAM)", sam_state, meta_state(sam_reference), "SAM must be complete")
    base = llava.image_token_id - len(layout.added_tokens)
    token_ids = {t: base + i for i, t in enumerate(layout.added_tokens)}
    extra = {k: source[s] for k, s in parts["extra"].items()} | llava.moved
    sizes = Sizes(llava.config, sam_config, token_ids, extra, dtype_name(llava.dtype))
    family_config, modules = layout.build(sizes)
    check_modules(where, layout.family, extra, modules)
    return Assembled(
        llava_state=llava.state,
        llava_config=llava.config,
        sam_state=sam_state,
        sam_config=sam_config,
        extra_state=extra,
        extra_modules=modules,
        family_config=family_config,
        image_token_id=llava.image_token_id,
        dropped=dropped,
    )
