"""Training data for the PLUM recipe: QA-pair files (stage 2) and the stage-1 mixture, as
:class:`~partonomy.data.sample.TrainingSample` lists.

Stage 2 trains on the **correct answer** of each explanatory QA pair, with one mask per part it
names (the union of that part's instance masks). Part-whole types keep their chain:

* ``whole_to_part``: history = (object question, correct object answer); the last turn is the part
  question and its correct answer, whose parts are segmented.
* ``part_to_whole``: the part turn (segmented) is one sample; with ``object_turn`` on, a second,
  mask-free sample trains the object answer with the part turn as history.

Every file in ``files`` is trained (the original's stage-2 loop overwrote its list of paths and
trained only the last split; see docs/training.md).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, overload

import numpy as np

from partonomy.data.sample import TrainingSample, Turn
from partonomy.errors import ConfigError
from partonomy.io import masks as mask_io
from partonomy.io.qa_pairs import QUESTION_TYPES, QAPair, load_qa_pairs

log = logging.getLogger(__name__)


@dataclass
class QADataConfig:
    """Stage-2 data: explanatory QA-pair JSON files.

    Attributes:
        files: QA-pair JSON files (the train split of each source); all of them are trained.
        image_root: directory relative ``image_path`` values resolve against; default: the
            directory of each QA file.
        question_types: keep only these types (None = all). The paper's stage 2 used
            ``identification_with_label``, ``positive_with_label``, ``negative_with_label``.
        one_question_per_image: keep one question per (image, question type), chosen with
            ``seed`` (the original's ``--sample_one_question_per_image``).
        seed: seed of that choice.
        object_turn: for ``part_to_whole``, also train the object answer (mask-free sample).
    """

    files: list[str] = field(default_factory=list)
    image_root: str | None = None
    question_types: list[str] | None = None
    one_question_per_image: bool = False
    seed: int = 42
    object_turn: bool = True

    def __post_init__(self) -> None:
        for t in self.question_types or []:
            if t not in QUESTION_TYPES:
                raise ConfigError(
                    f"data.qa.question_types: unknown type {t!r}; known: {', '.join(QUESTION_TYPES)}"
                )


@dataclass
class DataConfig:
    """Where training samples come from and how they are batched.

    Attributes:
        kind: ``"qa_pairs"`` (stage 2; section ``qa``) or ``"mixture"`` (stage 1; section
            ``mixture``, handed to :mod:`partonomy.data.mixture`).
        qa: the QA-pair files (``kind: qa_pairs``).
        mixture: the stage-1 mixture config (:class:`partonomy.data.mixture.MixtureConfig`:
            root, sample_rates, datasets, ...), validated when the mixture is built.
        micro_batch_size: samples per process per forward/backward.
        shuffle: seeded shuffling of the sample order each epoch (seed = ``seed`` of the run).
        cache_encoded: keep every encoded sample in memory after its first use (small datasets:
            saves the image decoding and resizing of later epochs).
        all_occurrences: tag every occurrence of a part name in the answer (training tags only
            the first one, as the original does).
        limit: use only the first ``limit`` samples (None = all); for smoke runs.
        group_by_length: batch conversations of similar length together (issue 12: less padding;
            :class:`~partonomy.training.sampler.BatchPlan`): the epoch's shuffled order is sorted
            by length within windows of ``group_window`` global micro-batches, and the batches of
            a window are shuffled. Lengths are the conversations' characters
            (:func:`sample_lengths`), known without decoding images or masks for QA-pair data;
            the stage-1 mixture has no cheap lengths and refuses it.
        group_window: global micro-batches per sorting window (larger: less padding, less
            randomness in which conversations share a batch).
    """

    kind: Literal["qa_pairs", "mixture"] = "qa_pairs"
    qa: QADataConfig = field(default_factory=QADataConfig)
    mixture: dict[str, Any] = field(default_factory=dict)
    micro_batch_size: int = 2
    shuffle: bool = True
    cache_encoded: bool = False
    all_occurrences: bool = False
    limit: int | None = None
    group_by_length: bool = False
    group_window: int = 32

    def __post_init__(self) -> None:
        if self.micro_batch_size <= 0:
            raise ConfigError(
                f"data.micro_batch_size must be positive, got {self.micro_batch_size}"
            )
        if self.group_window <= 0:
            raise ConfigError(f"data.group_window must be positive, got {self.group_window}")


def _resolve_image(qa: QAPair, qa_file: Path, image_root: str | None) -> Path:
    path = Path(qa.image_path)
    if path.is_absolute():
        return path
    return (Path(image_root) if image_root else qa_file.parent) / path


def part_masks(qa: QAPair) -> dict[str, np.ndarray]:
    """Correct parts -> ``(H, W)`` uint8 0/1 masks (union of that part's instance masks),
    in ``answer_parts`` order."""
    out: dict[str, np.ndarray] = {}
    for part in qa.correct_parts:
        rles = qa.segmentations[part]
        out[part] = mask_io.decode(mask_io.union(rles)).astype(np.uint8)
    return out


def part_positions(answer: str, parts: Sequence[str]) -> dict[str, int]:
    """Character offset of each part name's first whole-word occurrence in ``answer``.

    Longer names claim their text first, so "wing" is not found inside an earlier "left wing"
    (the same rule the BIO targets use on tokens). Parts that do not occur are left out.
    """
    claimed: list[tuple[int, int]] = []
    found: dict[str, int] = {}
    for part in sorted(parts, key=len, reverse=True):
        pattern = re.compile(rf"(?<![\w]){re.escape(part)}(?![\w])")
        for match in pattern.finditer(answer):
            lo, hi = match.span()
            if all(hi <= a or lo >= b for a, b in claimed):
                claimed.append((lo, hi))
                found[part] = lo
                break
    return found


def qa_conversations(qa: QAPair, *, object_turn: bool = True) -> list[list[Turn]]:
    """The conversations of :func:`qa_to_samples`'s samples, in the same order (text only:
    no mask is decoded)."""
    answer = qa.answer_choices[qa.correct_index]
    history: list[Turn] = []
    if qa.question_type == "whole_to_part" and qa.object_question is not None:
        assert qa.object_answer_choices is not None and qa.object_correct_index is not None
        history = [(qa.object_question, qa.object_answer_choices[qa.object_correct_index])]
    conversations = [[*history, (qa.question, answer)]]
    if object_turn and qa.question_type == "part_to_whole" and qa.object_question is not None:
        assert qa.object_answer_choices is not None and qa.object_correct_index is not None
        object_answer = qa.object_answer_choices[qa.object_correct_index]
        conversations.append([(qa.question, answer), (qa.object_question, object_answer)])
    return conversations


def conversation_length(conversation: Sequence[Turn]) -> int:
    """Characters of a conversation's questions and answers: the length proxy of
    ``data.group_by_length`` (proportional to the token count for the same tokenizer; the image
    adds the same number of tokens to every sample)."""
    return sum(len(question) + len(answer) for question, answer in conversation)


def qa_to_samples(
    qa: QAPair, image: np.ndarray | Path, *, object_turn: bool = True, source: str = ""
) -> tuple[list[TrainingSample], int]:
    """The training samples of one QA pair (correct answers only).

    Args:
        qa: the record.
        image: the image, or its path (loaded lazily by the collator).
        object_turn: for ``part_to_whole``, add the mask-free object-answer sample.
        source: recorded in each sample's ``source``.

    Returns:
        ``(samples, n_unmatched)``: the samples, and how many correct parts were dropped because
        their name does not occur verbatim in the correct answer text (so no span can carry
        their mask). Masks are ordered by their first occurrence in the answer.
    """
    answer = qa.answer_choices[qa.correct_index]
    masks = part_masks(qa)
    starts = part_positions(answer, list(masks))
    ordered = {p: masks[p] for p in sorted(starts, key=starts.__getitem__)}
    meta = {"question_id": qa.question_id, "question_type": qa.question_type}
    samples = []
    for k, conversation in enumerate(qa_conversations(qa, object_turn=object_turn)):
        samples.append(
            TrainingSample(
                image=image,
                conversation=conversation,
                masks=ordered if k == 0 else {},
                source=source,
                meta=meta if k == 0 else {**meta, "turn": "object"},
            )
        )
    return samples, len(masks) - len(ordered)


def _one_per_image(records: list[QAPair], seed: int) -> list[QAPair]:
    groups: dict[tuple[str, str], list[QAPair]] = defaultdict(list)
    for qa in records:
        groups[(qa.image_path, qa.question_type)].append(qa)
    rng = np.random.default_rng(seed)
    keep = {id(g[int(rng.integers(len(g)))]) for _, g in sorted(groups.items())}
    return [qa for qa in records if id(qa) in keep]


class SampleSet(Sequence[TrainingSample]):
    """An indexable set of training samples, each built on access (masks decoded only then).

    Args:
        makers: one zero-argument function per sample.
        lengths: each sample's :func:`conversation_length` (known without building it).
    """

    def __init__(self, makers: list[Callable[[], TrainingSample]], lengths: list[int]) -> None:
        if len(lengths) != len(makers):
            raise ValueError(f"{len(lengths)} lengths for {len(makers)} samples")
        self._makers = makers
        self._lengths = lengths

    def lengths(self) -> list[int]:
        """Each sample's :func:`conversation_length`, without building the samples."""
        return list(self._lengths)

    def __len__(self) -> int:
        return len(self._makers)

    @overload
    def __getitem__(self, index: int) -> TrainingSample: ...

    @overload
    def __getitem__(self, index: slice) -> SampleSet: ...

    def __getitem__(self, index: int | slice) -> TrainingSample | SampleSet:
        if isinstance(index, slice):
            return SampleSet(self._makers[index], self._lengths[index])
        return self._makers[index]()


def _maker(
    qa: QAPair, image: Path, object_turn: bool, source: str, k: int
) -> Callable[[], TrainingSample]:
    def make() -> TrainingSample:
        return qa_to_samples(qa, image, object_turn=object_turn, source=source)[0][k]

    return make


def load_qa_samples(cfg: QADataConfig) -> SampleSet:
    """Read every file of ``cfg.files`` and index the training samples of the kept records.

    Masks are decoded when a sample is accessed, not here.

    Raises:
        FormatError: a malformed QA file (from :func:`~partonomy.io.qa_pairs.load_qa_pairs`).
        ConfigError: no file listed, a listed file does not exist, or nothing is left after
            filtering.
    """
    if not cfg.files:
        raise ConfigError("data.qa.files is empty: list the QA-pair JSON files to train on")
    makers: list[Callable[[], TrainingSample]] = []
    lengths: list[int] = []
    for name in cfg.files:
        path = Path(name)
        if not path.exists():
            raise ConfigError(
                f"data.qa.files: {path} does not exist (generate it with `partonomy generate-qa` "
                "and `partonomy split`, or fix the path)"
            )
        records = load_qa_pairs(path)
        if cfg.question_types is not None:
            records = [qa for qa in records if qa.question_type in cfg.question_types]
        if cfg.one_question_per_image:
            records = _one_per_image(records, cfg.seed)
        unmatched = 0
        before = len(makers)
        for qa in records:
            answer = qa.answer_choices[qa.correct_index]
            unmatched += len(qa.correct_parts) - len(part_positions(answer, qa.correct_parts))
            image = _resolve_image(qa, path, cfg.image_root)
            conversations = qa_conversations(qa, object_turn=cfg.object_turn)
            makers.extend(
                _maker(qa, image, cfg.object_turn, path.stem, k) for k in range(len(conversations))
            )
            lengths.extend(conversation_length(c) for c in conversations)
        if unmatched:
            log.warning(
                "%s: %d correct part(s) do not occur verbatim in their answer text and get no "
                "mask (e.g. an intersection answer that uses a synonym)",
                path,
                unmatched,
            )
        log.info("%s: %d records -> %d training samples", path, len(records), len(makers) - before)
    if not makers:
        raise ConfigError(
            f"data.qa: no training samples in {', '.join(cfg.files)} after filtering "
            f"(question_types={cfg.question_types})"
        )
    return SampleSet(makers, lengths)


def load_mixture_samples(mixture: dict[str, Any]) -> Sequence[TrainingSample]:
    """The stage-1 mixture (:class:`partonomy.data.mixture.Mixture`, map-style) from its config.

    Raises:
        ConfigError: the mixture module is not available in this checkout, or the mixture config
            is invalid; the message names what is missing.
    """
    import importlib.util

    if importlib.util.find_spec("partonomy.data.mixture") is None:
        raise ConfigError(
            "data.kind is 'mixture' (stage 1) but partonomy.data.mixture is not installed in this "
            "checkout: stage-1 training needs the mixture builder and its readers under "
            "partonomy.data.sources (ade20k, cocostuff, pascal_part, paco_lvis, mapillary, "
            "refcoco*, llava_instruct_150k, reason_seg). Use a stage-2 config (data.kind: "
            "qa_pairs) meanwhile."
        )
    from partonomy.data.mixture import Mixture

    try:
        # A map-style dataset (len + getitem), which is all the batch plan needs of a Sequence.
        return cast("Sequence[TrainingSample]", Mixture.from_dict(mixture))
    except ValueError as err:  # MixtureConfig checks raise ValueError / ConfigError
        raise ConfigError(f"data.mixture: {err}") from None


def load_samples(cfg: DataConfig) -> Sequence[TrainingSample]:
    """The training samples of ``cfg`` (first ``cfg.limit`` of them if set)."""
    samples: Sequence[TrainingSample] = (
        load_mixture_samples(cfg.mixture) if cfg.kind == "mixture" else load_qa_samples(cfg.qa)
    )
    if cfg.limit is None:
        return samples
    return samples[: cfg.limit] if isinstance(samples, SampleSet) else _Head(samples, cfg.limit)


def sample_lengths(samples: Sequence[TrainingSample]) -> list[int]:
    """Each sample's :func:`conversation_length`, for ``data.group_by_length``: from the set's own
    ``lengths()`` when it has one (QA-pair data: no sample is built), else from each sample of
    an in-memory list.

    Raises:
        ConfigError: the set builds its samples on access and knows no lengths (the stage-1
            mixture): building every sample once would read every image and mask.
    """
    known = getattr(samples, "lengths", None)
    if callable(known):
        return list(known())
    if isinstance(samples, list | tuple):
        return [conversation_length(s.conversation) for s in samples]
    raise ConfigError(
        f"data.group_by_length: the training set ({type(samples).__name__}) does not know its "
        "conversations' lengths without reading every sample; set data.group_by_length: false"
    )


class _Head(Sequence[TrainingSample]):
    """The first ``n`` items of a map-style dataset."""

    def __init__(self, base: Sequence[TrainingSample], n: int) -> None:
        self._base, self._n = base, min(n, len(base))

    def __len__(self) -> int:
        return self._n

    def lengths(self) -> list[int]:
        """The base set's first ``n`` lengths (:func:`sample_lengths`)."""
        return sample_lengths(self._base)[: self._n]

    def __getitem__(self, index: int) -> TrainingSample:  # type: ignore[override]
        if not 0 <= index < self._n:
            raise IndexError(index)
        return self._base[index]
