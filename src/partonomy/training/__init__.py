"""PLUM training: the recipe (``partonomy train``), its config, data, schedule and checkpoints.

Modules: ``config`` (TrainConfig), ``recipe`` (TrainRecipe, run_training: the loop) with its
parts ``model`` (building, fp32 master weights, init_from), ``resume`` (which checkpoint, same-run
checks), ``engine_state`` (each engine's parameters and optimiser state in a checkpoint),
``step_stats`` (per-step numbers over processes), ``step_log`` (JSONL, trackers, bar); ``data`` (QA pairs
and the stage-1 mixture as TrainingSamples), ``sampler`` (deterministic batch plan), ``schedule``
(AdamW + warmup/linear decay), ``checkpoint`` (save, resume, load_checkpoint),
``distributed`` (accelerate: DDP / FSDP / DeepSpeed), ``quickstart`` (the CPU end-to-end job).
Nothing is imported here; import the submodules.
"""
