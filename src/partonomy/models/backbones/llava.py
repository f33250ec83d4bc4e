"""The language-vision backbone: HF ``LlavaForConditionalGeneration`` plus its LLaMA tokenizer.

Two checkpoint layouts load into the same HF module:

* ``llava_hf``: a ``save_pretrained`` directory of ``LlavaForConditionalGeneration`` (llava-hf).
* ``llava_v1``: the original LLaVA v1 layout PLUM was trained from (for example
  ``liuhaotian/llava-llama-2-13b-chat-lightning-preview``), mapped by
  :mod:`partonomy.models.backbones.llava_v1_layout`.

With ``pretrained=None`` a tiny random model is built from the size fields (offline, in seconds),
with the vocabulary of the real LLaMA-1/2 tokenizer (:mod:`partonomy.models.backbones.llama_vocab`).

The image placeholder ``<image>`` is a real vocabulary entry (HF LLaVA scatters the projected CLIP
patches over its positions and checks the count), so it is added as a special token; the v1 layout
also adds ``<im_start>``/``<im_end>`` first, so their ids (32000, 32001) match the original.
Families add their own tokens through ``load_tokenizer(..., extra_tokens=...)`` (LISA's ``[SEG]``;
GLaMM's ``<bbox>``, ``<point>``, ``[SEG]``, ``<p>``, ``</p>``); PLUM adds none, it tags spans instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from partonomy.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from transformers import LlavaForConditionalGeneration, PreTrainedTokenizerBase

IMAGE_TOKEN = "<image>"
IM_START_TOKEN = "<im_start>"
IM_END_TOKEN = "<im_end>"
LLAMA_TOKENIZER = "llama"
"""Tokenizer spec meaning LLaMA-1/2's real 32k vocabulary, shipped with this package (issue 11)."""
MISTRAL_SENTENCEPIECE = "mistral_sentencepiece"
"""Tokenizer spec meaning mistral-common's ``data/tokenizer.model.v1``: Mistral-7B's 32k SentencePiece
model (a different vocabulary from LLaMA's; kept for experiments under its true name)."""
RETIRED_TOKENIZERS = {
    "llama_sentencepiece": "it was Mistral-7B's SentencePiece model, not LLaMA's; use 'llama' (the "
    "real LLaMA-1/2 vocabulary) or 'mistral_sentencepiece' (that same Mistral model)"
}
"""Old tokenizer specs that are refused, with the reason and what to use instead."""
PRETRAINED_TOKENIZER = "pretrained"
"""Tokenizer spec meaning 'the tokenizer saved in the ``pretrained`` directory'."""

Dtype = Literal["float32", "bfloat16", "float16"]


@dataclass
class LlavaConfig:
    """Which LLaVA to build.

    Attributes:
        pretrained: local directory of an llava-hf checkpoint (``layout="llava_hf"``) or of an
            original LLaVA v1 checkpoint (``layout="llava_v1"``); None builds a tiny random model.
        layout: the key layout of ``pretrained`` (also decides whether ``<im_start>``/``<im_end>``
            wrap the image in prompts: only ``llava_v1``, as in the original ``mm_use_im_start_end``,
            unless ``im_start_end`` says otherwise).
        tokenizer: ``"llama"`` (LLaMA-1/2's vocabulary, shipped), ``"mistral_sentencepiece"``
            (mistral-common's Mistral-7B SentencePiece model),
            ``"pretrained"`` (the tokenizer files inside ``pretrained``), or a local tokenizer dir.
        vision_tower: local directory of a HF CLIP checkpoint (``CLIPModel`` or
            ``CLIPVisionModel``) for a v1 checkpoint that does not embed the vision tower weights.
        im_start_end: wrap the image in ``<im_start>``/``<im_end>`` (and add them to the tokenizer);
            None = only for ``layout="llava_v1"``. A converted LISA / GLaMM / PLUM checkpoint is
            ``llava_hf`` but was trained with them, so its config sets True.
        dtype: parameter dtype of the loaded model.
        text_hidden, text_layers, text_heads, text_intermediate: tiny LLaMA sizes (``pretrained=None``).
        vision_hidden, vision_layers, vision_heads, image_size, patch_size: tiny CLIP sizes; the
            LM sees ``(image_size // patch_size) ** 2`` image tokens.
    """

    pretrained: str | None = None
    layout: Literal["llava_hf", "llava_v1"] = "llava_hf"
    tokenizer: str = LLAMA_TOKENIZER
    vision_tower: str | None = None
    im_start_end: bool | None = None
    dtype: Dtype = "float32"
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate: int = 128
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    image_size: int = 64
    patch_size: int = 8

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"llava.image_size ({self.image_size}) must be a multiple of llava.patch_size "
                f"({self.patch_size})"
            )
        for name in ("text", "vision"):
            hidden, heads = getattr(self, f"{name}_hidden"), getattr(self, f"{name}_heads")
            if hidden % heads:
                raise ConfigError(
                    f"llava.{name}_hidden ({hidden}) must be divisible by llava.{name}_heads ({heads})"
                )


