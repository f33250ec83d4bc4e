"""A segmentation LMM as a benchmark model and as a free-form assistant (``partonomy eval
--model plum|lisa|glamm``, ``partonomy predict --model ...``). Nothing here is family-specific: the
family's target scheme marks the parts (PLUM: plain names tagged B/I/O; LISA / GLaMM: a ``[SEG]``
after each part name, written into every answer choice as the original PARTONOMY code did), and
its prompt source finds the targets in generated text (tagged spans, or ``[SEG]`` tokens).

Benchmark mode (:meth:`SegPredictor.predict`, the :class:`~partonomy.eval.protocol.GroundingModel`
protocol), per batch of questions:

1. Each distinct image's mask-head embedding is computed once (batched) and cached per image content.
2. Every question's 5 answer choices are scored by mean token cross-entropy with a shared prefix
   (:mod:`partonomy.models.core.scoring`) over the family's answer text, so a ``[SEG]`` family's
   ``[SEG]`` tokens are scored like every other answer token (as in the original); part_to_whole /
   whole_to_part also score the object question's choices, conditioned on the ground-truth first
   answer (``EvalItem.part_history`` / ``object_history``). ``choice_score``: ``conversation`` (the
   paper's) or ``answer``; the other mode's scores are written to the prediction line as an extra
   (``choice_scores_<mode>`` / ``object_choice_scores_<mode>``).
3. Masks are teacher-forced on the correct answer: its parts are located in its tokens (PLUM: every
   occurrence tagged, :func:`~partonomy.models.plum.bio.find_part_spans`; ``[SEG]`` families: the
   ``[SEG]`` after each name), the mask head runs per target in token order (with the feedback
   loop where the family has one), at the original resolution, thresholded at logit > 0. The
   hidden states come from the scoring pass (the correct choice's row), so no extra LM forward.
   **One mask per part name: a part with several spans takes its first span's mask** (all spans
   still feed the feedback loop). A part whose name is not found in the answer text (e.g. a
   synonym in the answer) gets no mask; it is listed in the extra ``unmatched_parts`` and scored
   as missing.

Free-form mode (:meth:`SegPredictor.answer`): greedy generation with a KV cache
(:mod:`partonomy.models.core.generation`), then the prompt source over the hidden states gathered
while generating (PLUM: greedy B/I grouping restricted to the answer tokens; ``[SEG]`` families:
every generated ``[SEG]``), one mask per target. With ``highlight`` (span-prompt families only), the
named phrases are matched in the answer text instead and become the spans (highlight-to-segment,
the original PLUM's ``prompt_user_input``).
"""

from partonomy.models.core.embedding_cache import image_key
from partonomy.models.core.predictor_base import MASK_THRESHOLD, PredictorBase
from partonomy.models.core.predictor_benchmark import BenchmarkMode, PreparedBatch
from partonomy.models.core.predictor_freeform import FreeFormMode, GeneratedAnswer, phrase_before

__all__ = [
    "MASK_THRESHOLD",
    "GeneratedAnswer",
    "PredictorBase",
    "PreparedBatch",
    "SegPredictor",
    "image_key",
    "phrase_before",
]


class SegPredictor(BenchmarkMode, FreeFormMode):
    """A segmentation LMM at inference: holds the model and processor, caches image embeddings.

    Args:
        model: a :class:`~partonomy.models.core.model.SegLMM` (put in eval mode here).
        processor: its :class:`~partonomy.models.core.processing.SegProcessor`.
        batch_size: questions scored together in one :meth:`predict` step.
        choice_score: ``"conversation"`` (the paper's) or ``"answer"`` (module docstring).
        max_new_tokens: generation length limit of :meth:`answer` (the sequence limit of the
            processor, ``max_length``, applies too).
        generation: ``"loop"`` (own KV-cached greedy loop, no warm-up) or ``"static"`` (HF
            ``generate`` over a static cache, compiled with CUDA graphs on a GPU: ~30 s once, then
            ~3x the tokens/s; for many free-form answers).
        layout: how the answer continuations run over the shared prefix: ``"packed"`` (one row
            per question, a 4-D mask; the default, fastest) or ``"expand"`` (one row per choice
            over a copied prefix cache); see :func:`~partonomy.models.core.scoring.score_groups`.
        max_rows: answer-choice rows per continuation forward (``expand`` layout).
        image_cache: how many SAM image embeddings to keep (least recently used are dropped).
        pipeline: benchmark mode overlaps the CPU side of the next batch (image preprocessing in
            threads, tokenising) with the device work of the current one and normalises SAM's
            input on the device; False runs every step in turn on the calling thread (same
            outputs: tested); None (default): on when the model is on a GPU (on a CPU the
            threads would compete with the model for the same cores).
        compile_encoder: ``torch.compile`` the mask head's SAM ViT blocks (regional: ~20 s
            once per process at ViT-H on an H200, then ~1.7x the encoder's images/s); None
            (default): on a CUDA device when the mask head has a SAM ViT encoder.
        embedding_cache: a directory of :mod:`~partonomy.models.core.embedding_cache` (``partonomy
            cache-embeddings``): image embeddings are read from it instead of running the encoder,
            and the ones computed here are added to it.
        share_image_prefix: score the choice groups of one image (a part_to_whole question's
            part and object questions) over one prefill of their common root (system prompt and
            image; :mod:`~partonomy.models.core.scoring_prefix`), so the second question does
            not recompute the image (default). False prefills every group alone. The scores
            differ by float rounding only (tested).
        scoring_kernels: fused RMSNorm / SwiGLU / rotary kernels in the scoring forwards
            (:mod:`~partonomy.models.core.scoring_kernels`): ``auto`` (Liger's when installed,
            else ``torch.compile``d ones), ``liger``, ``compiled`` or ``off``; None (default):
            ``auto`` on a CUDA device, ``off`` elsewhere. Used only when they pass a self-test at
            the model's sizes, and only for LLaMA-shaped LLaVA decoders.

    Benchmark mode lives in :mod:`~partonomy.models.core.predictor_benchmark`, free-form mode in
    :mod:`~partonomy.models.core.predictor_freeform`, the shared state (constructor, image
    embeddings) in :mod:`~partonomy.models.core.predictor_base`.
    """
