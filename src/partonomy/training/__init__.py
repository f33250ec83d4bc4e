"""PLUM training: the recipe (``partonomy train``), its config, data, schedule and checkpoints.

Modules: ``config`` (TrainConfig), ``recipe`` (TrainRecipe, run_training), ``data`` (QA pairs
and the stage-1 mixture as TrainingSamples), ``sampler`` (deterministic batch plan), ``schedule``
(AdamW + warmup/linear decay), ``checkpoint`` (save, resume, load_checkpoint),
``distributed`` (accelerate: DDP / FSDP / DeepSpeed), ``quickstart`` (the CPU end-to-end job).
Nothing is imported here; import the submodules.
"""
