"""``partonomy generate-qa`` and ``partonomy split`` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from partonomy.cli.main import cli
from partonomy.io.descriptor import save_descriptor
from partonomy.io.graph import ConceptGraph, save_graph
from partonomy.io.qa_pairs import load_qa_pairs

from .conftest import make_descriptor


def _write_descriptor(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    save_descriptor(make_descriptor(), path)
    return path


def test_generate_then_split(tmp_path: Path) -> None:
    desc = _write_descriptor(tmp_path)
    out = tmp_path / "qa.json"
    runner = CliRunner()
    args = ["generate-qa", str(desc), "--out", str(out), "--seed", "5", "--embedder", "none"]
    result = runner.invoke(cli, [*args, "--types", "identification,positive", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "note: no text embedder" not in result.output  # no object types: nothing to say
    records = load_qa_pairs(out)
    assert {qa.question_type for qa in records} == {"identification", "positive"}
    assert all(qa.explicit_id and "answer_operations" not in qa.extra for qa in records)
    first = out.read_bytes()
    # same seed, same bytes; repeated --types and an explicit graph file
    graph = tmp_path / "graph.yaml"
    d = make_descriptor()
    save_graph(ConceptGraph(d.instance_graph, d.part_graph), graph)
    again = tmp_path / "again.json"
    result = runner.invoke(
        cli,
        [
            "generate-qa",
            str(desc),
            "--out",
            str(again),
            "--seed",
            "5",
            "--embedder",
            "none",
            "--types",
            "positive",
            "--types",
            "identification",
            "--graph",
            str(graph),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert again.read_bytes() == first

    result = runner.invoke(cli, ["split", str(out), "--out-dir", str(tmp_path / "split")])
    assert result.exit_code == 0, result.output
    train = load_qa_pairs(tmp_path / "split" / "qa_train.json")
    val = load_qa_pairs(tmp_path / "split" / "qa_val.json")
    assert len(train) + len(val) == len(records)
    assert not {q.image_path for q in train} & {q.image_path for q in val}
    assert len({q.image_path for q in val}) == round(len(make_descriptor().instances) * 0.2)


def test_files_written_elsewhere_keep_their_images(tmp_path: Path) -> None:
    """Image paths are relative to the file that names them: generate-qa and split rebase them
    when they write into another directory than their input's."""
    world = tmp_path / "world"
    world.mkdir()
    desc = _write_descriptor(world)
    out = tmp_path / "qa" / "qa.json"  # not beside the descriptor
    runner = CliRunner()
    args = ["generate-qa", str(desc), "--out", str(out), "--seed", "5", "--embedder", "none"]
    result = runner.invoke(cli, [*args, "--types", "identification", "--no-progress"])
    assert result.exit_code == 0, result.output
    records = load_qa_pairs(out)
    described = {i.image_path for i in make_descriptor().instances}
    assert {qa.image_path for qa in records} <= {f"../world/{p}" for p in described}

    result = runner.invoke(cli, ["split", str(out), "--out-dir", str(tmp_path / "a" / "b")])
    assert result.exit_code == 0, result.output
    for name in ("train", "val"):
        for qa in load_qa_pairs(tmp_path / "a" / "b" / f"qa_{name}.json"):
            assert qa.image_path.startswith("../../world/images/"), qa.image_path
            resolved = (tmp_path / "a" / "b" / qa.image_path).resolve()
            assert resolved.parent == (world / "images").resolve()


def test_object_types_flags_and_notes(tmp_path: Path) -> None:
    desc = _write_descriptor(tmp_path)
    out = tmp_path / "qa.json"
    result = CliRunner().invoke(
        cli,
        [
            "generate-qa",
            str(desc),
            "--out",
            str(out),
            "--seed",
            "0",
            "--embedder",
            "none",
            "--types",
            "part_to_whole",
            "--with-operations",
            "--correct-first",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "note: no text embedder" in result.output
    assert "part_to_whole: 14 written, 0 dropped" in result.output
    raw = json.loads(out.read_text())
    assert all(r["answer_types"][0] == "correct" for r in raw)
    assert list(raw[0])[7:10] == ["answer_parts", "answer_operations", "segmentations"]


def test_bad_types_did_you_mean(tmp_path: Path) -> None:
    desc = _write_descriptor(tmp_path)
    result = CliRunner().invoke(
        cli,
        [
            "generate-qa",
            str(desc),
            "--out",
            str(tmp_path / "qa.json"),
            "--seed",
            "0",
            "--types",
            "identification,negativ",
        ],
    )
    assert result.exit_code == 2
    assert "Unknown question type 'negativ'" in result.output
    assert "Did you mean: negative" in result.output
    assert not (tmp_path / "qa.json").exists()


def test_bad_descriptor_names_file_record_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    raw = make_descriptor().to_dict()
    raw["instances"][3]["image_label"] = ""
    path.write_text(json.dumps(raw))
    result = CliRunner().invoke(
        cli, ["generate-qa", str(path), "--out", str(tmp_path / "qa.json"), "--seed", "0"]
    )
    assert result.exit_code == 2
    assert f"{path}, record 3, field 'image_label'" in result.output
    missing = CliRunner().invoke(
        cli, ["generate-qa", str(tmp_path / "nope.json"), "--out", "x.json", "--seed", "0"]
    )
    assert missing.exit_code == 2 and "not found" in missing.output


def test_same_bytes_across_processes(tmp_path: Path) -> None:
    """Two processes with different string-hash seeds write identical files (no set-order leaks)."""
    import os
    import subprocess
    import sys

    desc = _write_descriptor(tmp_path)
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"qa_{hash_seed}.json"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        code = "from partonomy.cli.main import cli; cli()"
        args = ["generate-qa", str(desc), "--out", str(out), "--seed", "11", "--no-progress"]
        args += ["--embedder", "none", "--types", "difference,negative_with_label,part_to_whole"]
        subprocess.run([sys.executable, "-c", code, *args], check=True, env=env)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
