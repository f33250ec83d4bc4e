"""SegPredictor's pipelined benchmark path (worker-thread preparation, SAM input normalised on the
device, all questions' masks in one segment_batch call, one host copy) gives the same answers as
the plain path and as a per-question reference assembled from the model's parts; ``run_eval``
streams batches through it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from partonomy.eval.harness import EvalConfig, run_eval
from partonomy.eval.protocol import EvalItem, ModelAnswer
from partonomy.io.qa_pairs import OBJECT_QUESTION_TYPES, load_qa_pairs
from partonomy.models.backbones.preprocess import sam_normalize, sam_preprocess, sam_resize
from partonomy.models.core.family import get_family
from partonomy.models.core.predictor import SegPredictor
from partonomy.models.core.scoring import score_groups

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qa"
pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def items() -> list[EvalItem]:
    """The fixture's 6 questions (object question types included) on their images, plus the
    first three again on new random 40x52 images (a second image size; repeated images hit the
    embedding cache)."""
    records = load_qa_pairs(FIXTURES / "tiny_qa.json")
    out = []
    for qa in records:
        with Image.open(FIXTURES / qa.image_path) as img:
            out.append(EvalItem(qa, np.asarray(img.convert("RGB"), dtype=np.uint8)))
    rng = np.random.default_rng(0)
    out += [EvalItem(qa, rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)) for qa in records[:3]]
    assert any(it.qa.question_type in OBJECT_QUESTION_TYPES for it in out)
    return out


@pytest.fixture(scope="module", params=["plum", "lisa"])
def model_and_processor(request: pytest.FixtureRequest, one_thread: None) -> tuple:
    torch.manual_seed(0)
    spec = get_family(request.param)
    model, processor = spec.build(spec.preset("tiny"))
    return model.eval(), processor


def assert_same(a: list[ModelAnswer], b: list[ModelAnswer]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.choice_scores, y.choice_scores, rtol=1e-5, atol=1e-5)
        if x.object_choice_scores is None:
            assert y.object_choice_scores is None
        else:
            np.testing.assert_allclose(
                x.object_choice_scores, y.object_choice_scores, rtol=1e-5, atol=1e-5
            )
        assert x.masks is not None and y.masks is not None
        assert list(x.masks) == list(y.masks)
        for part, mask in x.masks.items():
            assert mask.dtype == bool and mask.shape == y.masks[part].shape
            assert (mask == y.masks[part]).mean() > 0.999, part  # logits near 0 may flip
        assert x.extra.keys() == y.extra.keys()


def test_pipeline_equals_plain(model_and_processor: tuple, items: list[EvalItem]) -> None:
    model, processor = model_and_processor
    plain = SegPredictor(model, processor, batch_size=4, pipeline=False).predict(items)
    piped = SegPredictor(model, processor, batch_size=4, pipeline=True).predict(items)
    assert sum(len(a.masks or {}) for a in plain) > 10
    assert_same(plain, piped)


def test_pipeline_equals_per_question_reference(
    model_and_processor: tuple, items: list[EvalItem]
) -> None:
    """One question at a time through the model's public parts: encode_choices, score_groups,
    SAM on the CPU-preprocessed input, segment (its own decoder calls), logit > 0."""
    model, processor = model_and_processor
    predictor = SegPredictor(model, processor, batch_size=3, pipeline=True)
    got = predictor.predict(items)
    for item, answer in zip(items, got, strict=True):
        qa = item.qa
        examples = processor.encode_choices(
            item.image, item.part_history(), qa.question, qa.answer_choices,
            parts=qa.answer_parts, strict=False,
        )  # fmt: skip
        scores = score_groups(
            model.llava,
            [predictor._group(examples, qa.correct_index)],
            image_token_id=processor.image_token_id,
            pad_token_id=predictor._pad_id(),
        )[0]
        np.testing.assert_allclose(answer.choice_scores, scores.select("conversation"), atol=1e-5)
        correct = examples[qa.correct_index]
        with torch.no_grad():
            embedding = model.image_embeddings(correct.sam_pixel_values[None])[0]
            assert scores.hidden is not None
            logits = model.segment(
                scores.hidden, correct.spans, embedding, correct.original_size,
                correct.sam_input_size,
            )  # fmt: skip
        want: dict[str, np.ndarray] = {}
        for part, logit in zip(correct.span_parts, logits, strict=True):
            want.setdefault(part, (logit > 0).numpy())
        assert answer.masks is not None and list(answer.masks) == list(want)
        for part, mask in want.items():
            assert (answer.masks[part] == mask).mean() > 0.999


def test_predict_batches_keeps_batch_boundaries(
    model_and_processor: tuple, items: list[EvalItem]
) -> None:
    model, processor = model_and_processor
    predictor = SegPredictor(model, processor, batch_size=2, pipeline=True)
    batches = [items[:5], [], items[5:6]]  # larger than batch_size, empty, smaller
    out = list(predictor.predict_batches(iter(batches)))
    assert [len(a) for a in out] == [5, 0, 1]
    assert_same([a for batch in out for a in batch], predictor.predict(items[:6]))


def test_sam_normalize_is_bit_identical_to_numpy() -> None:
    rng = np.random.default_rng(3)
    for shape in ((30, 47, 3), (64, 20, 3)):
        image = rng.integers(0, 255, shape, dtype=np.uint8)
        want, (h, w) = sam_preprocess(image, 64)
        resized = sam_resize(image, 64)
        assert resized.shape == (h, w, 3) and resized.dtype == np.uint8
        got = sam_normalize(torch.from_numpy(resized), 64)
        assert torch.equal(got, torch.from_numpy(want))


def test_run_eval_streams_through_the_pipeline(
    model_and_processor: tuple, items: list[EvalItem], tmp_path: Path
) -> None:
    """``partonomy eval``'s harness uses ``predict_batches`` and writes what ``predict`` gives."""
    model, processor = model_and_processor

    class Counting(SegPredictor):
        streamed = 0

        def predict(self, items):  # type: ignore[no-untyped-def]
            raise AssertionError("the harness should stream through predict_batches")

        def predict_batches(self, batches):  # type: ignore[no-untyped-def]
            for answers in super().predict_batches(batches):
                self.streamed += 1
                yield answers

    predictor = Counting(model, processor, batch_size=2, pipeline=True)
    cfg = EvalConfig(
        model="plum", qa_file=str(FIXTURES / "tiny_qa.json"), out=str(tmp_path / "run"),
        batch_size=4, progress=False,
    )  # fmt: skip
    outcome = run_eval(cfg, model=predictor)
    assert predictor.streamed == 2 and outcome.n_computed == 6
    lines = (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()
    want = SegPredictor(model, processor, pipeline=False).predict(items[:6])
    for line, answer in zip(lines, want, strict=True):
        pred = json.loads(line)
        np.testing.assert_allclose(pred["choice_scores"], answer.choice_scores, atol=1e-5)


def test_feedback_pooling_in_row_chunks_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many answers' feedback rows go through the pooling attention in chunks (a CUDA grid axis
    holds at most 65535 rows): chunking changes nothing."""
    from partonomy.models.core import feedback

    torch.manual_seed(0)
    spec = get_family("plum")
    model, _ = spec.build(spec.preset("tiny"))
    assert model.feedback is not None
    head = model.mask_head
    h, w = model.feedback.embed_size
    gen = torch.Generator().manual_seed(0)
    masks = torch.randn(5, 2, 1, 4 * h, 4 * w, generator=gen)
    queries = torch.randn(5, 2, head.prompt_dim, generator=gen)
    pe = head.positional_embedding()
    with torch.no_grad():
        whole = model.feedback(head.mask_embed, masks, queries, pe)
        monkeypatch.setattr(feedback, "ATTENTION_ROWS", h * w + 3)  # chunks cut through answers
        chunked = model.feedback(head.mask_embed, masks, queries, pe)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)


def test_shared_prefix_and_fused_kernels_equal_plain(
    model_and_processor: tuple, items: list[EvalItem]
) -> None:
    """The GPU default's scoring options (image prefix shared by a question's part and object
    groups, fused decoder kernels; here the plain-torch reference set) change no answer."""
    from partonomy.models.core.fused_kernels import reference_kernels

    model, processor = model_and_processor
    plain = SegPredictor(model, processor, batch_size=4, pipeline=False).predict(items)
    fast = SegPredictor(model, processor, batch_size=4, pipeline=True, share_image_prefix=True)
    fast.kernels = reference_kernels()
    assert_same(plain, fast.predict(items))
