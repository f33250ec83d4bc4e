"""The reference models: behaviour per question, options, and chance level over many questions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from partonomy.errors import ConfigError
from partonomy.eval.harness import EvalConfig, run_eval
from partonomy.eval.protocol import EvalItem, GroundingModel
from partonomy.io.images import ground_truth_mask, load_image
from partonomy.io.qa_pairs import load_qa_pairs
from partonomy.models.reference import (
    ORACLE_CORRECT_SCORE,
    ORACLE_WRONG_SCORE,
    build_null,
    build_oracle,
    build_random,
    build_whole_object,
)
from partonomy.registries import MODELS

FIXTURES = Path(__file__).parents[1] / "fixtures" / "qa"


@pytest.fixture(scope="module")
def items() -> list[EvalItem]:
    path = FIXTURES / "tiny_qa.json"
    return [
        EvalItem(qa, load_image(FIXTURES / qa.image_path, file=path, record=qa.question_id))
        for qa in load_qa_pairs(path)
    ]


def test_registered_builders_give_grounding_models():
    for name in ("oracle", "null", "random", "whole_object"):
        model = MODELS.get(name)()
        assert isinstance(model, GroundingModel) and model.name == name


def test_oracle(items):
    answers = build_oracle().predict(items)
    for item, answer in zip(items, answers):
        qa = item.qa
        assert answer.choice_scores[qa.correct_index] == ORACLE_CORRECT_SCORE
        assert sorted(answer.choice_scores) == [ORACLE_CORRECT_SCORE] + [ORACLE_WRONG_SCORE] * 4
        assert sorted(answer.masks) == sorted(qa.correct_parts)
        for part, mask in answer.masks.items():
            assert mask.dtype == bool and mask.shape == item.size
            assert np.array_equal(mask, ground_truth_mask(qa, part, item.size))
        if qa.object_correct_index is None:
            assert answer.object_choice_scores is None
        else:
            assert answer.object_choice_scores[qa.object_correct_index] == ORACLE_CORRECT_SCORE
    # the plane's wing (rows 4-6, cols 1-14): 3 x 14 pixels
    assert answers[0].masks["wing"].sum() == 42


def test_null(items):
    assert all(
        a.choice_scores is None and a.object_choice_scores is None and a.masks is None
        for a in build_null().predict(items)
    )
    assert all(a.masks == {} for a in build_null(masks="empty").predict(items))


def test_random_depends_only_on_seed_and_question(items):
    model = build_random(seed=7, masks="random", mask_density=0.25)
    full = model.predict(items)
    reversed_batch = model.predict(items[::-1])[::-1]
    one_by_one = [model.predict([it])[0] for it in items]
    for a, b, c in zip(full, reversed_batch, one_by_one):
        assert a.choice_scores == b.choice_scores == c.choice_scores
        assert all(np.array_equal(a.masks[p], c.masks[p]) for p in a.masks)
    assert build_random(seed=8).predict(items[:1])[0].choice_scores != full[0].choice_scores
    p2w = full[3]
    assert len(p2w.object_choice_scores) == 5 and full[0].object_choice_scores is None
    density = np.mean([m.mean() for a in full for m in a.masks.values()])
    assert 0.15 < density < 0.35
    assert build_random().predict(items[:1])[0].masks is None


def test_whole_object_gives_every_part_the_union_of_all_parts(items):
    answers = build_whole_object().predict(items)
    boat = items[2]
    union = np.zeros(boat.size, bool)
    for part in boat.qa.segmentations:
        union |= ground_truth_mask(boat.qa, part, boat.size)
    assert union.sum() == 61  # hull 32 + mast 6 + sail 24 - 1 overlap
    for mask in answers[2].masks.values():
        assert np.array_equal(mask, union)
    assert answers[2].choice_scores is None
    scored = build_whole_object(scores="random", seed=1).predict(items)
    assert len(scored[0].choice_scores) == 5 and len(scored[3].object_choice_scores) == 5


@pytest.mark.parametrize(
    ("builder", "options", "message"),
    [
        (build_oracle, {"seed": 1}, "unknown key 'seed'"),
        (build_null, {"masks": "random"}, "'random' is not one of"),
        (build_random, {"sed": 1}, "Did you mean 'seed'"),
        (build_random, {"mask_density": 1.5}, r"mask_density must be in \[0, 1\]"),
        (build_random, {"delay": -1}, "delay must be >= 0"),
        (build_whole_object, {"scores": "oracle"}, "is not one of"),
    ],
)
def test_bad_options(builder, options, message):
    with pytest.raises(ConfigError, match=message):
        builder(**options)


def test_random_accuracy_is_near_chance_over_many_questions(tmp_path):
    """240 questions (the fixture's 6, 40 times): accuracy ~ Binomial(240, 0.2) / 240.

    The band [0.12, 0.28] is about +-3 standard deviations (0.026); the seed is fixed, so the
    test is deterministic, and it fails if scores stop being uniform over the 5 choices.
    """
    qa_dir = tmp_path / "qa"
    shutil.copytree(FIXTURES, qa_dir, ignore=shutil.ignore_patterns("*.py"))
    raw = json.loads((qa_dir / "tiny_qa.json").read_text())
    many = [{**rec, "question_id": f"{rec['question_id']}-{k}"} for k in range(40) for rec in raw]
    (qa_dir / "many.json").write_text(json.dumps(many))
    cfg = EvalConfig(
        "random", str(qa_dir / "many.json"), str(tmp_path / "run"), batch_size=16, progress=False
    )
    overall = run_eval(cfg).results["overall"]
    assert overall["n_questions"] == 240
    assert 0.12 <= overall["accuracy"] <= 0.28
    # 80 object questions (part_to_whole, whole_to_part): standard deviation 0.045
    assert 0.06 <= overall["object_accuracy"] <= 0.34
    assert overall["micro_giou"] is None  # no masks by default
