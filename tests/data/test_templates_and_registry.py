"""Answer templates (spans verbatim, once) and the SOURCES registry block."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from partonomy.cli.main import cli
from partonomy.data.sources.base import GROUPS, SourceInfo
from partonomy.data.sources.templates import (
    ANSWERS,
    QUESTIONS,
    compatible,
    compose_turn,
    join_names,
    occurrences,
    pick_compatible,
)
from partonomy.registries import SOURCES


def test_every_template_holds_the_span_once():
    assert len(QUESTIONS) >= 10 and len(ANSWERS) >= 10
    assert all(t.count("{class_name}") == 1 for t in (*QUESTIONS, *ANSWERS))


def test_join_and_occurrences():
    assert join_names(["a"]) == "a"
    assert join_names(["a", "b"]) == "a and b"
    assert join_names(["chair", "lamp", "rug"]) == "chair, lamp and rug"
    assert occurrences("table", "the pool table and the table") == 2
    assert occurrences("table", "tables") == 0  # whole words only
    assert not compatible("table", ["pool table"]) and compatible("lamp", ["pool table"])
    assert pick_compatible(["pool table", "table", "lamp", "chair"], 2) == ["pool table", "lamp"]


@pytest.mark.parametrize("seed", range(40))
def test_compose_turn_spans_occur_exactly_once(seed):
    rng = np.random.default_rng(seed)
    names = ["the wheel of the bicycle", "person", "sky"]
    question, answer, kept = compose_turn(names, rng)
    assert kept == names
    assert all(occurrences(n, answer) == 1 for n in kept)
    assert "the the" not in answer.lower() and "the the" not in question.lower()


def test_compose_turn_moves_to_a_template_that_fits():
    # "mask" is a word of some answer templates: those would hold the span twice, so another
    # template is used and both spans are kept
    for seed in range(20):
        _, answer, kept = compose_turn(["mask", "door"], np.random.default_rng(seed))
        assert kept == ["mask", "door"] and occurrences("mask", answer) == 1


def test_sources_registry_block():
    expected = {
        "ade20k", "cocostuff", "mapillary", "paco_lvis", "pascal_part", "partimagenet",
        "partonomy_core", "refclef", "refcoco", "refcoco+", "refcocog", "llava_instruct_150k",
        "reason_seg",
    }  # fmt: skip
    assert set(SOURCES.names()) == expected
    for name in expected:
        info = SOURCES.get(name)
        assert isinstance(info, SourceInfo) and info.name == name and info.check is not None
        assert info.group is None or info.group in GROUPS
        assert (info.open_reader is not None) == (info.group is not None)
    builders = {n for n in expected if SOURCES.get(n).build_descriptor is not None}
    assert builders == {"paco_lvis", "pascal_part", "partimagenet", "partonomy_core"}


def test_ls_sources():
    res = CliRunner().invoke(cli, ["ls", "sources"])
    assert res.exit_code == 0 and "refcoco+" in res.output and "reason_seg" in res.output
