"""SegPredictor on a tiny untrained PLUM: the benchmark protocol (scores, object scores, teacher-
forced masks per part at the original size), free-form answers, highlight-to-segment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from partonomy.errors import ConfigError
from partonomy.eval.protocol import EvalItem, FreeFormModel, GroundingModel
from partonomy.io.qa_pairs import OBJECT_QUESTION_TYPES, load_qa_pairs
from partonomy.models.core.generation import decode_with_offsets, find_phrases
from partonomy.models.core.loading import build_predictor
from partonomy.models.core.predictor import SegPredictor
from partonomy.models.plum.targets import BioTargets

FIXTURES = Path(__file__).parents[2] / "fixtures" / "qa"


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def predictor(one_thread: None) -> SegPredictor:
    return build_predictor("plum", device="cpu", dtype="float32", batch_size=4, max_new_tokens=12)


@pytest.fixture(scope="module")
def items() -> list[EvalItem]:
    out = []
    for qa in load_qa_pairs(FIXTURES / "tiny_qa.json"):
        with Image.open(FIXTURES / qa.image_path) as img:
            out.append(EvalItem(qa, np.asarray(img.convert("RGB"), dtype=np.uint8)))
    return out


def _reference_scores(
    p: SegPredictor,
    image: np.ndarray,
    history: list[tuple[str, str]],
    question: str,
    answers: list[str],
) -> tuple[list[float], list[float]]:
    """Both scores of each answer from one full forward of SegLMM's own language model."""
    conv, ans = [], []
    image_id = p.processor.image_token_id
    for example in p.processor.encode_choices(image, history, question, answers):
        ids = example.input_ids
        with torch.no_grad():
            _hidden, logits = p.model.language_model(
                ids[None], example.attention_mask[None], example.pixel_values[None]
            )
        ce = F.cross_entropy(logits[0, :-1].float(), ids[1:], reduction="none")
        text = ids[1:] != image_id
        answer = torch.zeros_like(text)
        answer[example.answer_start - 1 : example.answer_end - 1] = True
        conv.append(float(ce[text].mean()))
        ans.append(float(ce[answer].mean()))
    return conv, ans


def test_implements_both_protocols(predictor: SegPredictor) -> None:
    assert isinstance(predictor, GroundingModel) and isinstance(predictor, FreeFormModel)
    assert predictor.name == "plum"


def test_predict_scores_object_scores_and_masks(
    predictor: SegPredictor, items: list[EvalItem]
) -> None:
    answers = predictor.predict(items)
    assert len(answers) == len(items)
    for item, answer in zip(items, answers, strict=True):
        qa = item.qa
        conv, ans = _reference_scores(
            predictor, item.image, item.part_history(), qa.question, qa.answer_choices
        )
        assert answer.choice_scores == pytest.approx(conv, abs=1e-5)
        assert answer.extra["choice_scores_answer"] == pytest.approx(ans, abs=1e-5)
        if qa.question_type in OBJECT_QUESTION_TYPES:
            assert qa.object_question is not None and qa.object_answer_choices is not None
            conv, _ = _reference_scores(
                predictor,
                item.image,
                item.object_history(),
                qa.object_question,
                qa.object_answer_choices,
            )
            assert answer.object_choice_scores == pytest.approx(conv, abs=1e-5)
        else:
            assert answer.object_choice_scores is None
        # one bool mask per part of the correct answer, at the image's own size
        assert answer.masks is not None
        assert sorted(answer.masks) == sorted(qa.correct_parts)
        for mask in answer.masks.values():
            assert mask.dtype == bool and mask.shape == item.size
        assert "unmatched_parts" not in answer.extra