def uses_im_start_end(cfg: LlavaConfig) -> bool:
    """Whether prompts wrap the image in ``<im_start>``/``<im_end>`` (see :class:`LlavaConfig`)."""
    return cfg.layout == "llava_v1" if cfg.im_start_end is None else cfg.im_start_end


def torch_dtype(name: str) -> torch.dtype:
    """``"bfloat16"`` -> ``torch.bfloat16`` (and float32, float16)."""
    import torch

    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in table:
        raise ConfigError(f"dtype {name!r} is not one of {', '.join(table)}")
    return table[name]


def sentencepiece_model_path() -> Path:
    """Path of mistral-common's ``data/tokenizer.model.v1`` (Mistral-7B's SentencePiece, 32000 pieces)."""
    spec = importlib.util.find_spec("mistral_common")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "llava.tokenizer='mistral_sentencepiece' needs the mistral-common package "
            "(pip install mistral-common), or set llava.tokenizer to a local tokenizer directory"
        )
    path = Path(spec.origin).parent / "data" / "tokenizer.model.v1"
    if not path.is_file():
        raise ConfigError(f"{path} is missing from the installed mistral-common package")
    return path


def token_id(tokenizer: Any, token: str) -> int:
    """The id of one token (``convert_tokens_to_ids`` is typed for lists too)."""
    return int(tokenizer.convert_tokens_to_ids(token))


