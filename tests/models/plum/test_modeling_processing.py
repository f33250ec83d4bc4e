"""SegProcessor: prompt template, LM/BIO labels, spans and masks, truncation, images, collation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from partonomy.models.backbones.llava import LlavaConfig, load_tokenizer
from partonomy.models.backbones.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    SAM_MEAN,
    SAM_STD,
    clip_preprocess,
    sam_preprocess,
    sam_resized_size,
)
from partonomy.models.core.processing import LLAVA_V1_SYSTEM, SegProcessor
from partonomy.models.plum.bio import BIO_IGNORE, B, I, O
from partonomy.models.plum.targets import BioTargets


def make_processor(layout: str = "llava_hf", max_length: int = 512, n_img: int = 4) -> SegProcessor:
    tokenizer = load_tokenizer(LlavaConfig(layout=layout))  # type: ignore[arg-type]
    return SegProcessor(
        tokenizer,
        targets=BioTargets(),
        image_seq_length=n_img,
        clip_image_size=16,
        sam_image_size=32,
        use_im_start_end=layout == "llava_v1",
        max_length=max_length,
    )


@pytest.fixture(scope="module")
def proc() -> SegProcessor:
    return make_processor()


IMAGE = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)


def mask(value: int = 1) -> np.ndarray:
    return np.full((12, 20), value, np.uint8)


def test_prompt_template(proc):
    text = proc.prompt([("Q1?", "A1.")], "Q2?")
    assert text == f"{LLAVA_V1_SYSTEM} USER: <image>\nQ1? ASSISTANT: A1.</s>USER: Q2? ASSISTANT:"
    assert proc.prompt([], "Q?") == f"{LLAVA_V1_SYSTEM} USER: <image>\nQ? ASSISTANT:"
    v1 = make_processor("llava_v1")
    assert "USER: <im_start><image><im_end>\nQ?" in v1.prompt([], "Q?")


def test_labels_cover_every_answer_and_bio_only_the_last(proc):
    ex = proc.encode(IMAGE, [("What is it?", "A plane with a wing.")], "Parts?", "It has a wing and a tail.",
                     {"wing": mask(1), "tail": mask(0)})  # fmt: skip
    tok = proc.tokenizer
    ids = ex.input_ids.tolist()
    assert ids[0] == tok.bos_token_id
    assert ids.count(proc.image_token_id) == 4  # expanded placeholder
    labelled = [k for k, v in enumerate(ex.labels.tolist()) if v != -100]
    assert all(ex.labels[k] == ex.input_ids[k] for k in labelled)
    text = tok.decode([ids[k] for k in labelled])
    assert text.replace(" ", "") == "Aplanewithawing.</s>Ithasawingandatail.</s>"
    # BIO labels: the last answer only (including its </s>), -100 everywhere else.
    bio = ex.tag_labels.tolist()
    inside = [k for k, v in enumerate(bio) if v != BIO_IGNORE]
    assert inside == list(range(ex.answer_start, ex.answer_end))
    assert ex.answer_end == len(ids) and tok.convert_ids_to_tokens(ids[-1]) == "</s>"
    assert [tok.decode([ids[k] for k in s]) for s in ex.spans] == ["wing", "tail"]
    assert ex.span_parts == ["wing", "tail"]
    # The wing of the history answer is not tagged; the masks follow the parts, not dict order.
    assert ex.spans[0][0] > ex.answer_start
    assert [int(t.max()) for t in ex.span_targets] == [1, 0]
    assert sorted({bio[k] for k in inside}) == [O, B]


def test_generation_prompt_has_no_targets(proc):
    ex = proc.encode(IMAGE, [], "What is it?", None)
    assert (ex.labels == -100).all() and (ex.tag_labels == BIO_IGNORE).all()
    assert ex.answer_start == ex.answer_end == len(ex.input_ids)
    tail = proc.tokenizer.decode(ex.input_ids[-8:].tolist())
    assert tail.endswith("ASSISTANT:")
    with pytest.raises(ValueError, match="no answer"):
        proc.encode(IMAGE, [], "What is it?", None, {"wing": mask()})


def test_errors_name_the_problem(proc):
    with pytest.raises(ValueError, match="'rudder'"):
        proc.encode(IMAGE, [], "Parts?", "A wing.", {"rudder": mask()})
    with pytest.raises(ValueError, match=r"'wing' has shape \(3, 3\)"):
        proc.encode(IMAGE, [], "Parts?", "A wing.", {"wing": np.zeros((3, 3), np.uint8)})
    with pytest.raises(ValueError, match="exactly one <image>"):
        proc.encode(IMAGE, [], "Look: <image>", "A wing.")


def test_all_occurrences_repeats_the_mask(proc):
    answer = "A wing, a tail and a wing."
    first = proc.encode(IMAGE, [], "Parts?", answer, {"wing": mask(), "tail": mask(0)})
    every = proc.encode(
        IMAGE, [], "Parts?", answer, {"wing": mask(), "tail": mask(0)}, all_occurrences=True
    )
    assert first.span_parts == ["wing", "tail"]
    assert every.span_parts == ["wing", "tail", "wing"]
    assert len(every.span_targets) == 3 and every.span_targets[2] is every.span_targets[0]
    assert int((every.tag_labels == B).sum()) == 3 and int((first.tag_labels == B).sum()) == 2


def test_truncation_drops_cut_spans_with_their_masks():
    full = make_processor().encode(IMAGE, [], "Parts?", "It has a wing and a very long tail.",
                                   {"wing": mask(1), "tail": mask(0)})  # fmt: skip
    cut_at = full.spans[1][0]  # the tail's first token falls outside
    short = make_processor(max_length=cut_at).encode(
        IMAGE,
        [],
        "Parts?",
        "It has a wing and a very long tail.",
        {"wing": mask(1), "tail": mask(0)},
    )
    assert len(short.input_ids) == cut_at
    assert short.span_parts == ["wing"] and len(short.span_targets) == 1
    assert int(short.tag_labels[short.spans[0][0]]) == B
    assert short.answer_end == cut_at


def test_collate_pads_right_and_shares_images(proc):
    a, b = proc.encode_choices(IMAGE, [], "Parts?", ["A wing.", "A wing and a long tail."],
                               [{"wing": mask()}, {"wing": mask(), "tail": mask()}])  # fmt: skip
    other = proc.encode(IMAGE[:6], [], "Parts?", "A tail.", {"tail": mask()[:6]})
    batch = proc.collate([b, a, other])
    assert batch.pixel_values.shape == (2, 3, 16, 16)
    assert batch.sam_pixel_values.shape == (2, 3, 32, 32)
    assert batch.image_index.tolist() == [0, 0, 1]
    n = len(a.input_ids)
    assert batch.input_ids.shape[1] == len(b.input_ids) > n
    assert (batch.input_ids[1, n:] == proc.tokenizer.pad_token_id).all()
    assert (batch.attention_mask[1, n:] == 0).all() and (batch.labels[1, n:] == -100).all()
    assert (batch.tag_labels[1, n:] == BIO_IGNORE).all()
    assert batch.spans[1] == a.spans and batch.span_parts[2] == ["tail"]
    assert batch.original_sizes == [(12, 20), (12, 20), (6, 20)]
    assert batch.span_targets[2][0].dtype == torch.uint8 and batch.span_targets[2][0].shape == (
        6,
        20,
    )
    moved = batch.to("cpu", dtype=torch.float64)
    assert moved.pixel_values.dtype == torch.float64 and moved.input_ids.dtype == torch.long
    assert len(moved) == 3
    assert int((batch.tag_labels[0] == I).sum()) == 0  # single-token parts: no I


def test_clip_preprocess_by_hand():
    image = np.zeros((4, 8, 3), np.uint8)
    image[:, 2:6] = 255  # the centre-cropped square is the white band
    out = clip_preprocess(image, 4)
    assert out.shape == (3, 4, 4) and out.dtype == np.float32
    white = (1.0 - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    np.testing.assert_allclose(out[:, 1, 1], white, rtol=1e-5)


def test_sam_preprocess_resizes_longest_side_and_pads():
    assert sam_resized_size(12, 20, 32) == (19, 32)  # 12 * 1.6 = 19.2 -> 19
    image = np.full((12, 20, 3), 100, np.uint8)
    out, size = sam_preprocess(image, 32)
    assert size == (19, 32) and out.shape == (3, 32, 32)
    expected = (100 - np.array(SAM_MEAN)) / np.array(SAM_STD)
    np.testing.assert_allclose(out[:, 0, 0], expected, rtol=1e-5)
    assert (out[:, 19:, :] == 0).all()  # bottom padding after normalisation is zero
    with pytest.raises(ValueError, match="uint8 RGB"):
        sam_preprocess(np.zeros((4, 4), np.uint8), 32)
