"""Fixtures for the training tests: a small Partonomy-Synth world and identification QA pairs.

The QA records are built here directly from the descriptor (not through ``partonomy.qa``), so
these tests depend only on the world generator and the QA-pair format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from partonomy.io.descriptor import load_descriptor
from partonomy.io.qa_pairs import load_qa_pairs, parse_qa_pair, save_qa_pairs


def _answer(label: str, parts: list[str]) -> str:
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]
    return f"The {label} in the image has the following visible parts: {listed}."


def identification_records(descriptor_path: Path, seed: int = 0) -> list[dict[str, Any]]:
    """One ``identification_with_label`` record per instance; 4 distractors by add/delete."""
    desc = load_descriptor(descriptor_path)
    rng = np.random.default_rng(seed)
    vocab = sorted({p for inst in desc.instances for p in inst.part_names()})
    records = []
    for k, inst in enumerate(desc.instances):
        parts = sorted(inst.part_names())
        if not parts:
            continue
        choices = [parts]
        while len(choices) < 5:
            cand = list(parts)
            if rng.random() < 0.5 and len(cand) > 1:
                cand.pop(int(rng.integers(len(cand))))
            else:
                cand.append(vocab[int(rng.integers(len(vocab)))])
            cand = sorted(set(cand))
            if cand not in choices:
                choices.append(cand)
        masks = inst.part_masks()
        records.append(
            {
                "question_id": f"q{k}",
                "image_path": str(desc.image_path(inst)),
                "image_label": inst.image_label,
                "question": f"What visible parts does the {inst.image_label} in the image have?",
                "question_type": "identification_with_label",
                "answer_choices": [_answer(inst.image_label, c) for c in choices],
                "answer_types": ["correct"] + ["incorrect"] * 4,
                "answer_parts": choices,
                "segmentations": {p: masks[p] for p in parts},
                "object_question": None,
                "object_answer_choices": None,
                "object_answer_types": None,
                "object_answer_classes": None,
            }
        )
    return records


@pytest.fixture(scope="session")
def synth_qa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A QA-pair JSON over a 24-image, 64 px 'easy' Synth world (session-wide, read-only)."""
    from partonomy.data.synth import generate_world, preset

    root = tmp_path_factory.mktemp("synth")
    descriptor, _ = generate_world(
        root / "world", n_images=24, seed=0, size=64, config=preset("easy"), progress=False
    )
    records = identification_records(descriptor)
    qa = [parse_qa_pair(r, i, root / "qa.json") for i, r in enumerate(records)]
    path = root / "qa_train.json"
    save_qa_pairs(qa, path)
    assert len(load_qa_pairs(path)) == len(records) > 0
    return path


def tiny_train_overrides(qa_file: Path, run_dir: Path, **extra: Any) -> dict[str, Any]:
    """A tiny, fast training config as a plain dict (sizes chosen for sub-second steps)."""
    cfg: dict[str, Any] = {
        "run_dir": str(run_dir),
        "seed": 0,
        "max_steps": 4,
        "grad_accum": 1,
        "cpu": True,
        "model": {
            "llava": {
                "text_hidden": 32,
                "text_layers": 1,
                "text_heads": 2,
                "text_intermediate": 64,
                "vision_hidden": 32,
                "vision_layers": 1,
                "vision_heads": 2,
                "image_size": 32,
                "patch_size": 8,
            },
            "sam": {
                "image_size": 64,
                "vision_hidden": 32,
                "vision_layers": 1,
                "vision_heads": 2,
                "patch_size": 8,
                "decoder_hidden": 32,
            },
            "bidir_heads": 2,
            "bidir_ff": 64,
            "bidir_dropout": 0.1,
            "feedback_heads": 2,
        },
        "trainable": {"language_model": "lora"},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "data": {"qa": {"files": [str(qa_file)]}, "micro_batch_size": 2},
        "checkpoint": {"every": 2, "keep_last": 0},
        "log": {"progress": False},
    }
    for key, value in extra.items():
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return cfg
