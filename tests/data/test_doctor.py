"""``partonomy data check`` on a complete tree and on broken ones."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from partonomy.cli.main import cli
from partonomy.data.doctor import check_tree

STAGE1 = {
    "ade20k", "cocostuff", "mapillary", "paco_lvis", "pascal_part", "refclef", "refcoco",
    "refcoco+", "refcocog", "llava_instruct_150k", "reason_seg",
}  # fmt: skip
STAGE2 = {"paco_lvis", "pascal_part", "partimagenet"}


@pytest.fixture
def tree(tmp_path, full_tree):
    """A private copy of the complete tree, to break."""
    copy = tmp_path / "dataset"
    shutil.copytree(full_tree, copy)
    return copy


def _run(*args):
    return CliRunner().invoke(cli, ["data", "check", *map(str, args)])


def test_complete_tree_every_config(full_tree):
    for config, names in (("stage1", STAGE1), ("stage2", STAGE2)):
        report = check_tree(full_tree, config, deep=True)
        assert {r.name for r in report.results} == names
        assert report.ok, report.render()
    report = check_tree(full_tree, "all", deep=True)
    assert {r.name for r in report.results} == STAGE1 | STAGE2 | {"partonomy_core"}
    counts = {r.name: r.counts for r in report.results}
    assert counts["ade20k"] == {"images": 2, "label maps": 2}
    assert counts["paco_lvis"]["annotations"] == 16 and counts["paco_lvis"]["images"] == 3
    assert counts["refcocog"]["sentences"] == 4
    assert counts["reason_seg"] == {"train images": 2, "val images": 1, "explanatory file": 1}
    assert counts["partonomy_core"] == {"labels": 4, "mask files": 4}


def test_cli_complete_tree_exits_zero_and_prints_paths(full_tree):
    res = _run(full_tree.parent, "--config", "stage1")  # the folder above dataset/ works too
    assert res.exit_code == 0, res.output
    assert "all 11 datasets found" in res.output
    assert f"expects {full_tree / 'ade20k' / 'annotations' / 'training' / '*.png'}" in res.output
    assert f"expects {full_tree / 'refer_seg' / 'refcocog' / 'refs(umd).p'}" in res.output
    assert "FOUND" in res.output and "MISSING" not in res.output


def test_cli_root_that_does_not_exist_is_a_usage_error(tmp_path):
    res = _run(tmp_path / "nope")  # a typo: not "13 of 13 datasets not usable"
    assert res.exit_code == 2
    assert "does not exist" in res.output and "nope" in res.output


def test_missing_dataset_fails_only_the_configs_that_need_it(tree):
    shutil.rmtree(tree / "mapillary")
    res = _run(tree, "--config", "stage1")
    assert res.exit_code == 1
    assert "MISSING" in res.output and "missing mapillary/config_v2.0.json" in res.output
    assert "1 of 11 datasets not usable: mapillary" in res.output
    assert _run(tree, "--config", "stage2").exit_code == 0  # stage 2 does not need Mapillary
    (tree / "PartImageNet" / "annotations" / "train" / "train.json").unlink()
    res = _run(tree, "--config", "stage2")
    assert res.exit_code == 1 and "partimagenet" in res.output


def test_malformed_files_are_reported(tree):
    paco = tree / "vlpart" / "paco" / "annotations" / "paco_lvis_v1_train.json"
    paco.write_text(paco.read_text()[:-40])  # truncated download
    (tree / "coco" / "train2017" / "000000000009.jpg").unlink()  # cocostuff label w/o image
    (tree / "reason_seg" / "ReasonSeg" / "val" / "c.json").write_text("{not json")
    report = check_tree(tree, "stage1")
    status = {r.name: r.status for r in report.results}
    assert status["paco_lvis"] == "malformed"
    assert status["cocostuff"] == "malformed"
    assert status["reason_seg"] == "malformed"
    assert status["ade20k"] == "found"
    text = report.render()
    assert "truncated" in text and "000000000009.png" in text and "c.json" in text
    assert _run(tree, "--config", "stage1").exit_code == 1


def test_deep_check_validates_annotations(tree):
    path = tree / "vlpart" / "pascal_part" / "train.json"
    data = json.loads(path.read_text())
    data["annotations"][1]["category_id"] = 42
    path.write_text(json.dumps(data))
    assert check_tree(tree, "stage2").ok  # the quick check does not parse annotations
    report = check_tree(tree, "stage2", deep=True)
    [pascal] = [r for r in report.results if r.name == "pascal_part"]
    assert pascal.status == "malformed" and pascal.counts["bad records"] == 1
    assert "annotation id 2" in pascal.problems[0] and "category id 42" in pascal.problems[0]


def test_empty_root(tmp_path):
    report = check_tree(tmp_path, "all")
    assert not report.ok and all(r.status == "missing" for r in report.results)
    assert _run(tmp_path).exit_code == 1


def test_progress_bar_names_each_dataset_on_stderr(full_tree, capsys):
    report = check_tree(full_tree, "stage2", progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "data check" in captured.err
    assert all(r.name in captured.err for r in report.results)
    check_tree(full_tree, "stage2")  # the library default is quiet
    assert capsys.readouterr().err == ""
    assert _run(full_tree, "--config", "stage2", "--no-progress").exit_code == 0
