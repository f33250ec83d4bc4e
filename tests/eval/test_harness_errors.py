"""Bad inputs on the harness side: images, mask sizes, and models that break the protocol."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from partonomy.cli.main import cli
from partonomy.errors import FormatError
from partonomy.eval.harness import PREDICTIONS_FILE, EvalConfig, ModelOutputError, run_eval
from partonomy.eval.protocol import EvalItem, ModelAnswer
from partonomy.io import masks as mask_io
from partonomy.io.predictions import load_predictions
from partonomy.models.reference import OracleModel


def _cfg(qa_file: Path, out: Path, model: str = "oracle", **kwargs) -> EvalConfig:
    return EvalConfig(model=model, qa_file=str(qa_file), out=str(out), progress=False, **kwargs)


def _shrink_wing_mask(qa_file: Path) -> None:
    """Store the plane's wing mask at half the image size (6 x 8 instead of 12 x 16)."""
    raw = json.loads(qa_file.read_text())
    for rec in raw[:2]:
        wing = mask_io.decode(rec["segmentations"]["wing"][0])
        rec["segmentations"]["wing"] = [mask_io.encode(wing[::2, ::2])]
    qa_file.write_text(json.dumps(raw))


def test_mask_size_mismatch_is_resized_with_a_warning(qa_file, tmp_path, caplog):
    _shrink_wing_mask(qa_file)
    with caplog.at_level(logging.WARNING, logger="partonomy.io.images"):
        outcome = run_eval(_cfg(qa_file, tmp_path / "run"))
    warned = [
        r.getMessage() for r in caplog.records if "differs from the image size" in r.getMessage()
    ]
    assert len(warned) == 2
    assert "record 0 (question_id 'plane-ident')" in warned[0]
    assert "segmentations.wing[0]" in warned[0] and "[6, 8]" in warned[0]
    assert outcome.results["overall"]["micro_giou"] == 1.0  # truth and oracle both resized
    wing = load_predictions(tmp_path / "run" / PREDICTIONS_FILE)["plane-ident"].masks["wing"]
    assert wing["size"] == [12, 16]


def test_mask_size_mismatch_is_refused_under_strict(qa_file, tmp_path):
    _shrink_wing_mask(qa_file)
    with pytest.raises(
        FormatError, match=r"\[6, 8\] differs from the image size \[12, 16\]"
    ) as info:
        run_eval(_cfg(qa_file, tmp_path / "run", strict=True))
    err = info.value
    assert err.file == str(qa_file) and err.field == "segmentations.wing[0]"
    assert err.record == "0 (question_id 'plane-ident')"
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_missing_image(qa_file, tmp_path):
    (qa_file.parent / "boat.png").unlink()
    with pytest.raises(FormatError, match="image not found") as info:
        run_eval(_cfg(qa_file, tmp_path / "run"))
    assert info.value.record == "2 (question_id 'boat-neg')"
    assert info.value.field == "image_path" and "--image-root" in str(info.value)


