"""PixelLM's segmentation codebook: ``seg_token_num x scales`` tokens per target.

The answer marks each part with one *group* of codebook tokens, ``[SEG0] [SEG1] ... [SEG{n-1}]``
(``n = seg_token_num * scales``, 6 released), written after the part name ("a wing [SEG0] ...
[SEG5], ..."). Token ``k`` of a group belongs to scale ``k // seg_token_num`` (the original reshapes
the group as ``(scales, seg_token_num)``).

* :class:`CodebookTargets`: the target scheme (rewrite answers, locate each target's group).
* :class:`CodebookPrompts`: the prompt source. Each group token's hidden state goes through the
  ``text_hidden_fcs`` MLP (``d -> d -> 256``); the tokens of a scale are summed with fixed weights
  ``1 / seg_token_num`` into one prompt token per scale, so a target gives ``(scales, 256)``.

The fusion weights: the original builds ``multiseg_scalar`` (and the decoder's ``multiscale_scalar``)
as a *Python list* of ``nn.Parameter`` assigned before ``nn.Module.__init__`` runs, so they are never
registered: not in ``parameters()`` (never optimised), not in the state dict (never saved). They
stay at their initial ``1 / seg_token_num`` and ``1 / scales``; here they are constants
(docs/deviations.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from partonomy.models.core.prompt_sources import PromptSource, Spans, text_hidden_fc
from partonomy.models.core.targets import Located, PartSpan, SegTokenTargets


def codebook_tokens(count: int) -> tuple[str, ...]:
    """``("[SEG0]", ..., "[SEG{count-1}]")``: the original's token names, in id order."""
    return tuple(f"[SEG{k}]" for k in range(count))


class IncompleteGroupError(ValueError):
    """Codebook tokens that do not form whole, ordered groups."""


def group_codebook_positions(
    ids: Sequence[int], positions: Sequence[int], codebook_ids: Sequence[int]
) -> list[list[int]]:
    """Split the codebook-token ``positions`` of one sequence into target groups.

    Args:
        ids: the token ids of the sequence.
        positions: ascending positions holding codebook tokens.
        codebook_ids: the group's token ids in order (``[SEG0]`` ... ``[SEG{n-1}]``).

    Returns:
        One list of ``n`` positions per target, in token order.

    Raises:
        IncompleteGroupError: the count is not a multiple of ``n``, or a group's tokens are not
            ``[SEG0] ... [SEG{n-1}]`` in order (the message names the first bad group).
    """
    n = len(codebook_ids)
    wanted = [int(i) for i in codebook_ids]
    groups = [list(positions[k : k + n]) for k in range(0, len(positions), n)]
    for g, group in enumerate(groups):
        found = [int(ids[p]) for p in group]
        if found != wanted[: len(found)] or len(group) != n:
            raise IncompleteGroupError(
                f"codebook group {g} (positions {group}) holds token ids {found}, expected the "
                f"{n} ids {wanted} in order: every target must be written as one whole group "
                f"[SEG0] ... [SEG{n - 1}]"
            )
    return groups


