"""Answer-choice scoring by mean token cross-entropy, with the image and question computed once.

The paper picks the answer choice whose conversation has the lowest mean token cross-entropy. The
five conversations of a question share everything up to the answer (system prompt, image tokens,
question, ``ASSISTANT:``), so the shared prefix is prefilled once with a KV cache and the five
continuations run as one batch over that cache, expanded to one row per choice. Both scores are
derived from the same per-token cross-entropies:

* ``conversation`` (the paper's, the default): mean CE over every scored token of the whole
  conversation: system prompt, question and answer; image tokens and padding excluded.
* ``answer``: mean CE over the assistant's answer tokens only (the LM-loss tokens).

Token ``t`` is *predicted* by the logits at ``t - 1``, so position 0 (BOS) is never scored, whatever
its mask says. Numbers are computed in float32 from the model's logits, whatever the model dtype.

Works with any HF causal LM whose base model returns ``last_hidden_state`` and a ``cache``
(``LlavaForConditionalGeneration`` here; a PEFT wrapper is unwrapped).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import DynamicCache

from partonomy.models.core.hf_lm import base_and_head, cache_kwargs
from partonomy.models.core.hf_lm import to_device as _dev
from partonomy.models.core.scoring_prefix import common_prefix_len, forward_images, prefill_prefixes

if TYPE_CHECKING:
    from partonomy.models.backbones.hf_vlm import VlmAdapter
    from partonomy.models.core.processing import SegExample

ChoiceScore = Literal["conversation", "answer"]
Layout = Literal["expand", "packed"]
LAYOUTS: tuple[str, ...] = ("expand", "packed")
CHOICE_SCORES: tuple[str, ...] = ("conversation", "answer")


CE_CHUNK_TOKENS = 2048
"""Tokens per lm_head + cross-entropy chunk: bounds the (tokens, vocab) float32 logits in memory."""

UNIT_OVERHEAD_TOKENS = 256
"""What one more continuation forward costs, in padded tokens: :func:`length_buckets` splits the
packed rows only where that saves more padding than this (at 13B on an H200, one forward reads
26 GB of weights, ~5 ms, the compute of ~200 tokens)."""


@dataclass(frozen=True, eq=False)
class ChoiceGroup:
    """The answer-choice conversations of one question: K token sequences of one image.

    All tensors live on the CPU (they are indexed there; :func:`score_groups` moves what it needs).

    Attributes:
        input_ids: K int64 tensors ``(L_k,)``, image placeholder tokens included (as the LM sees them).
        scored: K bool tensors ``(L_k,)``: tokens counted by the ``conversation`` score (every
            non-pad, non-image token).
        answer: K bool tensors ``(L_k,)``: tokens counted by the ``answer`` score.
        pixel_values: ``(3, S, S)`` float, the LM's vision input for this image (an HF VLM:
            its image processor's output for this one image).
        keep_hidden: index of the choice whose last-layer hidden states to return (the correct
            answer, for teacher-forced masks), or None.
        vision: an HF VLM's other per-image tensors (``image_grid_thw`` / ``image_sizes``).
        share_key: groups of one :func:`score_groups` call with equal non-None keys are of the
            same image and share the computation of their common leading tokens (system prompt,
            image, ...; :mod:`~partonomy.models.core.scoring_prefix`). None: not shared.
    """

    input_ids: Sequence[torch.Tensor]
    scored: Sequence[torch.Tensor]
    answer: Sequence[torch.Tensor]
    pixel_values: torch.Tensor
    keep_hidden: int | None = None
    vision: Mapping[str, torch.Tensor] = field(default_factory=dict)
    share_key: Hashable | None = None

    def __post_init__(self) -> None:
        k = len(self.input_ids)
        if k == 0 or len(self.scored) != k or len(self.answer) != k:
            raise ValueError("a ChoiceGroup needs as many scored/answer masks as sequences (>= 1)")
        for ids, s, a in zip(self.input_ids, self.scored, self.answer, strict=True):
            if ids.ndim != 1 or s.shape != ids.shape or a.shape != ids.shape:
                raise ValueError("input_ids, scored and answer must be 1-D tensors of equal length")
            if s.dtype != torch.bool or a.dtype != torch.bool:
                raise ValueError("scored and answer must be bool tensors")
        if self.keep_hidden is not None and not 0 <= self.keep_hidden < k:
            raise ValueError(f"keep_hidden={self.keep_hidden} is not a choice index (0..{k - 1})")


@dataclass(eq=False)
class GroupScores:
    """Scores of one :class:`ChoiceGroup`.

    Attributes:
        conversation: ``(K,)`` float32 mean CE over the ``scored`` tokens (NaN if none).
        answer: ``(K,)`` float32 mean CE over the ``answer`` tokens (NaN if none).
        hidden: ``(L, d)`` last-layer hidden states (after the final norm) of the ``keep_hidden``
            choice, in the model dtype, or None.
    """

    conversation: torch.Tensor
    answer: torch.Tensor
    hidden: torch.Tensor | None = None

    def select(self, mode: str) -> list[float]:
        """The scores of one mode as Python floats, lower = better."""
        if mode not in CHOICE_SCORES:
            raise ValueError(f"choice_score must be one of {CHOICE_SCORES}, got {mode!r}")
        return [float(x) for x in getattr(self, mode)]


def conversation_mask(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, image_token_id: int
) -> torch.Tensor:
    """Tokens the paper's score counts: non-pad and not an image placeholder. Shapes as input."""
    return attention_mask.bool() & (input_ids != image_token_id)


