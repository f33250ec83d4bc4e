"""The segmentation LMM every family shares, and its model-independent inference.

Modules: ``model`` (SegLMM, SegOutput, InputEncoder), ``prompt_sources`` (PromptSource,
SegTokenPrompts), ``mask_heads`` (SamMaskHead), ``feedback`` (PLUM's mask-feedback pooler),
``targets`` (target schemes), ``processing`` (SegProcessor, SegExample, SegBatch), ``losses``
(shared terms, LossTerm, compute_losses), ``trainable`` (TrainableSpec, set_trainable), ``builders``
(the shared ``[SEG]``-family assembly), ``family`` (Family, get_family), ``scoring`` (shared-prefix
choice scoring), ``generation`` (KV-cached greedy decoding), ``predictor`` (SegPredictor: benchmark
and free-form inference with an image-embedding cache), ``regions`` (``<bbox>`` inputs),
``devices`` (``auto`` device and dtype), ``loading`` (load_model, build_predictor: checkpoints and
presets of any family). Nothing is imported here.
"""
