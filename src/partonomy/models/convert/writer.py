"""Reading a release's tokenizer and writing a converted checkpoint (steps 1 and 4 of
:mod:`~partonomy.models.convert.common`'s engine): :func:`convert_checkpoint` for the families
that use :func:`~partonomy.models.convert.common.assemble`, and the parts SegLLM's converter
composes with its own assembly."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from partonomy.models.convert.common import (
    LLAVA_DIR,
    SAM_DIR,
    ConversionError,
    SourceLayout,
    assemble,
)
from partonomy.models.convert.source import SourceCheckpoint, detect_family


def load_clip(directory: str | Path) -> tuple[dict[str, torch.Tensor], Any]:
    """A local HF CLIP directory's tensors and vision config (``--vision-tower``)."""
    from partonomy.models.backbones.llava_v1_layout import _clip_config_from_dir

    clip = SourceCheckpoint(directory)
    return dict(clip.items()), _clip_config_from_dir(directory)


def _sources() -> tuple[str, ...]:
    # Imported late: the package's __init__ imports every family's converter, which imports us.
    from partonomy.models.convert import SOURCES

    return SOURCES


def open_tokenizer(src: Path) -> Any:
    """The release's own tokenizer, read from ``src``."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(src), local_files_only=True)
    except Exception as err:
        raise ConversionError(
            f"{src}: cannot load the tokenizer ({err}); the release directory must hold its "
            "tokenizer files (tokenizer.model / tokenizer.json, added_tokens.json)"
        ) from None


def append_image_token(tok: Any, src: Path, vocab: int) -> Any:
    """``tok`` checked against the embedding's ``vocab`` rows, with ``<image>`` appended (id
    ``vocab``) and a pad token (``unk``) when it has none."""
    from partonomy.models.backbones.llava import IMAGE_TOKEN

    if len(tok) != vocab:
        raise ConversionError(
            f"{src}: the tokenizer has {len(tok)} tokens but the embedding {vocab} rows"
        )
    if IMAGE_TOKEN in tok.get_vocab():
        raise ConversionError(f"{src}: the tokenizer already holds {IMAGE_TOKEN!r}")
    tok.add_special_tokens(
        {"additional_special_tokens": [IMAGE_TOKEN]}, replace_extra_special_tokens=False
    )
    if tok.convert_tokens_to_ids(IMAGE_TOKEN) != vocab:
        raise ConversionError(f"{src}: {IMAGE_TOKEN!r} did not get id {vocab}")
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token
    return tok


def _tokenizer(layout: SourceLayout, src: Path, vocab: int) -> Any:
    """The source tokenizer with its added tokens checked and ``<image>`` appended (id ``vocab``)."""
    tok = open_tokenizer(src)
    base = vocab - len(layout.added_tokens)
    vocab_map = tok.get_vocab()
    for i, token in enumerate(layout.added_tokens):
        found = vocab_map.get(token)
        if found != base + i:
            raise ConversionError(
                f"{src}: token {token!r} has id {found}, expected {base + i} "
                f"({layout.family} adds {', '.join(layout.added_tokens)} after the {base}-token "
                "vocabulary, in this order); the tokenizer does not belong to these weights"
            )
    return append_image_token(tok, src, vocab)


def open_source(src: Path, family: str) -> SourceCheckpoint:
    """``src`` read lazily, refused (naming what it looks like) unless it is ``family``'s."""
    source = SourceCheckpoint(src)
    looks = detect_family(source.keys(), source.config)
    if looks != family:
        what = f"a {looks} checkpoint" if looks else "no known family's checkpoint"
        hint = f"use --from {looks}" if looks in _sources() else "no converter for it"
        raise ConversionError(
            f"{src}: asked to convert it as {family}, but its keys look like {what} ({hint})"
        )
    return source