def choice_group(
    examples: Sequence[SegExample],
    image_token_id: int,
    *,
    keep_hidden: int | None = None,
    share_key: Hashable | None = None,
) -> ChoiceGroup:
    """The :class:`ChoiceGroup` of one question's encoded answer choices (one image, K examples):
    ``scored`` by :func:`conversation_mask`, ``answer`` = each example's answer tokens."""
    answers = []
    for ex in examples:
        mask = torch.zeros_like(ex.input_ids, dtype=torch.bool)
        mask[ex.answer_start : ex.answer_end] = True
        answers.append(mask)
    return ChoiceGroup(
        input_ids=[ex.input_ids for ex in examples],
        scored=[
            conversation_mask(ex.input_ids, ex.attention_mask, image_token_id) for ex in examples
        ],
        answer=answers,
        pixel_values=examples[0].pixel_values,
        keep_hidden=keep_hidden,
        vision=examples[0].vision,
        share_key=share_key,
    )


def token_cross_entropy(
    head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, chunk: int = CE_CHUNK_TOKENS
) -> torch.Tensor:
    """Per-token CE ``(N,)`` float32 of ``targets (N,)`` given predicting ``hidden (N, d)``, chunked."""
    out = []
    for i in range(0, hidden.shape[0], chunk):
        logits = head(hidden[i : i + chunk]).float()
        out.append(F.cross_entropy(logits, targets[i : i + chunk], reduction="none"))
    if not out:
        return hidden.new_zeros(0, dtype=torch.float32)
    return torch.cat(out)


class _Sums:
    """Per-choice CE sums for both scores, accumulated on the device without host syncs.

    Every choice of every group is one global row. Index and weight tensors are built on the CPU
    from the (CPU) masks and moved once per call; token counts are known on the CPU up front.
    """

    def __init__(self, groups: Sequence[ChoiceGroup], device: torch.device) -> None:
        self.offsets: list[int] = []
        counts: list[list[float]] = []
        for g in groups:
            self.offsets.append(len(counts))
            for scored, answer in zip(g.scored, g.answer, strict=True):
                counts.append([float(scored[1:].sum()), float(answer[1:].sum())])
        self.counts = torch.tensor(counts, dtype=torch.float32).reshape(-1, 2)
        self.sums = torch.zeros((len(counts), 2), dtype=torch.float32, device=device)
        self.device = device

    def add(self, ce: torch.Tensor, rows: torch.Tensor, weights: torch.Tensor) -> None:
        """``sums[rows[i]] += ce[i] * weights[i]``; ``rows (M,)`` CPU int64, ``weights (M, 2)``."""
        if rows.numel():
            w = _dev(weights, self.device, torch.float32)
            self.sums.index_add_(0, _dev(rows, self.device), ce[:, None] * w)

    def scores(
        self, groups: Sequence[ChoiceGroup], hidden: list[torch.Tensor | None]
    ) -> list[GroupScores]:
        sums = self.sums.cpu()
        means = torch.where(
            self.counts > 0, sums / self.counts.clamp(min=1), torch.full_like(sums, float("nan"))
        )
        out = []
        for gi, g in enumerate(groups):
            block = means[self.offsets[gi] : self.offsets[gi] + len(g.input_ids)]
            out.append(GroupScores(block[:, 0].clone(), block[:, 1].clone(), hidden[gi]))
        return out


