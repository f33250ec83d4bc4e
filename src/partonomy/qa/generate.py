"""``generate_qa``: a descriptor in, explanatory-part-segmentation questions out.

For every image (descriptor instance) and every requested question type, in that order:

1. the type drafts the part question and its ground truth, or declines (counted in
   ``n_skipped``: no concept to compare with, an empty answer, too few objects);
2. 4 wrong answers are made by mutation (:mod:`partonomy.qa.mutation`); if one fails 20 times
   the question is dropped (counted in ``n_dropped``);
3. part-whole types add the object question and 4 wrong objects;
4. the 5 choices are shuffled (unless ``correct_first``) and the record is built.

Randomness: each (image, type) pair has its own generator seeded with
``[seed, image_index, type_position]`` (the position in :data:`partonomy.io.qa_pairs.QUESTION_TYPES`),
so the output is a pure function of the inputs and the seed, and asking for fewer types
leaves the questions of the others unchanged. At most one question per type per image.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from partonomy.errors import FormatError
from partonomy.io import masks as mask_io
from partonomy.io.descriptor import Descriptor, Instance
from partonomy.io.graph import ConceptGraph
from partonomy.io.labels import is_part_label, part_name
from partonomy.io.qa_pairs import CORRECT, INCORRECT, N_CHOICES, RECORD_KEYS, QAPair
from partonomy.io.qa_pairs import QUESTION_TYPES as TYPE_NAMES
from partonomy.qa import templates
from partonomy.qa.base import QuestionDraft, QuestionGenerator
from partonomy.qa.comparator import ExactComparator, PartComparator
from partonomy.qa.concepts import ConceptIndex, ImageContext, graph_from_descriptor
from partonomy.qa.cooccurrence import fit_cooccurrence
from partonomy.qa.embedder import Embedder, label_text, load_default_embedder
from partonomy.qa.mutation import MAX_TRIES, WrongAnswer, make_wrong_answers
from partonomy.qa.samplers import PRIOR_TEMPERATURE, RELATED_WEIGHT, ObjectSampler, PartSampler

logger = logging.getLogger(__name__)

N_WRONG = N_CHOICES - 1

_BEFORE = RECORD_KEYS.index("segmentations")
_KEY_ORDER_WITH_OPERATIONS = (
    "question_id",
    *RECORD_KEYS[:_BEFORE],
    "answer_operations",  # where the original generator writes it: before the masks
    *RECORD_KEYS[_BEFORE:],
)


@dataclass(frozen=True)
class GenerationOptions:
    """Knobs of the generator; the defaults are the original's.

    Attributes:
        max_tries: tries per wrong answer before the question is dropped.
        related_weight: weight of the uniform-over-related-parts component of part sampling.
        temperature: softmax temperature of the co-occurrence prior.
        prior_c: inverse L2 strength of the co-occurrence logistic regressions.
        prior_max_iter: L-BFGS iteration cap of that fit.
        correct_first: put the correct choice first, as the original did (default: shuffled).
        include_operations: store the mutation log as ``answer_operations`` in each record.
        concept_pool: which objects a question may compare with and draw object distractors from:
            ``with_images`` (labels that have an image in the descriptor, the original's) or
            ``graph`` (every object of the concept graph; this project's behaviour before issue 11).
        intersection_pairs: the concepts a Part Intersection question may compare an image with:
            ``symmetric`` (any object sharing a part; the default, see docs/deviations.md) or
            ``original`` (only the image's own label and labels that sort after it, as the
            original's candidate list, which makes self-intersection more common for late labels).
        part_whole_related: the related parts of part_to_whole / whole_to_part distractors:
            ``ground_truth`` (the visible parts only, so added parts come from the co-occurrence
            prior alone, as the original's ``related_parts = gt_parts``) or ``identification``
            (also the label's graph parts, as identification; harder; before issue 11).
    """

    max_tries: int = MAX_TRIES
    related_weight: float = RELATED_WEIGHT
    temperature: float = PRIOR_TEMPERATURE
    prior_c: float = 1.0
    prior_max_iter: int = 100
    correct_first: bool = False
    include_operations: bool = False
    concept_pool: Literal["with_images", "graph"] = "with_images"
    intersection_pairs: Literal["symmetric", "original"] = "symmetric"
    part_whole_related: Literal["ground_truth", "identification"] = "ground_truth"

    def __post_init__(self) -> None:
        choices = {
            "concept_pool": ("with_images", "graph"),
            "intersection_pairs": ("symmetric", "original"),
            "part_whole_related": ("ground_truth", "identification"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")


@dataclass
class GenerationResult:
    """What :func:`generate_qa` made.

    Attributes:
        records: the questions, by image index then in :data:`QUESTION_TYPES` order.
        n_dropped: per requested type, questions dropped because a wrong answer could not be made.
        n_skipped: per requested type, images that did not allow the type.
        notes: things the user should know (e.g. the object sampler fell back to uniform).
        embedder: name of the text embedder used, or None.
    """

    records: list[QAPair]
    n_dropped: dict[str, int]
    n_skipped: dict[str, int]
    notes: list[str] = field(default_factory=list)
    embedder: str | None = None


def resolve_types(types: Sequence[str] | None) -> list[QuestionGenerator]:
    """The generators of ``types`` (all if None), deduplicated, in :data:`QUESTION_TYPES` order.

    Raises:
        UnknownNameError: a name is not registered; the message suggests close matches.
    """
    from partonomy.registries import QUESTION_TYPES

    names = list(TYPE_NAMES) if types is None else list(dict.fromkeys(types))
    generators = {name: QUESTION_TYPES.get(name) for name in names}
    return [generators[n] for n in sorted(generators, key=_type_position)]


def _type_position(name: str) -> int:
    return TYPE_NAMES.index(name) if name in TYPE_NAMES else len(TYPE_NAMES)


def _visible_parts(inst: Instance, index: int, source: str | None) -> dict[str, list[mask_io.Rle]]:
    """Bare part name -> masks of the parts with at least one mask (checked)."""
    if not isinstance(inst.image_label, str) or not inst.image_label.strip():
        raise FormatError(
            "the object label is empty",
            file=source,
            record=index,
            field="image_label",
            hint="every instance needs the label of its object",
        )
    out: dict[str, list[mask_io.Rle]] = {}
    for label, rles in inst.segmentations.items():
        if not is_part_label(label):
            continue
        name = part_name(label)
        if not name.strip():
            raise FormatError(
                "part label with an empty part name",
                file=source,
                record=index,
                field=f"segmentations.{label}",
                hint="part labels look like '<object>--part:<part>'",
            )
        if rles:  # a part without masks is not visible
            out.setdefault(name, []).extend(rles)
    return out


def _object_embeddings(
    objects: Sequence[str], embedder: Embedder | Literal["default"] | None, notes: list[str]
) -> tuple[dict[str, np.ndarray] | None, str | None]:
    if embedder == "default":
        embedder, note = load_default_embedder()
        if note:
            notes.append(note)
    elif embedder is None:
        notes.append("no text embedder: object distractors are sampled uniformly among siblings")
    if embedder is None:
        return None, None
    vectors = np.asarray(embedder.embed([label_text(o) for o in objects]), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(objects):
        raise ValueError(
            f"embedder {embedder.name!r} returned shape {vectors.shape} for {len(objects)} texts; "
            "expected (n_texts, dim)"
        )
    return dict(zip(objects, vectors)), embedder.name


def generate_qa(
    descriptor: Descriptor,
    graph: ConceptGraph | None = None,
    *,
    seed: int,
    types: Sequence[str] | None = None,
    embedder: Embedder | Literal["default"] | None = "default",
    progress: bool = True,
    comparator: PartComparator | None = None,
    options: GenerationOptions | None = None,
    source: str | Path | None = None,
) -> GenerationResult:
    """Generate at most one question per requested type for every image of ``descriptor``.

    Args:
        descriptor: the dataset; part labels ``{obj}--part:{part}``, masks as RLE (copied into
            the records as they are, never decoded).
        graph: the concept graph; None derives it from the descriptor
            (:func:`~partonomy.qa.concepts.graph_from_descriptor`).
        seed: non-negative seed; same inputs and seed give identical records.
        types: question type names (did-you-mean on a typo); None = all of them.
        embedder: text embedder weighting object distractors; ``"default"`` loads the offline
            MiniLM and falls back to uniform (with a note) if it is missing; None = uniform.
        progress: show a tqdm progress bar over the images.
        comparator: how parts are compared in set operations (default: exact names).
        options: generator knobs (defaults: the original's).
        source: the descriptor's file, named in error messages.

    Returns:
        The records and the per-type dropped/skipped counts.

    Raises:
        UnknownNameError: an unknown type name.
        FormatError: an instance with an empty object label or part name.
        ValueError: a negative seed.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    options = options or GenerationOptions()
    comparator = comparator or ExactComparator()
    generators = resolve_types(types)
    source = str(source) if source is not None else None
    graph = graph if graph is not None else graph_from_descriptor(descriptor)
    visible = [_visible_parts(inst, i, source) for i, inst in enumerate(descriptor.instances)]
    labels = [inst.image_label for inst in descriptor.instances]
    concepts = ConceptIndex.build(
        graph,
        comparator,
        extra_objects=labels,
        pool=labels if options.concept_pool == "with_images" else None,
        intersection_pairs=options.intersection_pairs,
    )
    notes: list[str] = []
    unknown = sorted({lbl for lbl in labels if lbl not in graph.component_graph})
    if unknown:
        notes.append(
            f"{len(unknown)} object label(s) are not in the concept graph (e.g. '{unknown[0]}'): "
            "only the image's own parts count as related parts for their distractors"
        )

    vocab = sorted({p for parts in visible for p in parts})
    vocab_index = {p: i for i, p in enumerate(vocab)}
    logger.info("fitting the co-occurrence prior over %d parts", len(vocab))
    prior = fit_cooccurrence(
        vocab,
        ([vocab_index[p] for p in parts] for parts in visible),
        c=options.prior_c,
        max_iter=options.prior_max_iter,
    )
    part_sampler = PartSampler(
        prior, comparator, related_weight=options.related_weight, temperature=options.temperature
    )
    object_sampler, embedder_name = None, None
    if any(g.asks_object for g in generators):
        embeddings, embedder_name = _object_embeddings(concepts.all_objects, embedder, notes)
        object_sampler = ObjectSampler(concepts.all_objects, concepts.siblings, embeddings)

    n_dropped = {g.name: 0 for g in generators}
    n_skipped = {g.name: 0 for g in generators}
    # The loop allocates millions of small, acyclic objects (the records); Python's cyclic
    # collector would rescan all of them again and again, which grows quadratically on a
    # full-size dataset. Nothing here makes cycles, so it is paused for the loop.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        records = _generate_records(
            descriptor,
            visible,
            generators,
            concepts,
            part_sampler,
            object_sampler,
            seed=seed,
            options=options,
            progress=progress,
            n_dropped=n_dropped,
            n_skipped=n_skipped,
        )
    finally:
        if was_enabled:
            gc.enable()
    return GenerationResult(records, n_dropped, n_skipped, notes, embedder_name)


def _generate_records(
    descriptor: Descriptor,
    visible: list[dict[str, list[mask_io.Rle]]],
    generators: list[QuestionGenerator],
    concepts: ConceptIndex,
    part_sampler: PartSampler,
    object_sampler: ObjectSampler | None,
    *,
    seed: int,
    options: GenerationOptions,
    progress: bool,
    n_dropped: dict[str, int],
    n_skipped: dict[str, int],
) -> list[QAPair]:
    """The per-image loop of :func:`generate_qa` (counts go into ``n_dropped``/``n_skipped``)."""
    records: list[QAPair] = []
    instances = tqdm(descriptor.instances, desc="generate-qa", unit="image", disable=not progress)
    for index, inst in enumerate(instances):
        image = ImageContext.build(
            index, inst.image_path, inst.image_label, visible[index], concepts
        )
        weights = None  # the image's prior weights, computed once, on first use
        for gen in generators:
            rng = np.random.default_rng([seed, index, _type_position(gen.name)])
            draft = gen.draft(image, concepts, rng)
            if draft is None:
                n_skipped[gen.name] += 1
                continue
            if gen.asks_object and options.part_whole_related == "ground_truth":
                draft = replace(draft, related_parts=draft.correct_parts)
            if weights is None:
                weights = part_sampler.image_weights(image.parts)
            parts_source = part_sampler.for_question(
                weights, draft.related_parts, draft.no_add_keys
            )
            wrong = make_wrong_answers(
                draft.correct_parts, parts_source, rng, n_wrong=N_WRONG, max_tries=options.max_tries
            )
            if wrong is None:
                n_dropped[gen.name] += 1
                continue
            objects = None
            if gen.asks_object:
                assert object_sampler is not None
                objects = object_sampler.sample(image.label, N_WRONG, rng)
                if objects is None:
                    n_skipped[gen.name] += 1
                    continue
            records.append(_record(image, gen.name, draft, wrong, objects, rng, options))
    return records


def _record(
    image: ImageContext,
    question_type: str,
    draft: QuestionDraft,
    wrong: list[WrongAnswer],
    objects: list[str] | None,
    rng: np.random.Generator,
    options: GenerationOptions,
) -> QAPair:
    """Assemble one record; draws the choice order from ``rng`` unless ``correct_first``."""
    choices = [(draft.correct_parts, (), CORRECT)] + [
        (w.parts, w.operations, INCORRECT) for w in wrong
    ]
    if not options.correct_first:
        choices = [choices[int(i)] for i in rng.permutation(len(choices))]
    record = QAPair(
        question_id=f"{image.index}-{question_type}",
        image_path=image.image_path,
        image_label=image.label,
        question=draft.question,
        question_type=question_type,
        answer_choices=[templates.part_answer(draft.answer_prefix, p) for p, _, _ in choices],
        answer_types=[kind for _, _, kind in choices],
        answer_parts=[list(p) for p, _, _ in choices],
        # copies of the RLE dicts (cheap; the counts strings are shared, never decoded)
        segmentations={p: [dict(r) for r in image.masks[p]] for p in draft.correct_parts},
        explicit_id=True,
    )
    if options.include_operations:
        record.extra["answer_operations"] = [[op.to_dict() for op in ops] for _, ops, _ in choices]
        record.key_order = _KEY_ORDER_WITH_OPERATIONS
    if objects is not None:
        pairs = [(image.label, CORRECT)] + [(o, INCORRECT) for o in objects]
        if not options.correct_first:
            pairs = [pairs[int(i)] for i in rng.permutation(len(pairs))]
        record.object_question = templates.OBJECT_QUESTION
        record.object_answer_choices = [templates.object_answer(o) for o, _ in pairs]
        record.object_answer_types = [kind for _, kind in pairs]
        record.object_answer_classes = [o for o, _ in pairs]
    return record