class CodebookTargets(SegTokenTargets):
    """A whole codebook group after the first occurrence of each part name.

    Args:
        tokens: the group's tokens in order (:func:`codebook_tokens`).

    Rewriting is :class:`~partonomy.models.core.targets.SegTokenTargets`' with the space-joined
    group as the marker (the original's MUSE answers); a target's span is its group's ``n``
    positions (ascending, not necessarily adjacent: the tokenizer may put a space piece between
    two codebook tokens).
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        super().__init__(" ".join(tokens))
        self.tokens = tuple(tokens)
        self.special_tokens = self.tokens

    def locate(
        self,
        ids: Sequence[int],
        answer_start: int,
        answer_end: int,
        parts: Sequence[str],
        tokenizer: Any,
        *,
        all_occurrences: bool,
        strict: bool,
    ) -> Located:
        """One span per codebook group of the answer, paired with ``parts`` in order.

        Raises:
            IncompleteGroupError: the answer's codebook tokens do not form whole groups.
            ValueError: the number of groups differs from the number of parts.
        """
        book = [int(tokenizer.convert_tokens_to_ids(t)) for t in self.tokens]
        members = set(book)
        where = [k for k in range(answer_start, answer_end) if int(ids[k]) in members]
        groups = group_codebook_positions(ids, where, book)
        if len(groups) != len(parts):
            raise ValueError(
                f"the answer holds {len(groups)} codebook group(s) but {len(parts)} target(s) "
                f"({', '.join(parts) or 'none'}); write one group {' '.join(self.tokens)} per part"
            )
        return Located([PartSpan(p, tuple(g)) for p, g in zip(parts, groups)], [])


class CodebookPrompts(PromptSource):
    """PixelLM's prompt source (module docstring): a group of ``seg_token_num * scales`` positions
    -> ``(scales, D)`` prompt tokens.

    Args:
        hidden_size: the LLM width ``d``.
        prompt_dim: the decoder's prompt width ``D`` (256).
        codebook_ids: the ids of ``[SEG0] ... [SEG{n-1}]`` in order.
        seg_token_num: tokens per scale (3 released); ``n`` must be a multiple of it.
        incomplete_groups: ``"drop"`` (the original) or ``"error"``: what :meth:`find_spans` does
            with an answer whose codebook tokens do not form whole groups.
    """

    def __init__(
        self,
        hidden_size: int,
        prompt_dim: int,
        codebook_ids: Sequence[int],
        seg_token_num: int,
        incomplete_groups: str = "drop",
    ) -> None:
        super().__init__()
        if len(codebook_ids) % seg_token_num:
            raise ValueError(
                f"{len(codebook_ids)} codebook tokens do not split into groups of {seg_token_num}"
            )
        if incomplete_groups not in ("drop", "error"):
            raise ValueError(
                f"incomplete_groups must be 'drop' or 'error', got {incomplete_groups!r}"
            )
        self.codebook_ids = [int(i) for i in codebook_ids]
        self.seg_token_num = seg_token_num
        self.scales = len(codebook_ids) // seg_token_num
        self.tokens_per_target = self.scales
        self.prompt_dim = prompt_dim
        self.incomplete_groups = incomplete_groups
        self.projection = text_hidden_fc(hidden_size, prompt_dim)

    @property
    def group_size(self) -> int:
        return len(self.codebook_ids)

    def prompts(self, hidden: torch.Tensor, spans: Sequence[Sequence[int]]) -> torch.Tensor:
        """``(n_spans, scales, D)``: each group's projected hidden states, averaged per scale.

        Raises:
            IncompleteGroupError: a span is not one whole group of ``seg_token_num * scales``.
        """
        dtype = next(self.projection.parameters()).dtype
        if not spans:
            return hidden.new_zeros((0, self.scales, self.prompt_dim), dtype=dtype)
        for span in spans:
            if len(span) != self.group_size:
                raise IncompleteGroupError(
                    f"a codebook target is {self.group_size} token positions "
                    f"({self.scales} scales x {self.seg_token_num}), got span {list(span)}"
                )
        index = torch.tensor([list(map(int, s)) for s in spans], device=hidden.device)  # (n, g)
        projected = self.projection(hidden[index].to(dtype))  # (n, g, D)
        per_scale = projected.reshape(len(spans), self.scales, self.seg_token_num, -1)
        # The original's unregistered multiseg_scalar: fixed 1 / seg_token_num weights.
        return per_scale.mean(dim=2)  # (n, scales, D)

    def find_spans(
        self,
        input_ids: torch.Tensor,
        tag_logits: torch.Tensor | None,
        allowed: torch.Tensor,
    ) -> list[Spans]:
        """Whole codebook groups inside ``allowed``, in token order.

        A row whose codebook tokens do not form whole groups gets no targets
        (``incomplete_groups="drop"``, as the original) or raises :class:`IncompleteGroupError`.
        """
        members = torch.tensor(self.codebook_ids, device=input_ids.device)
        hits = torch.isin(input_ids, members) & allowed.bool()
        out: list[Spans] = []
        for row, ids in zip(hits, input_ids.tolist()):
            positions = row.nonzero().flatten().tolist()
            try:
                out.append(group_codebook_positions(ids, positions, self.codebook_ids))
            except IncompleteGroupError:
                if self.incomplete_groups == "error":
                    raise
                out.append([])
        return out