def _weights(g: ChoiceGroup, k: int, positions: torch.Tensor) -> torch.Tensor:
    """``(n, 2)`` float (scored, answer) flags of choice ``k`` at token ``positions``."""
    return torch.stack([g.scored[k][positions], g.answer[k][positions]], 1).float()


def _attention_impl(base: nn.Module) -> str:
    config = getattr(base, "config", None)
    text = getattr(config, "text_config", config)
    return str(
        getattr(text, "_attn_implementation", None) or getattr(config, "_attn_implementation", "")
    )


@dataclass(eq=False)
class _Unit:
    """One continuation forward: ``ids (U, T)`` (CPU) and where each choice's tokens sit in it.

    ``segments``: ``(unit row u, offset, length n, group gi, choice k)``, tokens at
    ``ids[u, offset : offset + n]``. ``run`` returns the hidden states ``(U, T, d)``.
    """

    ids: torch.Tensor
    segments: list[tuple[int, int, int, int, int]]
    group_of_row: list[int]
    positions: torch.Tensor  # (U, T) position ids
    key_mask: torch.Tensor | None  # (U, T) 1 = real token (expand layout)
    block_mask: torch.Tensor | None  # (U, T, T) bool, query may see key (packed layout)

    def run(
        self,
        base: nn.Module,
        cache: Any,
        prefix_mask: torch.Tensor,
        device: torch.device,
        dtype: torch.dtype,
        deltas: torch.Tensor | None = None,
    ) -> torch.Tensor:
        rows = _dev(torch.tensor(self.group_of_row), device)
        positions = _dev(self.positions, device)
        if deltas is not None:  # mrope: text after the image sits at index + delta
            positions = positions + deltas.to(device)[rows][:, None]
        prefix = prefix_mask[rows]  # (U, P_max)
        if self.block_mask is None:
            assert self.key_mask is not None
            attention: torch.Tensor = torch.cat([prefix, _dev(self.key_mask, device)], 1)
            # Each choice gets its own copy of its group's prefix rows (indexing with repeated
            # rows copies); the prefix cache itself stays unchanged for the next unit.
            data = [(layer.keys[rows], layer.values[rows]) for layer in cache.layers]
        else:
            # One row per group: its choices packed side by side, each seeing the real prefix and
            # its own earlier tokens only (a 4-D mask), so the prefix cache is not copied at all.
            # Padding queries see the prefix (never an all-masked softmax row).
            allowed = torch.cat(
                [
                    prefix[:, None, :].expand(-1, self.ids.shape[1], -1).bool(),
                    _dev(self.block_mask, device),
                ],
                2,
            )
            attention = torch.zeros(allowed.shape, dtype=dtype, device=device)
            attention.masked_fill_(~allowed, torch.finfo(dtype).min)
            attention = attention[:, None]  # (U, 1, T, P_max + T)
            data = [(layer.keys[rows], layer.values[rows]) for layer in cache.layers]
        out = base(
            input_ids=_dev(self.ids, device),
            attention_mask=attention,
            position_ids=positions,
            use_cache=True,
            **cache_kwargs(base, DynamicCache(ddp_cache_data=data)),
        )
        return out.last_hidden_state


def _expand_unit(
    seqs: Sequence[Sequence[torch.Tensor]], plen: Sequence[int], rows: Sequence[tuple[int, int]]
) -> _Unit:
    conts = [seqs[gi][k][plen[gi] :] for gi, k in rows]
    lengths = [int(c.shape[0]) for c in conts]
    width = max(lengths)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, c in enumerate(conts):
        ids[r, : lengths[r]] = c
        mask[r, : lengths[r]] = 1
    starts = torch.tensor([plen[gi] for gi, _ in rows])
    return _Unit(
        ids=ids,
        segments=[(r, 0, lengths[r], gi, k) for r, (gi, k) in enumerate(rows)],
        group_of_row=[gi for gi, _ in rows],
        positions=starts[:, None] + torch.arange(width)[None],
        key_mask=mask,
        block_mask=None,
    )


