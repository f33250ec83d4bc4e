"""The scoring path scores full sequences (issue 11): no cut at the processor's ``max_length``."""

from __future__ import annotations

import numpy as np
import pytest

from partonomy.models.core.loading import build_predictor

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_choices_differing_after_max_length_are_scored_apart() -> None:
    predictor = build_predictor("plum", device="cpu", dtype="float32")
    proc = predictor.processor
    image = np.full((24, 24, 3), 100, dtype=np.uint8)
    prefix = "The wing and the tail and the engine. " * 4
    choices = [prefix + "It has a wing.", prefix + "It has a propeller."]
    cut = proc.encode(image, [], "What parts are visible?", choices[0]).input_ids.shape[0] - 3
    proc.max_length = int(cut)  # the choices now differ only after max_length
    cut_ids = [proc.encode(image, [], "What parts are visible?", c).input_ids for c in choices]
    assert cut_ids[0].tolist() == cut_ids[1].tolist()  # training's encode still cuts
    full = proc.encode_choices(image, [], "What parts are visible?", choices)
    assert all(ex.input_ids.shape[0] > proc.max_length for ex in full)
    group = predictor._group(full, None)
    from partonomy.models.core.scoring import score_groups

    scores = score_groups(
        predictor.model.llava,
        [group],
        image_token_id=proc.image_token_id,
        pad_token_id=predictor._pad_id(),
    )[0].select("conversation")
    assert scores[0] != scores[1]
