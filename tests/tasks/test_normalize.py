"""The EvalAI answer normalisation, rule by rule (hand-written cases)."""

from __future__ import annotations

import pytest

from partonomy.tasks.normalize import (
    CONTRACTIONS,
    digits_and_articles,
    normalize_answer,
    strip_punctuation,
    tokenize_like_evalai,
)


def test_lowercase_commas_question_marks_and_possessive() -> None:
    assert tokenize_like_evalai("  The Dog's Bowl, Right?\n") == "the dog 's bowl right"


def test_newlines_and_tabs_become_spaces() -> None:
    assert tokenize_like_evalai("red\tand\nblue") == "red and blue"


def test_punctuation_touching_a_space_is_deleted() -> None:
    assert strip_punctuation("yes !") == "yes "
    # "(" touches no space: a space; ")" touches one: deleted
    assert strip_punctuation("(left) side") == " left side"


def test_punctuation_inside_a_word_becomes_a_space() -> None:
    assert strip_punctuation("t-shirt") == "t shirt"
    assert strip_punctuation("and/or") == "and or"


def test_digit_comma_digit_group_deletes_all_punctuation() -> None:
    assert strip_punctuation("1,000-2") == "10002"


def test_period_is_deleted_unless_a_digit_follows() -> None:
    assert strip_punctuation("3.5 m.") == "3.5 m"
    assert strip_punctuation("etc.") == "etc"


def test_number_words_become_digits_up_to_ten() -> None:
    assert digits_and_articles("two dogs and ten cats") == "2 dogs and 10 cats"
    assert digits_and_articles("none") == "0"
    assert digits_and_articles("eleven") == "eleven"


def test_articles_are_dropped() -> None:
    assert digits_and_articles("a cat an owl the end") == "cat owl end"


@pytest.mark.parametrize(
    ("word", "restored"),
    [("dont", "don't"), ("isnt", "isn't"), ("youre", "you're"), ("couldntve", "couldntve")],
)
def test_contractions_get_their_apostrophes(word: str, restored: str) -> None:
    assert digits_and_articles(word) == restored


def test_two_apostrophe_contractions_need_one_present() -> None:
    assert CONTRACTIONS["couldn'tve"] == "couldn't've"
    assert CONTRACTIONS["couldnt've"] == "couldn't've"
    assert "couldntve" not in CONTRACTIONS


def test_reference_quirks_kept() -> None:
    assert normalize_answer("Im here") == "im here"  # capitalised reference keys never match
    assert CONTRACTIONS["somebody'd"] == "somebodyd"


def test_full_pipeline() -> None:
    assert normalize_answer("The Two Dogs!") == "2 dogs"
    assert normalize_answer("Dakota Digital.") == "dakota digital"