def length_buckets(lengths: Sequence[int], overhead: int = -1) -> list[list[int]]:
    """Indices of ``lengths`` in buckets of similar length, each bucket one right-padded batch:
    the split into consecutive runs of the sorted lengths that minimises padded tokens (rows x
    longest, summed over buckets) plus ``overhead`` (default :data:`UNIT_OVERHEAD_TOKENS`) per
    bucket. One bucket when splitting saves less than that; ``[]`` for no lengths.

    Example: lengths ``[67, 20, 22, 66, 21]``, overhead 10 -> ``[[1, 4, 2], [3, 0]]`` (66 + 134
    padded tokens + 20, against 335 + 10 in one bucket).
    """
    if overhead < 0:
        overhead = UNIT_OVERHEAD_TOKENS
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    ranked = [lengths[i] for i in order]
    n = len(ranked)
    # best[j]: (cost, start of the last bucket) of the first j sorted rows
    best: list[tuple[int, int]] = [(0, 0)]
    for j in range(1, n + 1):
        best.append(min((best[i][0] + (j - i) * ranked[j - 1] + overhead, i) for i in range(j)))
    buckets = []
    j = n
    while j > 0:
        i = best[j][1]
        buckets.append(order[i:j])
        j = i
    return buckets[::-1]


def _packed_unit(
    groups: Sequence[ChoiceGroup],
    seqs: Sequence[Sequence[torch.Tensor]],
    plen: Sequence[int],
    group_rows: Sequence[int],
) -> _Unit:
    totals = [sum(int(s.shape[0]) - plen[gi] for s in seqs[gi]) for gi in group_rows]
    width = max(totals)
    ids = torch.zeros((len(group_rows), width), dtype=torch.long)
    positions = torch.zeros((len(group_rows), width), dtype=torch.long)
    block = torch.zeros((len(group_rows), width, width), dtype=torch.bool)
    segments = []
    for u, gi in enumerate(group_rows):
        offset = 0
        for k, seq in enumerate(seqs[gi]):
            cont = seq[plen[gi] :]
            n = int(cont.shape[0])
            ids[u, offset : offset + n] = cont
            positions[u, offset : offset + n] = plen[gi] + torch.arange(n)
            block[u, offset : offset + n, offset : offset + n] = torch.ones(
                n, n, dtype=torch.bool
            ).tril()
            segments.append((u, offset, n, gi, k))
            offset += n
    return _Unit(
        ids=ids,
        segments=segments,
        group_of_row=list(group_rows),
        positions=positions,
        key_mask=None,
        block_mask=block,
    )


