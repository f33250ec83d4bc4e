"""Tiny offline tokenizers shaped like those of current HF VLMs (tests, quickstart, CI).

No hub: a byte-level BPE (the kind Qwen2 / Qwen2.5-VL / Qwen3-VL / LLaVA-OneVision use) is trained
in a few milliseconds on a fixed English corpus, then given the model's special tokens and a chat
template written here in that model's own format. Only the vocabulary is small; the byte-level
pre-tokenisation, special tokens, roles and turn markers are the real models' (so the assistant
anchor, end-of-turn token and image placeholder are found through the template exactly as with
the real tokenizer files).

Each template renders ``messages`` (``role`` + ``content``: a string or a list of ``{"type":
"image"}`` / ``{"type": "text", "text": ...}`` items) and honours ``add_generation_prompt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The Qwen2 chat format (Qwen2-VL, Qwen2.5-VL): a default system turn, <|im_start|>role\n ...
# <|im_end|>\n, the image as <|vision_start|><|image_pad|><|vision_end|>.
QWEN2_VL_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen3-VL: the same turn markers, no default system turn.
QWEN3_VL_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# LLaVA-OneVision (Qwen2 LM): the image is "<image>\n" before the text of its turn.
LLAVA_ONEVISION_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TokenizerSpec:
    """A model's special tokens and chat template.

    Attributes:
        special: special tokens in id order after the BPE vocabulary (the first is the pad/EOS).
        image_token: the token the processor expands to one per visual feature.
        eos: the end-of-turn token (generation stops there).
        template: the Jinja chat template.
    """

    special: tuple[str, ...]
    image_token: str
    eos: str
    template: str


_QWEN_SPECIAL = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
SPECS: dict[str, TokenizerSpec] = {
    "qwen2_5_vl": TokenizerSpec(_QWEN_SPECIAL, "<|image_pad|>", "<|im_end|>", QWEN2_VL_TEMPLATE),
    "qwen3_vl": TokenizerSpec(_QWEN_SPECIAL, "<|image_pad|>", "<|im_end|>", QWEN3_VL_TEMPLATE),
    "llava_onevision": TokenizerSpec(
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"),
        "<image>",
        "<|im_end|>",
        LLAVA_ONEVISION_TEMPLATE,
    ),
}

_CORPUS = """
You are a helpful assistant. What parts of the object are visible in the image? Which parts does
the airplane have? The airplane has a left wing, a right wing, a tail, an engine and a fuselage.
The car has a front wheel, a back wheel, a door, a window, a headlight, a mirror and a hood.
The dog has a head, an ear, an eye, a nose, a leg, a paw, a tail and a body. What is the object?
The object is a bird with a beak, a wing, a tail and a foot. Which of these parts is not visible?
A chair has a seat, a back, an arm and a leg. A table has a top and a leg. A bottle has a cap, a
neck, a body and a label. A lamp has a base, a shade, an arm and a bulb. A house has a roof, a wall,
a door, a window and a chimney. A ship has a hull, a mast, a sail, a deck and a cabin. A robot has
a head, an arm, a hand, a torso, a leg and an antenna. The circle, the square, the triangle and the
star are red, green, blue, yellow, orange, purple, white and black. Answer the question with the
part names. Is there a person in the picture? Yes. No. It has a handle, a lid, a spout and a blade.
"""


def tiny_vlm_tokenizer(kind: str, vocab_size: int = 640) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` with ``kind``'s special tokens and template.

    Args:
        kind: a key of :data:`SPECS`.
        vocab_size: BPE vocabulary size before the special tokens (deterministic training).

    Returns:
        The tokenizer; ``pad_token`` = ``eos_token`` = the spec's EOS, no BOS (as in Qwen2),
        ``chat_template`` set, offsets include the leading space of a word.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind not in SPECS:
        raise ValueError(f"no tiny tokenizer for {kind!r}; known: {', '.join(sorted(SPECS))}")
    spec = SPECS[kind]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.split("\n"), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=spec.eos,
        pad_token=spec.special[0],
        additional_special_tokens=[t for t in spec.special if t not in (spec.eos, spec.special[0])],
    )
    fast.chat_template = spec.template
    return fast
