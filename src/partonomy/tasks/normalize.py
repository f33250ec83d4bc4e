"""The standard VQA / EvalAI answer normalisation (TextVQA, VQAv2), written for this project.

Steps, in order (each a function below, tested one by one):

1. :func:`tokenize_like_evalai`: lowercase; drop ``,`` and ``?``; ``'s`` -> `` 's``; strip; newlines
   and tabs become spaces.
2. :func:`strip_punctuation`: each of :data:`PUNCTUATION` is deleted when it touches a space or the
   text holds a digit-comma-digit group, else replaced by a space; then a period not followed by a
   digit is deleted (at most :data:`PERIOD_STRIP_LIMIT` of them: the reference passes
   ``re.UNICODE`` (= 32) where ``re.sub`` takes its ``count``).
3. :func:`digits_and_articles`: number words zero..ten (and ``none``) become digits; the articles
   ``a``, ``an``, ``the`` are dropped; contractions written without apostrophes get them back
   (``dont`` -> ``don't``, see :data:`CONTRACTIONS`).
"""

from __future__ import annotations

import re

PUNCTUATION: tuple[str, ...] = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_")
PUNCTUATION += ("-", ">", "<", "@", "`", ",", "?", "!")
"""Characters handled by :func:`strip_punctuation` (the period and apostrophe are not among them)."""
NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})
PERIOD_STRIP_LIMIT = 32
_DIGIT_COMMA_DIGIT = re.compile(r"(?<=\d)(,)+(?=\d)")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")

_CONTRACTED = """
ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't
haven't he'd he'd've he's how'd how'll how's isn't it'd it'd've it'll ma'am
mightn't mightn't've might've mustn't must've needn't not've o'clock oughtn't 'ow's'at shan't
she'd've should've shouldn't shouldn't've somebody'd've somebody'll somebody's someone'd
someone'd've someone'll someone's something'd something'd've something'll that's there'd
there'd've there're there's they'd they'd've they'll they're they've 'twas wasn't we'd've we've
weren't what'll what're what's what've when's where'd where's where've who'd who'd've who'll
who's who've why'll why're why's won't would've wouldn't wouldn't've y'all y'all'll y'all'd've
you'd you'd've you'll you're you've
"""


def _spellings_without_apostrophes(word: str) -> set[str]:
    """Every spelling of ``word`` with one or more of its apostrophes left out."""
    positions = [k for k, c in enumerate(word) if c == "'"]
    out = set()
    for mask in range(1, 1 << len(positions)):
        drop = {positions[b] for b in range(len(positions)) if mask >> b & 1}
        out.add("".join(c for k, c in enumerate(word) if k not in drop))
    return out


def _contractions() -> dict[str, str]:
    table: dict[str, str] = {}
    for word in _CONTRACTED.split():
        n = word.count("'")
        for spelling in _spellings_without_apostrophes(word):
            # words with two or more apostrophes are restored only when at most one is missing,
            # except that every spelling of a one-apostrophe word is restored
            if n == 1 or spelling.count("'") == n - 1:
                table.setdefault(spelling, word)
    # the reference table maps "somebody'd" to "somebodyd" (a typo there); kept for parity
    table["somebody'd"] = "somebodyd"
    return table


CONTRACTIONS = _contractions()
"""Apostrophe-less spelling -> contraction (lowercase; applied to whole words).

For parity with the reference scorer, "im", "ive", "id've", "lets" and "shes" stay as they are (its
entries for I'm, I've and I'd've are capitalised and so never match lowercased text, and it
restores let's and she's only from themselves)."""


def tokenize_like_evalai(text: str) -> str:
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    return text.replace("\n", " ").replace("\t", " ").strip()


def strip_punctuation(text: str) -> str:
    out = text
    comma_group = _DIGIT_COMMA_DIGIT.search(text) is not None
    for p in PUNCTUATION:
        delete = p + " " in text or " " + p in text or comma_group
        out = out.replace(p, "" if delete else " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=PERIOD_STRIP_LIMIT)


def digits_and_articles(text: str) -> str:
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def normalize_answer(text: str) -> str:
    """The full normalisation (module docstring); answers are compared after it."""
    return digits_and_articles(strip_punctuation(tokenize_like_evalai(text)))