@torch.no_grad()
def score_groups(
    lm: nn.Module,
    groups: Sequence[ChoiceGroup],
    *,
    image_token_id: int,
    pad_token_id: int = 0,
    max_rows: int = 64,
    layout: Layout = "packed",
    vlm: VlmAdapter | None = None,
) -> list[GroupScores]:
    """Score every choice of every group, computing each group's shared prefix once.

    1. The common token prefix of each group (capped so each choice keeps >= 1 token) is prefilled
       for all groups with ``use_cache``
       (:func:`~partonomy.models.core.scoring_prefix.prefill_prefixes`: groups with one
       ``share_key`` compute their common root, image included, once); the prefix's per-token CE
       is computed once per group, only at tokens some choice scores (not at image tokens).
    2. The continuations run over that cache, with explicit position ids (a right-padded prefix
       leaves masked slots in the cache; positions stay those of the real sequence):

       * ``layout="expand"``: one row per choice, at most ``max_rows`` rows per forward, over the
         prefix cache expanded (copied) to one row per choice;
       * ``layout="packed"``: one row per group holding its choices side by side, with a 4-D mask
         so each choice sees the prefix and its own earlier tokens only: no cache copy and less
         padding (needs sdpa or eager attention; other implementations fall back to expand).

    Args:
        lm: an HF causal LM taking ``input_ids``, ``pixel_values``, ``attention_mask``,
            ``position_ids`` and ``cache`` (``LlavaForConditionalGeneration``), in eval mode.
        groups: the questions to score (tensors on the CPU; they are moved here).
        image_token_id: the image placeholder id; every image token must lie in the shared prefix.
        pad_token_id: any valid id, used for padding (padding is masked out).
        max_rows: continuation rows per forward (expand layout); bounds the expanded KV cache.
        layout: ``"expand"`` or ``"packed"`` (above); both give the same scores.
        vlm: the adapter when ``lm`` is an HF VLM other than LLaVA (its own vision inputs and
            positions, :meth:`~partonomy.models.backbones.hf_vlm.VlmAdapter.forward`).

    Returns:
        One :class:`GroupScores` per group, in order. Equal, up to float rounding, to scoring each
        choice with its own full forward (tested).

    Raises:
        ValueError: an image token after the shared prefix (the continuations carry no image).
    """
    if not groups:
        return []
    base, head = base_and_head(lm)
    weight = next(head.parameters())
    device, dtype = weight.device, weight.dtype
    seqs = [[ids.cpu() for ids in g.input_ids] for g in groups]
    plen = [common_prefix_len(s) for s in seqs]
    for gi, (s, p) in enumerate(zip(seqs, plen, strict=True)):
        if p < 1 or any(bool((ids[p:] == image_token_id).any()) for ids in s):
            raise ValueError(
                f"group {gi}: the choices share {p} leading tokens and an image token lies after "
                "them; the image and question must come before the answer"
            )
    n_groups = len(groups)
    prefixes = prefill_prefixes(
        base,
        vlm,
        groups,
        seqs,
        plen,
        image_token_id=image_token_id,
        pad_token_id=pad_token_id,
        device=device,
    )
    prefix_ids, prefix_hidden, cache = prefixes.ids, prefixes.hidden, prefixes.cache
    prefix_mask_dev, deltas = prefixes.cache_mask, prefixes.deltas
    sums = _Sums(groups, device)

    # Prefix CE: only at targets some choice scores (image tokens are most of the prefix); every
    # choice of a group then reuses its group's values with its own weights.
    src_g: list[torch.Tensor] = []
    src_t: list[torch.Tensor] = []
    ce_index: list[torch.Tensor] = []
    rows: list[torch.Tensor] = []
    weights: list[torch.Tensor] = []
    for gi, g in enumerate(groups):
        p = plen[gi]
        flags = torch.stack([m[1:p] | a[1:p] for m, a in zip(g.scored, g.answer, strict=True)])
        need = flags.any(0).nonzero().squeeze(1)  # predicting positions t, targets t + 1
        first = sum(int(t.numel()) for t in src_t)
        src_g.append(torch.full_like(need, gi))
        src_t.append(need)
        for k in range(len(g.input_ids)):
            ce_index.append(torch.arange(first, first + len(need)))
            rows.append(torch.full_like(need, sums.offsets[gi] + k))
            weights.append(_weights(g, k, need + 1))
    gidx, tidx = torch.cat(src_g), torch.cat(src_t)
    if gidx.numel():
        ce = token_cross_entropy(
            head,
            prefix_hidden[_dev(gidx, device), _dev(tidx, device)],
            _dev(prefix_ids[gidx, tidx + 1], device),
        )
        sums.add(ce[_dev(torch.cat(ce_index), device)], torch.cat(rows), torch.cat(weights))

    hidden_out: list[torch.Tensor | None] = [None] * n_groups
    if layout == "packed" and _attention_impl(base) not in ("sdpa", "eager"):
        layout = "expand"  # a custom 4-D mask needs sdpa or eager attention
    if layout == "packed":
        totals = [sum(int(ids.shape[0]) - plen[gi] for ids in seqs[gi]) for gi in range(n_groups)]
        units = [_packed_unit(groups, seqs, plen, rows) for rows in length_buckets(totals)]
    else:
        choice_rows = [(gi, k) for gi, s in enumerate(seqs) for k in range(len(s))]
        units = [
            _expand_unit(seqs, plen, choice_rows[i : i + max_rows])
            for i in range(0, len(choice_rows), max_rows)
        ]
    for unit in units:
        cont_hidden = unit.run(base, cache, prefix_mask_dev, device, dtype, deltas)
        # Token j of a continuation is predicted by the position before it: the prefix's last
        # hidden state for j = 0, the continuation's own hidden state j - 1 after that.
        first_g = torch.tensor([gi for _, _, _, gi, _ in unit.segments])
        first_p = torch.tensor([plen[gi] - 1 for _, _, _, gi, _ in unit.segments])
        rest_u = torch.cat([torch.full((n - 1,), u) for u, _, n, _, _ in unit.segments])
        rest_t = torch.cat([torch.arange(o, o + n - 1) for _, o, n, _, _ in unit.segments])
        preds = torch.cat(
            [
                prefix_hidden[_dev(first_g, device), _dev(first_p, device)],
                cont_hidden[_dev(rest_u, device), _dev(rest_t, device)],
            ]
        )
        first_ids = torch.tensor([int(seqs[gi][k][plen[gi]]) for _, _, _, gi, k in unit.segments])
        targets = _dev(torch.cat([first_ids, unit.ids[rest_u, rest_t + 1]]), device)
        seg_rows = [sums.offsets[gi] + k for _, _, _, gi, k in unit.segments]
        row_of = torch.tensor(
            seg_rows
            + [r for r, (_, _, n, _, _) in zip(seg_rows, unit.segments) for _ in range(n - 1)]
        )
        flags = torch.cat(
            [_weights(groups[gi], k, torch.tensor([plen[gi]])) for _, _, _, gi, k in unit.segments]
            + [
                _weights(groups[gi], k, torch.arange(plen[gi] + 1, plen[gi] + n))
                for _, _, n, gi, k in unit.segments
            ]
        )
        sums.add(token_cross_entropy(head, preds, targets), row_of, flags)
        for u, offset, n, gi, k in unit.segments:
            if groups[gi].keep_hidden == k:
                p = plen[gi]
                hidden_out[gi] = torch.cat(
                    [prefix_hidden[gi, :p], cont_hidden[u, offset : offset + n]]
                )
        del cont_hidden
    return sums.scores(groups, hidden_out)


