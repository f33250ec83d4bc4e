"""The prompt templates of the non-PARTONOMY tasks (``docs/tasks.md`` lists them for users).

They follow the original PLUM evaluation code (``utils/vqa_dataset.py``, ``utils/dataset.py``
``ValDataset``): the user turn is the official question plus an instruction; the model wraps it in
its own chat template (PLUM: LLaVA v1, the image placeholder first).

Segmentation is teacher-forced: the model is given the question and this answer, and segments the
span. The original forced the expression itself as the answer for refCOCO, and a GPT-4
"reformulated response" picked at random for ReasonSeg; here ReasonSeg's short queries also force
the expression, and sentence queries force :data:`SENTENCE_ANSWER` (the span the ReasonSeg training
reader teaches: :data:`partonomy.data.sources.reason_seg.SENTENCE_SPAN`), so runs are deterministic.
"""

from __future__ import annotations

from partonomy.data.sources.reason_seg import SENTENCE_SPAN

SHORT_ANSWER_INSTRUCTION = "Answer the question using a single word or phrase."
"""Appended to TextVQA and GQA questions (after one space)."""
POPE_INSTRUCTION = 'Please answer the question with "Yes" or "No".'
"""Appended to POPE questions (after one space)."""
REFER_QUESTION = "What is {text} in this image? Please highlight the region in the image."
"""refCOCO family and ReasonSeg short queries."""
SENTENCE_QUESTION = "{text} Please explain why."
"""ReasonSeg sentence (long) queries."""
SENTENCE_ANSWER = f"It is {SENTENCE_SPAN}."
"""The teacher-forced answer to a sentence query; its span is ``SENTENCE_SPAN``."""


def vqa_question(task: str, question: str) -> str:
    """The user turn of a VQA question (official question + the task's instruction)."""
    instruction = POPE_INSTRUCTION if task == "pope" else SHORT_ANSWER_INSTRUCTION
    return f"{question.strip()} {instruction}"


def refer_question(expression: str, is_sentence: bool) -> str:
    return (SENTENCE_QUESTION if is_sentence else REFER_QUESTION).format(text=expression.strip())


def refer_answer(expression: str, is_sentence: bool) -> tuple[str, str]:
    """``(answer, span)`` to teacher-force: the expression itself, or the sentence answer."""
    if is_sentence:
        return SENTENCE_ANSWER, SENTENCE_SPAN
    text = expression.strip()
    return text, text