def test_corrupt_image(qa_file, tmp_path):
    (qa_file.parent / "mug.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(FormatError, match="cannot read image") as info:
        run_eval(_cfg(qa_file, tmp_path / "run"))
    assert info.value.record == "4 (question_id 'mug-w2p')" and info.value.field == "image_path"


def test_truncated_image_fails_when_decoded_and_keeps_earlier_predictions(qa_file, tmp_path):
    boat = qa_file.parent / "boat.png"
    boat.write_bytes(boat.read_bytes()[:60])  # header intact, pixel data cut
    with pytest.raises(FormatError, match="cannot read image") as info:
        run_eval(_cfg(qa_file, tmp_path / "run"))
    assert info.value.record == "2 (question_id 'boat-neg')"
    assert list(load_predictions(tmp_path / "run" / PREDICTIONS_FILE)) == [
        "plane-ident",
        "plane-pos",
    ]


def test_image_root(qa_file, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("plane.png", "boat.png", "mug.png"):
        shutil.move(qa_file.parent / name, images / name)
    with pytest.raises(FormatError, match="image not found"):
        run_eval(_cfg(qa_file, tmp_path / "a"))
    outcome = run_eval(_cfg(qa_file, tmp_path / "b", image_root=str(images)))
    assert outcome.results["overall"]["micro_giou"] == 1.0


def test_duplicate_question_ids_and_truncated_qa_via_cli(qa_file, tmp_path):
    raw = json.loads(qa_file.read_text())
    raw[5]["question_id"] = "plane-ident"
    qa_file.write_text(json.dumps(raw))
    runner = CliRunner()
    args = ["eval", "-m", "oracle", str(qa_file), "-o", str(tmp_path / "run"), "--no-progress"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "record 5" in result.output and "duplicate question_id 'plane-ident'" in result.output
    qa_file.write_text(json.dumps(raw)[:-100])
    result = runner.invoke(cli, args)
    assert result.exit_code == 2 and "truncated" in result.output and str(qa_file) in result.output


class _Broken:
    """Wraps the oracle and breaks its answer to one question."""

    name = "broken"

    def __init__(self, qid: str, breaker: Callable[[ModelAnswer, EvalItem], object]) -> None:
        self.qid, self.breaker, self.oracle = qid, breaker, OracleModel()

    def predict(self, items: Sequence[EvalItem]) -> list:
        answers: list = self.oracle.predict(items)
        return [
            self.breaker(a, it) if it.question_id == self.qid else a
            for a, it in zip(answers, items)
        ]


def _set(**fields) -> Callable[[ModelAnswer, EvalItem], ModelAnswer]:
    def breaker(answer: ModelAnswer, item: EvalItem) -> ModelAnswer:
        for key, value in fields.items():
            setattr(answer, key, value(answer, item) if callable(value) else value)
        return answer

    return breaker


BREAKERS = {
    "nan score": (
        _set(choice_scores=[0.0, float("nan"), 1.0, 1.0, 1.0]),
        r"choice scores\[1\] = nan",
    ),
    "four scores": (_set(choice_scores=[0.0, 1.0, 1.0, 1.0]), "returned 4 choice scores"),
    "six scores": (_set(choice_scores=[0.0] + [1.0] * 5), "returned 6 choice scores"),
    "string score": (_set(choice_scores=[0.0, "1", 1.0, 1.0, 1.0]), r"choice scores\[1\] = '1'"),
    "scores not a list": (_set(choice_scores=0.5), "of type float"),
    "object scores on a part question": (
        _set(object_choice_scores=[0.0] * 5),
        "has no object question",
    ),
    "wrong mask shape": (
        _set(masks=lambda a, it: {p: m.T for p, m in a.masks.items()}),
        r"mask of shape \(8, 10\) for part 'mast'.*expected the image's \(H, W\) = \(10, 8\)",
    ),
    "float mask": (
        _set(masks=lambda a, it: {p: m.astype(np.float32) for p, m in a.masks.items()}),
        "float32 mask",
    ),
    "masks not a dict": (_set(masks=lambda a, it: list(a.masks.values())), "of type list"),
    "extra not json": (_set(extra={"obj": object()}), "not JSON"),
    "not an answer": (lambda a, it: {"choice_scores": a.choice_scores}, "returned a dict"),
}


@pytest.mark.parametrize("case", list(BREAKERS))
def test_model_breaking_the_protocol_names_model_and_question(qa_file, tmp_path, case):
    """The 3rd question (boat-neg, an 8-wide 10-high image) gets a broken answer."""
    breaker, message = BREAKERS[case]
    out = tmp_path / "run"
    with pytest.raises(ModelOutputError, match=message) as info:
        run_eval(_cfg(qa_file, out, batch_size=2), model=_Broken("boat-neg", breaker))
    assert "model 'oracle'" in str(info.value)  # the run's model name (cfg.model)
    assert "question_id 'boat-neg'" in str(info.value)
    # the batch holding the bad answer (questions 3 and 4) is not written; earlier ones are
    assert list(load_predictions(out / PREDICTIONS_FILE)) == ["plane-ident", "plane-pos"]


def test_wrong_number_of_answers(qa_file, tmp_path):
    class Short:
        name = "short"

        def predict(self, items):
            return OracleModel().predict(items)[:-1]

    with pytest.raises(ModelOutputError, match="returned 2 answers for a batch of 3 questions"):
        run_eval(_cfg(qa_file, tmp_path / "run", batch_size=3), model=Short())


@pytest.mark.filterwarnings("ignore::UserWarning")  # the scorer warns about the extra key
def test_masks_for_other_names_are_kept(qa_file, tmp_path):
    def extra_mask(answer: ModelAnswer, item: EvalItem) -> ModelAnswer:
        answer.masks = {**answer.masks, "mask_0": np.zeros(item.size, bool)}
        return answer

    outcome = run_eval(_cfg(qa_file, tmp_path / "run"), model=_Broken("boat-neg", extra_mask))
    assert outcome.results["overall"]["micro_giou"] == 1.0  # paired matching ignores it
    masks = load_predictions(tmp_path / "run" / PREDICTIONS_FILE)["boat-neg"].masks
    assert sorted(masks) == ["mask_0", "mast", "sail"]
