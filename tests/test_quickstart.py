"""``partonomy quickstart`` end to end: a reduced run by default, the full run (floors) as slow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from partonomy.cli.main import cli
from partonomy.training.quickstart import QuickstartConfig, check_floors, run_quickstart


def test_reduced_quickstart_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    lines: list[str] = []
    cfg = QuickstartConfig(
        n_images=30,
        eval_limit=12,
        train_overrides=["max_steps=3", "optim.warmup_steps=1", "checkpoint.every=2",
                         "data.micro_batch_size=2", "num_threads=1"],
    )  # fmt: skip
    result = run_quickstart(out, cfg, progress=False, echo=lines.append)

    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(result.results))
    assert list(saved["models"]) == ["plum", "random", "whole_object", "oracle"]
    oracle = saved["models"]["oracle"]["overall"]
    assert oracle["macro_giou"] == 1.0 and oracle["accuracy"] == 1.0
    assert saved["models"]["random"]["overall"]["macro_giou"] is None  # random draws no masks
    plum = saved["models"]["plum"]["overall"]
    assert plum["n_questions"] == min(12, saved["data"]["n_val"])
    assert 0.0 <= plum["macro_giou"] <= 1.0
    train = saved["train"]["plum"]
    assert train["steps"] == 3 and Path(train["checkpoint"]).is_dir()
    assert (out / "examples.png").is_file() and any("examples.png" in line for line in lines)
    assert [c["name"] for c in saved["floors"]["plum"]["checks"]][:3] == [
        "plum macro_giou >= 0.5",
        "plum macro_giou >= 2 x whole_object",
        "plum accuracy >= 0.4",
    ]
    assert saved["floors"]["plum"]["checks"][3]["name"].startswith("plum micro_giou > whole_object")
    # The printed tables: Table 2 and 3 layouts, one row per model.
    text = "\n".join(lines)
    assert "Table 2: segmentation" in text and "Table 3: text answer selection" in text
    for name in ("plum", "random", "whole_object", "oracle"):
        assert f"| {name} |" in result.tables
    assert (out / "tables.md").read_text() == result.tables

    # Running again continues: data reused, training already finished, evaluation redone.
    again = run_quickstart(out, cfg, progress=False, echo=lambda _: None)
    assert again.results["train"]["plum"]["steps"] == 3
    assert again.results["data"] == saved["data"]


def test_floor_checks_hand_computed() -> None:
    def res(macro: float | None, acc: float | None, positive_giou: float = 0.9) -> dict:
        ident = {"macro_giou": macro, "micro_giou": macro, "accuracy": acc}
        positive = {"macro_giou": 0.95, "micro_giou": positive_giou, "accuracy": 0.9}
        return {"by_type": {"identification_with_label": ident, "positive_with_label": positive}}

    ok = check_floors({"plum": res(0.6, 0.45), "whole_object": res(0.25, None, 0.5)})
    assert ok["passed"] and ok["question_type"] == "identification_with_label"
    # identification: >= 0.5, >= 2 x 0.25, accuracy >= 0.4; then > whole_object on every type
    assert [c["threshold"] for c in ok["checks"]] == [0.5, 0.5, 0.4, 0.25, 0.5]
    low = check_floors({"plum": res(0.55, 0.3), "whole_object": res(0.3, None)})
    # 0.55 < 2 x 0.3; accuracy 0.3 < 0.4; positive 0.9 is not > 0.9
    assert [c["passed"] for c in low["checks"]] == [True, False, False, True, False]
    none = check_floors({"plum": res(None, None), "whole_object": res(0.3, None)})
    assert not none["passed"]
    lisa = check_floors({"lisa": res(0.6, 0.5), "whole_object": res(0.2, None, 0.5)}, "lisa")
    assert lisa["checks"][0]["name"] == "lisa macro_giou >= 0.5"


def test_cli_quickstart_help() -> None:
    result = CliRunner().invoke(cli, ["quickstart", "--help"])
    assert result.exit_code == 0 and "--out" in result.output


@pytest.mark.slow
def test_full_quickstart_reaches_the_learning_floors(tmp_path: Path) -> None:
    result = run_quickstart(tmp_path / "qs", progress=False, echo=print)
    assert result.passed, result.floors
    assert result.seconds < 600


def test_set_backbone_picks_the_tiny_qwen2_5_vl_sam2_preset(tmp_path: Path) -> None:
    """``--set backbone=qwen2_5_vl`` (the issue's form) resolves to the tiny Qwen2.5-VL-shaped
    PLUM with a tiny SAM 2; the other ``--set`` items still override that config."""
    from partonomy.training.quickstart import find_config, quickstart_train_config, take_backbone

    backbone, rest = take_backbone(["max_steps=7", "backbone=qwen2_5_vl"])
    assert (backbone, rest) == ("qwen2_5_vl", ["max_steps=7"])
    path = find_config(None, "plum", backbone)
    assert path.name == "plum_qwen2_5_vl_tiny_synth.yaml"
    cfg = quickstart_train_config(path, "plum", tmp_path, tmp_path / "qa.json", rest)
    assert cfg.family == "plum" and cfg.max_steps == 7
    assert cfg.model.backbone == "qwen2_5_vl" and cfg.model.vlm.pretrained is None
    assert cfg.model.sam.kind == "sam2" and cfg.model.sam.pretrained is None
    assert find_config(None, "plum", "llava").name == "tiny_synth.yaml"


def test_set_backbone_unknown_fails_before_any_work(tmp_path: Path) -> None:
    args = ["quickstart", "--out", str(tmp_path / "qs"), "--set", "backbone=qwen9_vl"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert "backbone presets: llava, qwen2_5_vl" in result.output
    assert not (tmp_path / "qs").exists()  # no world was written