@torch.no_grad()
def score_groups_full(
    lm: nn.Module,
    groups: Sequence[ChoiceGroup],
    *,
    pad_token_id: int = 0,
    max_rows: int = 64,
    vlm: VlmAdapter | None = None,
) -> list[GroupScores]:
    """The same scores with one full forward per choice (the original's way): the reference.

    Every choice is its own right-padded row, image included, so the shared prefix is recomputed
    K times. Kept for the benchmark (``benchmarks/bench_plum_inference.py``) and as a fallback.
    """
    base, head = base_and_head(lm)
    device = next(head.parameters()).device
    sums = _Sums(groups, device)
    hidden_out: list[torch.Tensor | None] = [None] * len(groups)
    all_rows = [(gi, k) for gi, g in enumerate(groups) for k in range(len(g.input_ids))]
    for start in range(0, len(all_rows), max_rows):
        chunk = all_rows[start : start + max_rows]
        seqs = [groups[gi].input_ids[k].cpu() for gi, k in chunk]
        n_max = max(int(s.shape[0]) for s in seqs)
        ids = torch.full((len(chunk), n_max), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), n_max), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, : s.shape[0]] = s
            mask[r, : s.shape[0]] = 1
        out, _ = forward_images(
            base, vlm, groups, [gi for gi, _ in chunk], ids.to(device), mask.to(device), False
        )
        hidden = out.last_hidden_state
        src_r, src_t, rows, weights = [], [], [], []
        for r, (gi, k) in enumerate(chunk):
            g = groups[gi]
            n = int(seqs[r].shape[0])
            need = (g.scored[k][1:n] | g.answer[k][1:n]).nonzero().squeeze(1) + 1  # targets
            src_r.append(torch.full_like(need, r))
            src_t.append(need)
            rows.append(torch.full_like(need, sums.offsets[gi] + k))
            weights.append(_weights(g, k, need))
            if g.keep_hidden == k:
                hidden_out[gi] = hidden[r, :n]
        rr, tt = torch.cat(src_r), torch.cat(src_t)
        ce = token_cross_entropy(
            head, hidden[rr.to(device), (tt - 1).to(device)], ids[rr, tt].to(device)
        )
        sums.add(ce, torch.cat(rows), torch.cat(weights))
    return sums.scores(groups, hidden_out)
