"""The processor of a segmentation LMM on an HF VLM backbone (Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision).

Same contract as :class:`~partonomy.models.core.processing.SegProcessor` (labels, tag labels,
spans, collation); three things come from the model instead of LLaVA v1's fixed layout:

* **The chat template.** Conversations are rendered by the tokenizer's own chat template, the image
  as ``{"type": "image"}`` in the first user turn. Each answer's text is found by rendering the
  conversation with sentinel answers and substituting them, so no role string is written here.
  The *assistant anchor* (what the template appends for ``add_generation_prompt``) and the
  *end-of-turn marker* (what follows an answer, e.g. ``<|im_end|>``) are read off the template at
  construction; the template must render a prompt as a prefix of the full conversation (checked:
  shared-prefix scoring relies on it).
* **Image tokens.** The image processor gives each image its own grid; the single image
  placeholder the template writes is expanded to that image's token count
  (:meth:`~partonomy.models.backbones.hf_vlm.VlmAdapter.vision_input`), and found by id.
* **No BOS.** Sequences are exactly what the template renders (Qwen-style tokenizers have none).

The LM loss covers each answer and its end-of-turn marker, not the newline after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from partonomy.models.backbones.hf_vlm import VlmAdapter
from partonomy.models.backbones.preprocess import VisionInput, sam_preprocess
from partonomy.models.core.processing import SegProcessor
from partonomy.models.core.targets import TargetScheme

_SENTINEL = "@@ANSWER{}@@"
"""Stand-in answer text while rendering (plain ASCII that no template rewrites)."""


class VlmSegProcessor(SegProcessor):
    """:class:`SegProcessor` over an HF VLM's chat template and image processor.

    Args:
        tokenizer: the VLM's tokenizer, with its ``chat_template``.
        adapter: the VLM adapter (image processor, image token id).
        targets: the family's target scheme.
        sam_image_size: the mask head's input side ``T``; 0 = no mask head (text-only scoring:
            the SAM input is an empty tensor).
        max_length: longest sequence (image tokens included); longer ones are cut on the right.

    Raises:
        ValueError: the tokenizer has no chat template, or the template does not render a prompt
            as a prefix of the full conversation.
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        adapter: VlmAdapter,
        targets: TargetScheme,
        sam_image_size: int,
        max_length: int = 512,
    ) -> None:
        super().__init__(
            tokenizer,
            targets=targets,
            image_seq_length=0,
            clip_image_size=0,
            sam_image_size=sam_image_size,
            max_length=max_length,
            image_token=str(tokenizer.convert_ids_to_tokens(adapter.image_token_id)),
        )
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the VLM's tokenizer has no chat_template")
        self.adapter = adapter
        self.assistant_anchor, self.turn_end = self._template_markers()

    # ------------------------------------------------------------------------ template
    def _render(self, messages: list[dict[str, Any]], generation: bool) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation
            )
        )

    def _template_markers(self) -> tuple[str, str]:
        """``(assistant anchor, end-of-turn marker)`` read off the template (module docstring)."""
        user = [{"role": "user", "content": [{"type": "text", "text": "q"}]}]
        bare, prompt = self._render(user, False), self._render(user, True)
        if not prompt.startswith(bare):
            raise ValueError(
                "the chat template's generation prompt is not an extension of the conversation"
            )
        anchor = prompt[len(bare) :]
        full = self._render([*user, {"role": "assistant", "content": _SENTINEL.format(0)}], False)
        head, sep, tail = full.partition(_SENTINEL.format(0))
        if not sep or head != prompt:
            raise ValueError(
                "the chat template does not render the prompt (with its generation prompt) as a "
                f"prefix of the conversation: {prompt!r} vs {head!r}"
            )
        end = tail.strip().split("\n")[0] if tail.strip() else ""
        return anchor, end

    def _conversation(
        self, history: Sequence[tuple[str, str]], question: str, answer: str | None
    ) -> tuple[str, list[tuple[int, int]]]:
        turns: list[tuple[str, str | None]] = [*history, (question, answer)]
        messages: list[dict[str, Any]] = []
        answers: list[str] = []
        for i, (q, a) in enumerate(turns):
            content: list[dict[str, str]] = [{"type": "text", "text": q}]
            if i == 0:
                content.insert(0, {"type": "image"})
            messages.append({"role": "user", "content": content})
            if a is None:
                break
            messages.append({"role": "assistant", "content": _SENTINEL.format(i)})
            answers.append(a)
        rendered = self._render(messages, generation=answer is None)
        text, ranges, cursor = "", [], 0
        for i, a in enumerate(answers):
            at = rendered.index(_SENTINEL.format(i), cursor)
            text += rendered[cursor:at]
            start = len(text)
            text += a
            cursor = at + len(_SENTINEL.format(i))
            if not rendered.startswith(self.turn_end, cursor):
                raise ValueError(
                    f"the chat template does not close answer {i} with {self.turn_end!r}"
                )
            ranges.append((start, len(text) + len(self.turn_end)))
        return text + rendered[cursor:], ranges

    def tokenize(
        self, text: str, n_image_tokens: int | None = None
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids of ``text`` (no BOS) with the one image token expanded to ``n_image_tokens``.

        Raises:
            ValueError: ``text`` does not hold exactly one image token, or no count is given.
        """
        if n_image_tokens is None:
            raise ValueError(
                "an HF VLM's image token count comes from its image (pass n_image_tokens)"
            )
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = [int(t) for t in enc["input_ids"]]
        offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
        where = [k for k, t in enumerate(ids) if t == self.image_token_id]
        if len(where) != 1:
            raise ValueError(
                f"a conversation must hold exactly one {self.image_token} token, found {len(where)} "
                "(do not write the image token in questions or answers)"
            )
        k = where[0]
        ids = ids[:k] + [self.image_token_id] * n_image_tokens + ids[k + 1 :]
        offsets = offsets[:k] + [offsets[k]] * n_image_tokens + offsets[k + 1 :]
        return ids, offsets

    # -------------------------------------------------------------------------- images
    def preprocess_image(
        self, image: np.ndarray
    ) -> tuple[VisionInput, torch.Tensor, tuple[int, int], tuple[int, int]]:
        """``(H, W, 3)`` uint8 -> (the VLM's :class:`VisionInput`, SAM input, ``(H, W)``, SAM ``(h, w)``)."""
        vision = self.adapter.vision_input(np.ascontiguousarray(image))
        size = (int(image.shape[0]), int(image.shape[1]))
        if not self.sam_image_size:
            return vision, torch.zeros(0), size, (0, 0)
        sam, resized = sam_preprocess(image, self.sam_image_size)
        return vision, torch.from_numpy(sam), size, resized

    def vision_input(self, pixels: Any) -> VisionInput:
        if not isinstance(pixels, VisionInput):
            raise TypeError("VlmSegProcessor.preprocess_image gives VisionInput objects")
        return pixels

    def collate_images(
        self, images: Sequence[VisionInput]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.adapter.collate(images)
