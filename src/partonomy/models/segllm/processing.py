"""SegLLM's processor: the shared one, with ``<seg_input>`` positions taken out of the LM loss."""

from __future__ import annotations

from typing import Any

from partonomy.models.core.processing import LABEL_IGNORE, SegExample, SegProcessor


class SegLLMProcessor(SegProcessor):
    """:class:`~partonomy.models.core.processing.SegProcessor` whose labels are -100 on
    ``<seg_input>`` tokens (references are inputs, :mod:`partonomy.models.segllm.targets`).

    Args:
        seg_input_id: the id of ``<seg_input>``.
        kwargs: as :class:`SegProcessor`.
    """

    def __init__(self, tokenizer: Any, *, seg_input_id: int, **kwargs: Any) -> None:
        super().__init__(tokenizer, **kwargs)
        self.seg_input_id = seg_input_id

    def encode(self, *args: Any, **kwargs: Any) -> SegExample:
        example = super().encode(*args, **kwargs)
        example.labels[example.input_ids == self.seg_input_id] = LABEL_IGNORE
        return example