def load_tokenizer(
    cfg: LlavaConfig, extra_tokens: Sequence[str] = (), *, extra_first: bool = True
) -> PreTrainedTokenizerBase:
    """Load the tokenizer named by ``cfg.tokenizer`` and add the family's special tokens.

    Args:
        cfg: which tokenizer.
        extra_first: add ``extra_tokens`` before ``<im_start>``/``<im_end>`` (LISA) or after them
            (GLaMM), so the ids match the family's released checkpoints.
        extra_tokens: the family's own tokens (e.g. ``[SEG]``), in this order (LISA
            added ``[SEG]`` before ``<im_start>``/``<im_end>``, so the ids match its checkpoints).

    Returns:
        A fast tokenizer with ``extra_tokens``, then ``<im_start>`` and ``<im_end>`` (for
        ``layout="llava_v1"``), then ``<image>`` registered as special tokens (those it already
        holds are kept with their ids) and a pad token set (``<unk>`` when the
        tokenizer has none, as LLaVA does). BOS/EOS are not added by the processor's calls, which
        tokenise with ``add_special_tokens=False`` and place them explicitly.
    """
    from transformers import AutoTokenizer, LlamaTokenizer

    spec = cfg.tokenizer
    if spec in RETIRED_TOKENIZERS:
        raise ConfigError(f"llava.tokenizer={spec!r} is retired: {RETIRED_TOKENIZERS[spec]}")
    if spec == LLAMA_TOKENIZER:
        from partonomy.models.backbones.llama_vocab import load_llama_tokenizer

        tokenizer = load_llama_tokenizer()
    elif spec == MISTRAL_SENTENCEPIECE:
        # from_pretrained wants a directory holding 'tokenizer.model'; the package file has another name.
        model_file = sentencepiece_model_path()
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "tokenizer.model"
            try:
                os.symlink(model_file, target)
            except OSError:
                shutil.copyfile(model_file, target)
            tokenizer = LlamaTokenizer.from_pretrained(tmp)
    else:
        directory = cfg.pretrained if spec == PRETRAINED_TOKENIZER else spec
        if directory is None or not Path(directory).is_dir():
            raise ConfigError(
                f"llava.tokenizer={spec!r}: {directory!r} is not a local directory "
                "(use 'llama', 'mistral_sentencepiece', 'pretrained' with llava.pretrained set, "
                "or a tokenizer dir)"
            )
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    start_end = [IM_START_TOKEN, IM_END_TOKEN] if uses_im_start_end(cfg) else []
    extra = list(extra_tokens)
    wanted = [*extra, *start_end] if extra_first else [*start_end, *extra]
    wanted.append(IMAGE_TOKEN)
    missing = [t for t in wanted if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": missing}, replace_extra_special_tokens=False
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token
    return tokenizer


def _tiny_llava(
    cfg: LlavaConfig, tokenizer: PreTrainedTokenizerBase
) -> LlavaForConditionalGeneration:
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaForConditionalGeneration
    from transformers import LlavaConfig as HFLlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=cfg.vision_hidden,
        intermediate_size=4 * cfg.vision_hidden,
        num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.vision_heads,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        projection_dim=cfg.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.text_hidden,
        intermediate_size=cfg.text_intermediate,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads,
        num_key_value_heads=cfg.text_heads,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = HFLlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=token_id(tokenizer, IMAGE_TOKEN),
        image_seq_length=(cfg.image_size // cfg.patch_size) ** 2,
        vision_feature_layer=-2,  # LLaVA's mm_vision_select_layer
        vision_feature_select_strategy="default",  # drop CLS
    )
    return LlavaForConditionalGeneration(config)


def build_llava(
    cfg: LlavaConfig, tokenizer: PreTrainedTokenizerBase
) -> LlavaForConditionalGeneration:
    """Build or load the LLaVA backbone and fit its vocabulary to ``tokenizer``.

    Args:
        cfg: which model (see :class:`LlavaConfig`).
        tokenizer: from :func:`load_tokenizer` (its ``<image>`` id becomes ``image_token_index``).

    Returns:
        ``LlavaForConditionalGeneration`` in ``cfg.dtype``, on CPU, in train mode as HF leaves it;
        embeddings resized to ``len(tokenizer)`` when the tokenizer is larger (new rows are HF's mean
        init).

    Raises:
        ConfigError: ``pretrained`` is not a directory, or its image token disagrees with the tokenizer.
    """
    from transformers import LlavaForConditionalGeneration

    image_id = token_id(tokenizer, IMAGE_TOKEN)
    model: Any  # HF classes are loosely typed (configs are unions of dict/config/None)
    if cfg.pretrained is None:
        model = _tiny_llava(cfg, tokenizer)
    else:
        if not Path(cfg.pretrained).is_dir():
            raise ConfigError(
                f"llava.pretrained={cfg.pretrained!r} is not a local directory "
                "(nothing is downloaded; point it at a checkpoint on disk, or leave it empty for a tiny model)"
            )
        if cfg.layout == "llava_hf":
            model = LlavaForConditionalGeneration.from_pretrained(
                cfg.pretrained, dtype=torch_dtype(cfg.dtype), local_files_only=True
            )
        else:
            from partonomy.models.backbones.llava_v1_layout import load_llava_v1

            model = load_llava_v1(
                cfg.pretrained, vision_tower=cfg.vision_tower, dtype=torch_dtype(cfg.dtype)
            )
    if model.config.text_config.vocab_size < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    loaded_hf = cfg.pretrained is not None and cfg.layout == "llava_hf"
    if loaded_hf and model.config.image_token_index != image_id:
        raise ConfigError(
            f"llava.pretrained={cfg.pretrained!r}: the checkpoint's image_token_index is "
            f"{model.config.image_token_index} but the tokenizer's {IMAGE_TOKEN!r} is {image_id} "
            "(use llava.tokenizer='pretrained' to take the checkpoint's own tokenizer)"
        )
    model.config.image_token_index = image_id
    model.config.text_config.pad_token_id = tokenizer.pad_token_id
    return model.to(torch_dtype(cfg.dtype))


def image_seq_length(model: Any) -> int:
    """Number of LM positions one image occupies, derived from the vision config (never a literal).

    ``(image_size // patch_size) ** 2`` patches, plus the CLS token when the feature select strategy
    is ``"full"``.
    """
    vision = model.config.vision_config
    n = (vision.image_size // vision.patch_size) ** 2
    return n + 1 if model.config.vision_feature_select_strategy == "full" else n
