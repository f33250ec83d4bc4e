"""BIO targets on the real LLaMA SentencePiece tokenizer, and greedy span grouping."""

from __future__ import annotations

import pytest

from partonomy.models.backbones.llava import LlavaConfig, load_tokenizer
from partonomy.models.plum.bio import (
    BIO_IGNORE,
    B,
    I,
    O,
    build_bio_targets,
    find_part_spans,
    group_spans,
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(LlavaConfig())


def encode(tokenizer, answer: str) -> tuple[list[int], int]:
    """Ids of 'USER: ... ASSISTANT: <answer></s>' and the index of the answer's first token."""
    prompt = tokenizer.encode("USER: What parts does it have? ASSISTANT:", add_special_tokens=False)
    full = tokenizer.encode(
        f"USER: What parts does it have? ASSISTANT: {answer}</s>", add_special_tokens=False
    )
    assert full[: len(prompt)] == prompt  # the answer starts a new token after "ASSISTANT:"
    return full, len(prompt)


def words(tokenizer, ids, span) -> str:
    return tokenizer.decode([ids[k] for k in span]).strip()


# ----------------------------------------------------------------------------- group_spans
@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([B, I, I, O, B, I], [[0, 1, 2], [4, 5]]),
        ([I, B, I], [[1, 2]]),  # an I without B is ignored
        ([I, I, O], []),
        ([B, B], [[0], [1]]),  # a new B closes the open span
        ([O, B, I, O, I, B], [[1, 2], [5]]),  # I after O has no open span; B at the end
        ([B, BIO_IGNORE, I], [[0]]),  # any other value acts like O
        ([], []),
    ],
)
def test_group_spans(tags, expected):
    assert group_spans(tags) == expected


# ------------------------------------------------------------------------- build targets
def test_labels_and_spans_on_real_tokenizer(tokenizer):
    ids, start = encode(tokenizer, "It has a propulsion component, wings and a tail.")
    labels, spans = build_bio_targets(ids, start, ["tail", "propulsion component"], tokenizer)
    assert [words(tokenizer, ids, s) for s in spans] == ["propulsion component", "tail"]
    # "propulsion component" is three pieces: ▁prop ulsion ▁component -> B I I.
    assert [tokenizer.convert_ids_to_tokens(ids[k]) for k in spans[0]] == [
        "▁prop",
        "ulsion",
        "▁component",
    ]
    assert [labels[k] for k in spans[0]] == [B, I, I]
    assert [labels[k] for k in spans[1]] == [B]
    assert labels[:start] == [BIO_IGNORE] * start  # prompt positions carry no target
    tagged = {k for s in spans for k in s}
    assert all(labels[k] == O for k in range(start, len(ids)) if k not in tagged)


def test_part_inside_a_longer_word_is_not_matched(tokenizer):
    ids, start = encode(tokenizer, "The wingtip is above the wing.")
    (span,) = find_part_spans(ids, start, ["wing"], tokenizer)
    # The first "▁wing" is followed by "tip" (no word-start marker, alphanumeric): rejected.
    first_wing = ids.index(tokenizer.convert_tokens_to_ids("▁wing"), start)
    assert tokenizer.convert_ids_to_tokens(ids[first_wing + 1]) == "tip"
    assert span.tokens[0] > first_wing + 1
    assert words(tokenizer, ids, span.tokens) == "wing"


def test_part_only_inside_a_longer_word_is_an_error(tokenizer):
    ids, start = encode(tokenizer, "The wingtip is red.")
    with pytest.raises(ValueError, match=r"'wing'.*The wingtip is red"):
        build_bio_targets(ids, start, ["wing"], tokenizer)


def test_longest_first(tokenizer):
    ids, start = encode(tokenizer, "The front wheel and the rear wheel.")
    labels, spans = build_bio_targets(ids, start, ["wheel", "front wheel"], tokenizer)
    assert [words(tokenizer, ids, s) for s in spans] == ["front wheel", "wheel"]
    # "wheel" did not claim the second token of "front wheel": it took the rear one.
    assert spans[1][0] > spans[0][-1] + 1
    assert [labels[k] for k in spans[0]] == [B, I]
    found = find_part_spans(ids, start, ["wheel", "front wheel"], tokenizer)
    assert [s.part for s in found] == ["front wheel", "wheel"]


def test_already_labelled_token_rejects_the_match(tokenizer):
    ids, start = encode(tokenizer, "The front wheel is round.")
    # "wheel" only occurs as the second token of "front wheel", which is matched first.
    with pytest.raises(ValueError, match="'wheel'"):
        build_bio_targets(ids, start, ["front wheel", "wheel"], tokenizer)


def test_first_vs_all_occurrences(tokenizer):
    ids, start = encode(tokenizer, "A wing, a tail and another wing.")
    _, first = build_bio_targets(ids, start, ["wing", "tail"], tokenizer)
    assert [words(tokenizer, ids, s) for s in first] == ["wing", "tail"]
    found = find_part_spans(ids, start, ["wing", "tail"], tokenizer, all_occurrences=True)
    assert [s.part for s in found] == ["wing", "tail", "wing"]
    assert found[0].tokens[0] < found[1].tokens[0] < found[2].tokens[0]


def test_matching_starts_at_the_answer(tokenizer):
    # "parts" occurs in the question only.
    ids, start = encode(tokenizer, "It has a wing.")
    with pytest.raises(ValueError, match=r"'parts'.*It has a wing"):
        build_bio_targets(ids, start, ["parts"], tokenizer)


def test_part_before_punctuation_and_end_of_answer(tokenizer):
    ids, start = encode(tokenizer, "tail")  # the answer is the part itself, followed by </s>
    labels, spans = build_bio_targets(ids, start, ["tail"], tokenizer)
    assert len(spans) == 1 and words(tokenizer, ids, spans[0]) == "tail"
    assert labels[-1] == O  # </s>


def test_no_parts_gives_all_o(tokenizer):
    ids, start = encode(tokenizer, "It is a cat.")
    labels, spans = build_bio_targets(ids, start, [], tokenizer)
    assert spans == []
    assert set(labels[start:]) == {O}
