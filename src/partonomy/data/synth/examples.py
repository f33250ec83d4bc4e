"""Example ``(image, question)`` pairs for the demo, from Partonomy-Synth.

Either the first questions of an existing QA file (the quickstart's ``qa_val.json``: the images a
quickstart model was trained for), or a few freshly generated Synth images, each with the
identification question about its object.
"""

from __future__ import annotations

from pathlib import Path

from partonomy.data.synth.config import SynthConfig
from partonomy.data.synth.world import generate_world
from partonomy.io.descriptor import load_descriptor
from partonomy.io.qa_pairs import load_qa_pairs
from partonomy.qa.templates import identification_question


def qa_examples(qa_file: str | Path, n: int = 4) -> list[tuple[Path, str]]:
    """The first ``n`` questions of ``qa_file`` about distinct images, as ``(image, question)``.

    Relative image paths resolve against the QA file's directory.
    """
    qa_file = Path(qa_file)
    out: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for qa in load_qa_pairs(qa_file):
        if qa.image_path in seen:
            continue
        seen.add(qa.image_path)
        path = Path(qa.image_path)
        out.append((path if path.is_absolute() else qa_file.parent / path, qa.question))
        if len(out) == n:
            break
    return out


def synth_examples(
    out_dir: str | Path,
    *,
    n: int = 4,
    seed: int = 0,
    size: int = 64,
    config: SynthConfig | None = None,
) -> list[tuple[Path, str]]:
    """Generate ``n`` Synth images into ``out_dir`` and pair each with the identification
    question about its object (``"What visible parts does the car in the image have?"``)."""
    descriptor_path, _ = generate_world(
        out_dir, n_images=n, seed=seed, size=size, config=config, progress=False
    )
    descriptor = load_descriptor(descriptor_path)
    return [
        (descriptor.image_path(inst), identification_question(inst.image_label))
        for inst in descriptor.instances
    ]
