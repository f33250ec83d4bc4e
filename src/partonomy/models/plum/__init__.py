"""PLUM: LLaVA + SAM with BIO span tagging and a mask-feedback loop (the paper's model), as a
family of the segmentation-LMM framework (:mod:`partonomy.models.core`).

Modules: ``config`` (PlumConfig), ``builders`` (build_plum, tiny_config, PRESETS), ``bio`` (B/I/O
targets and span grouping), ``targets`` (BioTargets, the target scheme), ``span_extractor``,
``span_query``, ``prompts`` (BioSpanPrompts, the prompt source), ``losses`` (the ``bio`` term and
PLUM's loss terms), ``trainable`` (PlumTrainableSpec), ``checkpoint_layouts`` (original checkpoint
key mappings), ``family`` (the registered Family). The model itself is the shared
:class:`~partonomy.models.core.model.SegLMM`; the feedback loop is
:mod:`partonomy.models.core.feedback`. Nothing is imported here; import the submodules.
"""