def test_teacher_forced_masks_equal_plum_forward(
    predictor: SegPredictor, items: list[EvalItem]
) -> None:
    """The masks equal SegLMM.forward on the correct answer with all-occurrence target spans."""
    item = items[0]
    qa = item.qa
    got = predictor.predict([item])[0].masks
    assert got is not None
    dummy = {part: np.zeros(item.size, np.uint8) for part in qa.correct_parts}
    example = predictor.processor.encode(
        item.image,
        item.part_history(),
        qa.question,
        qa.answer_choices[qa.correct_index],
        dummy,
        all_occurrences=True,
    )
    batch = predictor.processor.collate([example])
    with torch.no_grad():
        out = predictor.model(batch, span_source="target")
    first: dict[str, np.ndarray] = {}
    for part, logits in zip(batch.span_parts[0], out.masks[0], strict=True):
        first.setdefault(part, (logits > 0).numpy())
    assert sorted(first) == sorted(got)
    for part, mask in first.items():
        assert np.array_equal(mask, got[part])


def test_batching_does_not_change_answers(predictor: SegPredictor, items: list[EvalItem]) -> None:
    together = predictor.predict(items)
    predictor.batch_size = 1
    try:
        alone = predictor.predict(items)
    finally:
        predictor.batch_size = 4
    for a, b in zip(together, alone, strict=True):
        assert a.choice_scores == pytest.approx(b.choice_scores, abs=1e-5)
        assert a.masks is not None and b.masks is not None
        for part in a.masks:
            assert (a.masks[part] != b.masks[part]).mean() < 1e-3


def test_sam_encoder_runs_once_per_image(items: list[EvalItem]) -> None:
    p = build_predictor("plum", device="cpu", dtype="float32", batch_size=8)
    calls: list[int] = []
    real = p.model.image_embeddings

    def counting(pixels: torch.Tensor) -> torch.Tensor:
        calls.append(int(pixels.shape[0]))
        return real(pixels)

    p.model.image_embeddings = counting  # type: ignore[method-assign]
    p.predict(items)  # 6 questions over 3 images
    assert calls == [3]
    p.predict(items[:2])  # cached
    assert calls == [3]


def test_unmatched_part_is_reported_not_fatal(predictor: SegPredictor) -> None:
    tok = predictor.tokenizer
    example = predictor.processor.encode(
        np.zeros((8, 8, 3), np.uint8),
        [],
        "Which parts?",
        "It has a left wing, a wing and a rudder.",
    )
    located = BioTargets().locate(
        example.input_ids.tolist(),
        example.answer_start,
        example.answer_end,
        ["wing", "left wing", "tail"],
        tok,
        all_occurrences=True,
        strict=False,
    )
    spans, unmatched = located.spans, located.unmatched
    assert unmatched == ["tail"]
    words = [tok.decode(example.input_ids[list(s.tokens)]).strip() for s in spans]
    assert [(s.part, w) for s, w in zip(spans, words, strict=True)] == [
        ("left wing", "left wing"),
        ("wing", "wing"),
    ]


def _full_forward(
    p: SegPredictor, image: np.ndarray, question: str
) -> tuple[torch.Tensor, int, torch.Tensor]:
    """Generated ids, prompt length and one full forward's hidden states over prompt + answer."""
    gen = p.generate(image, question)
    ids = gen.generation.sequence
    assert gen.generation.new_tokens.numel() > 0
    with torch.no_grad():
        hidden, _ = p.model.language_model(
            ids[None], torch.ones_like(ids)[None], gen.prompt.pixel_values[None]
        )
    return ids, gen.generation.prompt_length, hidden[0]


