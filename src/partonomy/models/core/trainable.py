"""Which parameters train: the one rule, as a typed spec per family and ``set_trainable``.

A family's spec is a subclass of :class:`TrainableSpec` that adds a boolean field per module of its
own (PLUM: ``span_extractor``, ``span_query``, ``feedback_pooler``; LISA: ``text_hidden_fcs``) and
extends :attr:`TrainableSpec.GROUPS` with their module paths; its defaults are that family's
published recipe. Shared defaults (LISA's recipe, which PLUM and GLaMM kept, reference §4.2):

* trained: LoRA adapters (r 8, alpha 16, dropout 0.05, on ``q_proj``/``v_proj``) in the language
  model only; ``lm_head``; the embedding **rows of the added tokens** (``<image>``, ``<im_start>``,
  ``<im_end>``, ``[SEG]``...; the originals trained the whole matrix, we keep the pretrained rows
  fixed: a small trained :class:`NewRowsDelta` is added to those rows' embeddings, so the gradient,
  the optimiser state and the data-parallel traffic are ``n_new x D``, not ``vocab x D``);
  SAM's mask decoder.
* frozen: the vision tower, the multimodal projector, SAM's image encoder, the language model's
  base weights, and SAM's random-Fourier positional matrix (``shared_image_embedding``; a
  fixed buffer in the original SAM, a parameter in transformers' port).

Parameters shared between modules are trainable if any module that holds them is trainable
(e.g. the prompt encoder's mask-downscaling convs, which the feedback pooler reuses), with one
exception: ``sam_positional_matrix`` decides alone for the positional matrix, which transformers'
prompt encoder also holds (as ``shared_embedding``).

Module paths (relative to :class:`~partonomy.models.core.model.SegLMM`) follow
transformers' ``LlavaForConditionalGeneration`` and ``SamModel`` layouts; see
:attr:`TrainableSpec.GROUPS`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from torch.nn import functional as F

from partonomy.errors import ConfigError

log = logging.getLogger(__name__)

COMMON_GROUPS: dict[str, tuple[str, ...]] = {
    "language_model": ("llava.model.language_model",),
    "lm_head": ("llava.lm_head",),
    # LLaVA / LLaVA-OneVision name them vision_tower + multi_modal_projector; Qwen-VL's vision
    # module is `visual`, its projector the `merger` (and Qwen3-VL's deepstack mergers) inside it.
    "vision_tower": ("llava.model.vision_tower", "llava.model.visual"),
    "mm_projector": (
        "llava.model.multi_modal_projector",
        "llava.model.visual.merger",
        "llava.model.visual.deepstack_merger_list",
    ),
    "sam_image_encoder": ("mask_head.sam.vision_encoder",),
    "sam_prompt_encoder": ("mask_head.sam.prompt_encoder",),
    "sam_mask_decoder": ("mask_head.sam.mask_decoder",),
    "sam_positional_matrix": ("mask_head.sam.shared_image_embedding",),
}
"""Spec field -> module path prefixes (in the SegLMM) it controls, for the fields every family has.
A group's paths are alternatives for different backbones: at least one must exist. With Qwen-VL,
``vision_tower: true`` also trains the merger inside ``visual``."""

EMBEDDING_PATH = "llava.model.language_model.embed_tokens"
"""The input-embedding module, governed by :attr:`TrainableSpec.embeddings`."""

_ROW_MASK_HANDLE = "_partonomy_row_mask_handle"
NEW_ROWS = "new_rows"
"""Child of the input embedding holding the :class:`NewRowsDelta` (``embeddings: new_rows``)."""
_NEW_ROWS_HOOK = "_partonomy_new_rows_hook"


ALL_LINEAR = "all-linear"
"""``lora.target_modules: [all-linear]``: peft picks every ``nn.Linear`` of the language model by
module type (no names to know per architecture: Qwen's, LLaMA's and Qwen3's projections alike)."""


@dataclass
class LoraSpec:
    """LoRA adapters for the language model (peft ``LoraConfig``); ``target_modules`` are module
    names, or ``[all-linear]`` (:data:`ALL_LINEAR`)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])

    def __post_init__(self) -> None:
        if self.r <= 0 or self.alpha <= 0:
            raise ConfigError(f"trainable.lora: r and alpha must be positive (r={self.r})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"trainable.lora.dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ConfigError("trainable.lora.target_modules must name at least one module")


@dataclass
class TrainableSpec:
    """What trains: the fields every family has (see module docstring); families subclass it.

    Class attributes:
        GROUPS: spec field -> module path prefixes it controls.
        OPTIONAL_GROUPS: groups whose module may be absent (e.g. no feedback pooler).

    Attributes:
        language_model: ``"lora"`` (adapters only, base frozen), ``"full"`` (every LM weight), or
            ``"frozen"``. ``full`` is for random-init tiny models, where freezing makes no sense.
        lora: adapter settings, used when ``language_model == "lora"``.
        embeddings: ``"new_rows"`` (only added tokens' rows get gradients), ``"full"``, or
            ``"frozen"``. Ignored (treated as full) when ``language_model == "full"``.
        lm_head, vision_tower, mm_projector, sam_image_encoder, sam_prompt_encoder,
        sam_mask_decoder, sam_positional_matrix: train that module (all its parameters).
    """

    GROUPS: ClassVar[dict[str, tuple[str, ...]]] = COMMON_GROUPS
    OPTIONAL_GROUPS: ClassVar[tuple[str, ...]] = ()

    language_model: Literal["lora", "full", "frozen"] = "lora"
    lora: LoraSpec = field(default_factory=LoraSpec)
    embeddings: Literal["new_rows", "full", "frozen"] = "new_rows"
    lm_head: bool = True
    vision_tower: bool = False
    mm_projector: bool = False
    sam_image_encoder: bool = False
    sam_prompt_encoder: bool = False
    sam_mask_decoder: bool = True
    sam_positional_matrix: bool = False


def _has_prefix(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _absent(model: nn.Module, path: str) -> bool:
    """Whether ``path`` names a missing (or None) module of ``model``."""
    try:
        model.get_submodule(path)
    except AttributeError:
        return True
    return False


def _submodule(model: nn.Module, path: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise ConfigError(
            f"the model has no module '{path}'; set_trainable expects a SegLMM "
            "(llava = transformers LlavaForConditionalGeneration, mask_head.sam = SamModel)"
        ) from None


def has_lora(model: nn.Module) -> bool:
    """Whether LoRA adapters are already injected into the language model."""
    lm = _submodule(model, COMMON_GROUPS["language_model"][0])
    return any("lora_A" in n for n, _ in lm.named_parameters())


def apply_lora(model: nn.Module, spec: LoraSpec) -> None:
    """Inject LoRA adapters (adapter name ``"default"``) into the language model, in place.

    Only the language model is touched, so the vision tower, projector, SAM and PLUM heads can
    never get adapters whatever ``target_modules`` says. Calling it twice is a no-op.
    """
    if has_lora(model):
        return
    from peft import LoraConfig, inject_adapter_in_model

    lm = _submodule(model, COMMON_GROUPS["language_model"][0])
    config = LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=ALL_LINEAR
        if list(spec.target_modules) == [ALL_LINEAR]
        else list(spec.target_modules),
        bias="none",
    )
    inject_adapter_in_model(config, lm, adapter_name="default")


def merge_lora(model: nn.Module) -> int:
    """Fold LoRA adapters into their base weights (for inference); returns how many were merged."""
    from peft.tuners.lora import LoraLayer

    n = 0
    for module in model.modules():
        if isinstance(module, LoraLayer) and not module.merged:
            module.merge()
            n += 1
    return n


class NewRowsDelta(nn.Module):
    """The trained change of the added tokens' embedding rows (``embeddings: new_rows``).

    Attached to the (frozen) input embedding as its child ``new_rows``; a forward hook adds
    ``delta[k]`` to the embedding of every position holding ``ids[k]``. The embedding's effective
    row for ``ids[k]`` is ``weight[ids[k]] + delta[k]`` (:meth:`fold` writes it into the weight).
    ``delta`` starts at zero, so the model's function is unchanged until it trains, and with AdamW
    its updates are the ones the rows themselves would get (weight decay aside: it shrinks the
    delta, not the row).

    Args:
        ids: the token ids of the trained rows.
        vocab: rows of the embedding.
        dim: embedding width.
    """

    def __init__(self, ids: Sequence[int], vocab: int, dim: int) -> None:
        super().__init__()
        device = torch.get_default_device()
        self.delta = nn.Parameter(torch.zeros(len(ids), dim, device=device))  # fp32, (n_new, D)
        row_of = torch.full((vocab,), -1, dtype=torch.long, device=device)
        row_of[torch.as_tensor(list(ids), dtype=torch.long, device=device)] = torch.arange(
            len(ids), device=device
        )
        # Not in the state dict: it is derived from the ids (the vocab x int64 map is 256 KB
        # for LLaMA's 32k tokens).
        self.row_of: torch.Tensor
        self.ids: torch.Tensor
        self.register_buffer("row_of", row_of, persistent=False)
        self.register_buffer("ids", torch.as_tensor(list(ids), device=device), persistent=False)

    def forward(self, input_ids: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
        """``embeds`` (..., D) for ``input_ids`` (...) with the delta added at the new tokens.

        No host synchronisation: the sum is taken everywhere and kept where a new token is.
        """
        rows = self.row_of.to(input_ids.device)[input_ids]
        hit = (rows >= 0).unsqueeze(-1)
        delta = F.embedding(rows.clamp(min=0), self.delta)
        return torch.where(hit, embeds.float() + delta, embeds.float()).to(embeds.dtype)

    @torch.no_grad()
    def fold(self, weight: torch.Tensor) -> None:
        """Add the delta into ``weight``'s rows and zero it (same function, plain embedding)."""
        ids = self.ids.to(weight.device)
        weight[ids] = (weight[ids].float() + self.delta.to(weight.device)).to(weight.dtype)
        self.delta.zero_()


def _new_rows_hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
    # The child is looked up at call time: an engine (FSDP) may have wrapped it since.
    return module.get_submodule(NEW_ROWS)(args[0], output)  # type: ignore[no-any-return]


def attach_new_rows(embedding: nn.Embedding, ids: Sequence[int]) -> NewRowsDelta:
    """Give ``embedding`` a zero :class:`NewRowsDelta` for ``ids`` (replacing an earlier one)."""
    detach_new_rows(embedding)
    vocab, dim = embedding.weight.shape
    with torch.device(embedding.weight.device):
        delta = NewRowsDelta(ids, vocab, dim)
    embedding.add_module(NEW_ROWS, delta)
    setattr(embedding, _NEW_ROWS_HOOK, embedding.register_forward_hook(_new_rows_hook))
    return delta


def detach_new_rows(embedding: nn.Module) -> None:
    """Remove the :class:`NewRowsDelta` (unfolded) and its hook, if any."""
    handle = getattr(embedding, _NEW_ROWS_HOOK, None)
    if handle is not None:
        handle.remove()
        setattr(embedding, _NEW_ROWS_HOOK, None)
    if NEW_ROWS in embedding._modules:
        del embedding._modules[NEW_ROWS]


def fold_new_rows(model: nn.Module) -> bool:
    """Fold the input embedding's :class:`NewRowsDelta` into its weight and drop it (for
    inference). Returns whether there was one."""
    if _absent(model, EMBEDDING_PATH):
        return False
    embedding = _submodule(model, EMBEDDING_PATH)
    delta = embedding._modules.get(NEW_ROWS)
    if not isinstance(delta, NewRowsDelta):
        return False
    delta.fold(embedding.weight)  # type: ignore[arg-type]
    detach_new_rows(embedding)
    return True


def _register_row_mask(embedding: nn.Embedding, rows: Sequence[int]) -> None:
    """Zero the embedding gradient outside ``rows``; with AdamW and no weight decay the other rows
    then never change (their moments stay 0, so their update is exactly 0)."""
    old = getattr(embedding, _ROW_MASK_HANDLE, None)
    if old is not None:
        old.remove()
    weight = embedding.weight
    mask = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
    mask[list(rows)] = 1.0

    def hook(grad: torch.Tensor) -> torch.Tensor:
        return grad * mask.to(grad.device, grad.dtype)

    setattr(embedding, _ROW_MASK_HANDLE, weight.register_hook(hook))


def _clear_row_mask(embedding: nn.Module) -> None:
    old = getattr(embedding, _ROW_MASK_HANDLE, None)
    if old is not None:
        old.remove()
        setattr(embedding, _ROW_MASK_HANDLE, None)


def trainable_prefixes(spec: TrainableSpec) -> list[str]:
    """Module prefixes whose parameters all train under ``spec`` (LoRA and embeddings aside)."""
    out: list[str] = []
    for group, prefixes in spec.GROUPS.items():
        if group == "language_model":
            if spec.language_model == "full":
                out.extend(prefixes)
            continue
        if getattr(spec, group):
            out.extend(prefixes)
    return out


def set_trainable(
    model: nn.Module, spec: TrainableSpec, *, new_token_ids: Sequence[int] | None = None
) -> list[str]:
    """Apply ``spec`` to ``model`` in place: inject LoRA if asked, set ``requires_grad``, mask rows.

    Args:
        model: a SegLMM (module paths as in ``spec.GROUPS``).
        spec: what trains.
        new_token_ids: ids of the tokens added to the base vocabulary (their embedding rows train
            when ``spec.embeddings == "new_rows"``). Defaults to ``model.new_token_ids`` if the
            model has that attribute.

    Returns:
        The sorted names (as in ``model.named_parameters()``) of the trainable parameters
        (:func:`log_trainable` reports them; the training recipe does).

    Raises:
        ConfigError: the model lacks a module of the spec, or ``new_rows`` is asked without ids.
    """
    for group, paths in spec.GROUPS.items():
        if paths and group not in spec.OPTIONAL_GROUPS and all(_absent(model, p) for p in paths):
            _submodule(model, paths[0])  # raises, naming the expected module
    if spec.language_model == "lora":
        apply_lora(model, spec.lora)

    prefixes = trainable_prefixes(spec)
    embedding = _submodule(model, EMBEDDING_PATH)
    _clear_row_mask(embedding)
    detach_new_rows(embedding)
    embeddings = "full" if spec.language_model == "full" else spec.embeddings
    if embeddings != "frozen":
        prefixes.append(EMBEDDING_PATH)

    # Decide per parameter object (not per name) so shared parameters are handled once.
    train_ids: set[int] = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        is_adapter = spec.language_model == "lora" and ".lora_" in name
        if is_adapter or any(_has_prefix(name, p) for p in prefixes):
            train_ids.add(id(param))
    if not spec.sam_positional_matrix:
        # The prompt encoder holds the same positional module (``shared_embedding``); this
        # explicit rule wins over sharing, as the matrix is a fixed buffer in the original SAM.
        for path in spec.GROUPS.get("sam_positional_matrix", ()):
            if _absent(model, path):  # families without SAM (PixelLM, SegLLM)
                continue
            for param in _submodule(model, path).parameters():
                train_ids.discard(id(param))
    for param in model.parameters():
        param.requires_grad_(id(param) in train_ids)

    if embeddings == "new_rows":
        ids = new_token_ids if new_token_ids is not None else getattr(model, "new_token_ids", None)
        if ids is None:
            raise ConfigError(
                "trainable.embeddings is 'new_rows' but the ids of the added tokens are unknown; "
                "pass new_token_ids (e.g. range(tokenizer.vocab_size, len(tokenizer)))"
            )
        lm_head = _submodule(model, "llava.lm_head")
        tied = getattr(lm_head, "weight", None) is embedding.weight  # type: ignore[union-attr]
        if tied and not spec.lm_head:
            # The rows are also the output layer's: a delta on the input side would not reach
            # it, so the shared matrix trains with its other rows' gradients masked.
            _register_row_mask(embedding, list(ids))  # type: ignore[arg-type]
        elif not tied:
            embedding.weight.requires_grad_(False)  # type: ignore[union-attr]
            attach_new_rows(embedding, list(ids))  # type: ignore[arg-type]
        # (tied and a trained lm_head: every row trains anyway)

    return sorted(n for n, p in model.named_parameters() if p.requires_grad)


def log_trainable(model: nn.Module, names: Sequence[str]) -> None:
    """Log how much of ``model`` trains (INFO) and each trained tensor's name (DEBUG)."""
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_total = sum(p.numel() for p in model.parameters())
    log.info(
        "trainable: %d tensors, %d / %d parameters (%.3f%%)",
        len(names),
        n_train,
        n_total,
        100.0 * n_train / max(n_total, 1),
    )
    for name in names:
        log.debug("  trainable %s", name)
