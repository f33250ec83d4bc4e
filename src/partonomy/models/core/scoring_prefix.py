"""The shared prefixes of answer-choice scoring, prefilled once into a KV cache
(:func:`prefill_prefixes`, used by :func:`~partonomy.models.core.scoring.score_groups`).

A group's prefix is what all its choices share (system prompt, image, question, ``ASSISTANT:``).
Groups with equal :attr:`~partonomy.models.core.scoring.ChoiceGroup.share_key` (the predictor
gives every group of one image the image's content key, e.g. a part_to_whole question's part and
object questions) also share a *root*: the tokens all their choices have in common, at least the
system prompt and the image. Each root is prefilled once (with the image), and each group's rest of
its prefix runs over the root's cache as a continuation, so the image is not recomputed for the
second question. The result is laid out as if every group had been prefilled alone (hidden states
at their positions, position ids of the real sequence); only the cache has a gap of masked slots
between a root and its rest, which :attr:`Prefixes.cache_mask` describes.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import DynamicCache

from partonomy.models.core.hf_lm import cache_kwargs, output_cache
from partonomy.models.core.hf_lm import to_device as _dev

if TYPE_CHECKING:
    from partonomy.models.backbones.hf_vlm import VlmAdapter
    from partonomy.models.core.scoring import ChoiceGroup


@dataclass(eq=False)
class Prefixes:
    """The prefilled prefixes of ``G`` groups.

    Attributes:
        ids: ``(G, P)`` int64 CPU, group ``g``'s prefix tokens at ``[g, :plen[g]]``, pad after.
        hidden: ``(G, P, d)`` their last-layer hidden states (model dtype, on the device).
        cache: the KV cache, row ``g`` holding group ``g``'s prefix.
        cache_mask: ``(G, S)`` int64 on the device, 1 where row ``g``'s cache slot is one of its
            prefix tokens (``S`` = cache length; equal to ``ids``' layout without roots).
        deltas: ``(G,)`` mrope position deltas of an HF VLM, or None.
    """

    ids: torch.Tensor
    hidden: torch.Tensor
    cache: Any
    cache_mask: torch.Tensor
    deltas: torch.Tensor | None


def common_prefix_len(seqs: Sequence[torch.Tensor]) -> int:
    """Longest common prefix, capped so every sequence keeps at least one continuation token."""
    n = min(int(s.shape[0]) for s in seqs) - 1
    first = seqs[0]
    for s in seqs[1:]:
        diff = (s[:n] != first[:n]).nonzero()
        if diff.numel():
            n = int(diff[0, 0])
    return n


def forward_images(
    base: nn.Module,
    vlm: VlmAdapter | None,
    groups: Sequence[ChoiceGroup],
    group_of_row: Sequence[int],
    ids: torch.Tensor,
    mask: torch.Tensor,
    use_cache: bool,
) -> tuple[Any, torch.Tensor | None]:
    """The base model over ``ids (R, L)`` with row ``r`` seeing group ``group_of_row[r]``'s image:
    ``(output, mrope position deltas (R,) or None)``."""
    device = ids.device
    dtype = next(base.parameters()).dtype
    if vlm is None:
        pixel_values = torch.stack([groups[g].pixel_values for g in group_of_row])
        out = base(
            input_ids=ids,
            pixel_values=_dev(pixel_values, device, dtype),
            attention_mask=mask,
            use_cache=use_cache,
        )
        return out, None
    from partonomy.models.backbones.preprocess import VisionInput

    pixel_values, extras = vlm.collate(
        [VisionInput(groups[g].pixel_values, dict(groups[g].vision)) for g in group_of_row]
    )
    rows = vlm.rows(pixel_values, extras, torch.arange(len(group_of_row)))
    return vlm.forward(
        base, ids, mask, {k: v.to(device) for k, v in rows.items()}, use_cache=use_cache
    )


def prefill_prefixes(
    base: nn.Module,
    vlm: VlmAdapter | None,
    groups: Sequence[ChoiceGroup],
    seqs: Sequence[Sequence[torch.Tensor]],
    plen: Sequence[int],
    *,
    image_token_id: int,
    pad_token_id: int,
    device: torch.device,
) -> Prefixes:
    """Prefill group ``g``'s prefix ``seqs[g][0][:plen[g]]`` for every group (module docstring).

    Groups share roots only on the LLaVA path (``vlm`` None) and only when every image token lies
    in the root; otherwise (or when no two groups share a key) each group is prefilled alone,
    as one right-padded batch.
    """
    clusters: dict[Hashable, list[int]] = {}
    for gi, g in enumerate(groups):
        key = ("group", gi) if g.share_key is None else ("key", g.share_key)
        clusters.setdefault(key, []).append(gi)
    members = list(clusters.values())
    if vlm is None and len(members) < len(groups):
        roots = []
        for m in members:
            r = common_prefix_len([s for gi in m for s in seqs[gi]])
            roots.append(min([r, *(plen[gi] for gi in m)]))
        rests = all(
            not bool((seqs[gi][0][root : plen[gi]] == image_token_id).any())
            for m, root in zip(members, roots, strict=True)
            for gi in m
        )
        if rests and min(roots) >= 1:
            return _rooted(base, groups, seqs, plen, members, roots, pad_token_id, device)
    ids, mask = _right_padded([seqs[gi][0][: plen[gi]] for gi in range(len(groups))], pad_token_id)
    mask_dev = _dev(mask, device)
    out, deltas = forward_images(
        base, vlm, groups, list(range(len(groups))), _dev(ids, device), mask_dev, True
    )
    return Prefixes(ids, out.last_hidden_state, output_cache(out), mask_dev, deltas)


def _right_padded(
    rows: Sequence[torch.Tensor], pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(R, W)`` ids and 0/1 mask of ``rows`` right-padded to the longest (``W`` >= 1)."""
    width = max([1, *(int(r.shape[0]) for r in rows)])
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = 1
    return ids, mask


def _rooted(
    base: nn.Module,
    groups: Sequence[ChoiceGroup],
    seqs: Sequence[Sequence[torch.Tensor]],
    plen: Sequence[int],
    members: Sequence[Sequence[int]],
    roots: Sequence[int],
    pad_token_id: int,
    device: torch.device,
) -> Prefixes:
    """Roots prefilled once per cluster (with the image), then the rest of the prefix of every
    group that has one, over a copy of its root's cache rows, as one right-padded continuation
    batch. A group whose prefix is its root (a lone group, or the first question of an image)
    takes no row in that batch: padding every group to the longest rest cost more than sharing
    saved (benchmarks.md, issue 12)."""
    n_groups = len(groups)
    cluster_of = [0] * n_groups
    root_of = [0] * n_groups
    for c, (m, root) in enumerate(zip(members, roots, strict=True)):
        for gi in m:
            cluster_of[gi], root_of[gi] = c, root
    root_ids, root_mask = _right_padded(
        [seqs[m[0]][0][:root] for m, root in zip(members, roots, strict=True)], pad_token_id
    )
    root_mask_dev = _dev(root_mask, device)
    out, _ = forward_images(
        base, None, groups, [m[0] for m in members], _dev(root_ids, device), root_mask_dev, True
    )
    root_hidden, root_cache = out.last_hidden_state, output_cache(out)
    rows = _dev(torch.tensor(cluster_of), device)
    resting = [gi for gi in range(n_groups) if plen[gi] > root_of[gi]]
    rest_ids, rest_mask = _right_padded(
        [seqs[gi][0][root_of[gi] : plen[gi]] for gi in resting], pad_token_id
    )
    width = rest_ids.shape[1] if resting else 0
    cache_mask = torch.cat([root_mask_dev[rows], root_mask_dev.new_zeros((n_groups, width))], 1)
    layers = [(layer.keys[rows], layer.values[rows]) for layer in root_cache.layers]
    rest_hidden = root_hidden[:0]
    if resting:
        sub = _dev(torch.tensor(resting), device)
        rest_cache_mask = torch.cat([root_mask_dev[rows[sub]], _dev(rest_mask, device)], 1)
        positions = torch.tensor([root_of[gi] for gi in resting])[:, None] + torch.arange(width)
        # Each resting group gets its own copy of its root's rows; padded rest tokens still see
        # the root, so no attention row is fully masked.
        rest = base(
            input_ids=_dev(rest_ids, device),
            attention_mask=rest_cache_mask,
            position_ids=_dev(positions, device),
            use_cache=True,
            **cache_kwargs(
                base, DynamicCache(ddp_cache_data=[(k[sub], v[sub]) for k, v in layers])
            ),
        )
        rest_hidden = rest.last_hidden_state
        cache_mask[sub] = rest_cache_mask
        # every group's cache row: its root's slots, then its rest's (masked for groups without)
        grown = []
        for (keys, values), layer in zip(layers, output_cache(rest).layers, strict=True):
            pad = (0, 0, 0, width)  # the sequence axis of (rows, heads, S, head dim)
            keys, values = F.pad(keys, pad), F.pad(values, pad)
            keys[sub], values[sub] = layer.keys, layer.values
            grown.append((keys, values))
        layers = grown
        del rest
    del root_cache
    p_max = max(plen)
    ids = torch.full((n_groups, p_max), pad_token_id, dtype=torch.long)
    hidden = root_hidden.new_zeros((n_groups, p_max, root_hidden.shape[-1]))
    at = {gi: j for j, gi in enumerate(resting)}
    for gi in range(n_groups):
        root, p, c = root_of[gi], plen[gi], cluster_of[gi]
        ids[gi, :p] = seqs[gi][0][:p]
        hidden[gi, :root] = root_hidden[c, :root]
        if gi in at:
            hidden[gi, root:p] = rest_hidden[at[gi], : p - root]
    return Prefixes(ids, hidden, DynamicCache(ddp_cache_data=layers), cache_mask, None)