def test_free_form_answer_tags_and_segments(predictor: SegPredictor, items: list[EvalItem]) -> None:
    image, question = items[0].image, "What parts of the airplane are visible?"
    ans = predictor.answer(image, question)
    assert isinstance(ans.text, str) and len(ans.spans) == len(ans.masks)
    for span, mask in zip(ans.spans, ans.masks, strict=True):
        assert ans.text[span.start : span.end] == span.text and span.text.strip() == span.text
        assert mask.dtype == bool and mask.shape == image.shape[:2]
    # the spans are the tagger's on an independent full forward over prompt + generated tokens
    ids, plen, hidden = _full_forward(predictor, image, question)
    with torch.no_grad():
        tags = predictor.model.tag_logits(hidden[None], torch.ones_like(ids)[None])
    allowed = torch.zeros_like(ids, dtype=torch.bool)[None]
    allowed[0, plen:] = True
    spans = predictor.model.find_spans(ids[None], tags, allowed)[0]
    assert spans, "the untrained tagger tags something on this seed"
    text, offsets = decode_with_offsets(predictor.tokenizer, ids[plen:].tolist())
    assert text == ans.text
    expected = [text[offsets[s[0] - plen][0] : offsets[s[-1] - plen][1]].strip() for s in spans]
    assert [s.text for s in ans.spans] == [e for e in expected if e]


def test_highlight_to_segment(predictor: SegPredictor, items: list[EvalItem]) -> None:
    image, question = items[2].image, "Describe the boat."
    free = predictor.answer(image, question)
    word = next(w for w in free.text.split() if w.isalpha())
    ans = predictor.answer(image, question, highlight=[word.upper(), "no such phrase"])
    assert ans.text == free.text
    assert ans.spans and all(s.text.lower() == word.lower() for s in ans.spans)
    # the mask is SAM on exactly the highlighted tokens (the forced B/I span), full forward
    ids, plen, hidden = _full_forward(predictor, image, question)
    text, offsets = decode_with_offsets(predictor.tokenizer, ids[plen:].tolist())
    spans = find_phrases(text, offsets, [word])
    prompt = predictor.processor.encode(image, [], question, None)
    with torch.no_grad():
        emb = predictor.model.image_embeddings(prompt.sam_pixel_values[None])[0]
        logits = predictor.model.segment(
            hidden,
            [[plen + t for t in s.tokens] for s in spans],
            emb,
            prompt.original_size,
            prompt.sam_input_size,
        )
    assert len(logits) == len(ans.masks)
    for ref, mask in zip(logits, ans.masks, strict=True):
        assert (ref.numpy() > 0).tolist() == mask.tolist()


def test_static_cache_generation_gives_the_same_answer(
    predictor: SegPredictor, items: list[EvalItem]
) -> None:
    static = SegPredictor(
        predictor.model, predictor.processor, generation="static", max_new_tokens=12
    )
    a = predictor.answer(items[0].image, "What is this?")
    b = static.answer(items[0].image, "What is this?")
    assert a.text == b.text and a.spans == b.spans
    for x, y in zip(a.masks, b.masks, strict=True):
        assert np.array_equal(x, y)


def test_find_phrases_rules(predictor: SegPredictor) -> None:
    tok = predictor.tokenizer
    ids = tok("The left wing, the Wing and a wingtip.", add_special_tokens=False)["input_ids"]
    text, offsets = decode_with_offsets(tok, ids)
    assert text == "The left wing, the Wing and a wingtip."
    spans = find_phrases(text, offsets, ["wing", "left wing", " "])
    # "left wing" first (longest), then the second "Wing" (case-insensitive); not inside "wingtip"
    assert [(s.start, s.end) for s in spans] == [(4, 13), (19, 23)]
    assert [text[s.start : s.end] for s in spans] == ["left wing", "Wing"]
    for s in spans:
        covered = tok.decode([ids[t] for t in s.tokens]).strip()
        assert covered == text[s.start : s.end]


def test_builder_option_errors() -> None:
    with pytest.raises(ConfigError, match="unknown option 'beams'"):
        build_predictor("plum", device="cpu", beams=2)
    with pytest.raises(ConfigError, match="choice_score"):
        build_predictor("plum", device="cpu", choice_score="perplexity")
    with pytest.raises(ConfigError, match="generation"):
        build_predictor("plum", device="cpu", generation="beam")
    with pytest.raises(ConfigError, match="layout"):
        build_predictor("plum", device="cpu", layout="tree")
    with pytest.raises(ConfigError, match="preset"):
        build_predictor("plum", device="cpu", preset="tinyy")