def write_checkpoint(
    src: Path,
    dst: Path,
    *,
    family: str,
    family_config: Any,
    llava_config: Any,
    llava_state: Mapping[str, torch.Tensor],
    tokenizer: Any,
    extra_state: Mapping[str, torch.Tensor],
    conversion: Mapping[str, Any],
    own_projector: bool = False,
    sam_config: Any | None = None,
    sam_state: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``src`` converted to ``dst.tmp/`` and rename it to ``dst`` (module docstring; no
    ``sam/`` without ``sam_config``).

    ``conversion`` is written as ``conversion.json``; ``own_projector`` writes the LLaVA state
    without a projector (the family's builder replaces it, the weights file fills it).
    """
    from safetensors.torch import save_file
    from transformers import LlavaForConditionalGeneration, SamModel

    from partonomy.io.atomic import atomic_write_json, atomic_write_text
    from partonomy.training.checkpoint import CONFIG, MANIFEST, WEIGHTS, Manifest
    from partonomy.training.config import TrainConfig, dump_train_config

    tmp = dst.parent / (dst.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    with torch.device("meta"):
        llava = LlavaForConditionalGeneration(llava_config)
    llava.load_state_dict(dict(llava_state), strict=not own_projector, assign=True)
    llava.save_pretrained(tmp / LLAVA_DIR, state_dict=dict(llava_state) if own_projector else None)
    tokenizer.save_pretrained(tmp / LLAVA_DIR)
    del llava
    if sam_config is not None:
        with torch.device("meta"):
            sam = SamModel(sam_config)
        sam.load_state_dict(dict(sam_state or {}), strict=True, assign=True)
        sam.save_pretrained(tmp / SAM_DIR)
        del sam
    save_file({k: v.contiguous() for k, v in extra_state.items()}, str(tmp / WEIGHTS))
    cfg = TrainConfig(family=family, run_dir=f"runs/{family}_{src.name}", model=family_config)
    atomic_write_text(tmp / CONFIG, dump_train_config(cfg))
    manifest = Manifest(
        step=0, trainable=sorted(extra_state), row_subsets={}, has_base=False, has_resume=False
    )
    atomic_write_json(tmp / MANIFEST, manifest.to_dict())
    atomic_write_json(tmp / "conversion.json", dict(conversion))
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)
    return dst


def convert_checkpoint(
    layout: SourceLayout,
    src: str | Path,
    dst: str | Path,
    *,
    vision_tower: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert a released ``layout.family`` directory ``src`` into our checkpoint ``dst``.

    Args:
        layout: the source family.
        src: the released HF-format directory (config.json, tokenizer, weights).
        dst: the checkpoint directory to write (``dst.tmp`` first, then renamed).
        vision_tower: a local HF CLIP directory (``openai/clip-vit-large-patch14`` for LISA and
            PLUM, ``-336`` for GLaMM); required, since the releases drop the tower.
        overwrite: replace an existing ``dst``.

    Returns:
        ``dst``.

    Raises:
        ConversionError: another family's directory (named), unknown or unfilled keys (listed),
            mismatched tokenizer, existing ``dst`` without ``overwrite``.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists() and not overwrite:
        raise ConversionError(f"{dst}: already exists (pass --overwrite to replace it)")
    source = open_source(src, layout.family)
    clip_state, clip_config = (None, None) if vision_tower is None else load_clip(vision_tower)
    parts = assemble(
        layout,
        source,
        source.config,
        clip_state=clip_state,
        clip_config=clip_config,
        where=str(src),
    )
    tokenizer = _tokenizer(layout, src, parts.image_token_id)
    return write_checkpoint(
        src,
        dst,
        family=layout.family,
        family_config=parts.family_config,
        llava_config=parts.llava_config,
        llava_state=parts.llava_state,
        tokenizer=tokenizer,
        extra_state=parts.extra_state,
        own_projector=layout.own_projector,
        sam_config=parts.sam_config,
        sam_state=parts.sam_state,
        conversion={
            "source": str(src.resolve()),
            "family": layout.family,
            "source_keys": len(source),
            "added_tokens": {t: tokenizer.convert_tokens_to_ids(t) for t in layout.added_tokens},
            "image_token_id": parts.image_token_id,
            "dropped": dict(sorted(parts.dropped.items())),
            "vision_tower": None if vision_tower is None else str(Path(vision_tower).resolve()),
        },
    )
