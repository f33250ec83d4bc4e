"""``partonomy demo [--model plum --checkpoint DIR ...] [--host 127.0.0.1] [--port 7860]``: the web demo.

Loads each checkpoint (``--checkpoint`` may repeat; several give a model selector), takes
examples from Partonomy-Synth and serves :func:`partonomy.viz.demo_app.build_demo` with
:func:`partonomy.viz.demo_app.launch_demo`. Without ``--checkpoint`` it loads the quickstart's
(``runs/quickstart/train/<model>/checkpoints/final``, made by ``make quickstart``). See
``docs/demo-and-report.md``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import click

from partonomy.errors import ConfigError

QUICKSTART_DIR = Path("runs/quickstart")
QUICKSTART_VAL_QA = QUICKSTART_DIR / "world" / "qa_val.json"


def load_predictor(
    family: str, checkpoint: Path, device: str, dtype: str, max_new_tokens: int
) -> Any:
    """A :class:`~partonomy.models.core.predictor.SegPredictor` of ``family`` from a checkpoint."""
    from partonomy.models.core.loading import load_model
    from partonomy.models.core.predictor import SegPredictor

    model, processor = load_model(family, str(checkpoint), "tiny", device, dtype)
    return SegPredictor(model, processor, max_new_tokens=max_new_tokens)


def quickstart_checkpoint(family: str = "plum") -> Path:
    """Where ``partonomy quickstart --model FAMILY`` leaves its trained model."""
    return QUICKSTART_DIR / "train" / family / "checkpoints" / "final"


def default_checkpoint(family: str = "plum") -> Path:
    """The quickstart's checkpoint of ``family``, relative to the current directory.

    Raises:
        ConfigError: it does not exist (the message says how to make one).
    """
    path = quickstart_checkpoint(family)
    if path.is_dir():
        return path
    how = "make quickstart" if family == "plum" else f"partonomy quickstart --model {family}"
    raise ConfigError(
        f"no --checkpoint given and no quickstart checkpoint at {path} (from "
        f"{Path.cwd()}): run `{how}` in the repository root first (minutes on a CPU), or pass "
        "--checkpoint DIR of a `partonomy train` run"
    )


def model_names(checkpoints: list[Path]) -> list[str]:
    """Selector names: the run directory's name for ``.../<run>/checkpoints/<name>``, else the
    checkpoint's own name; repeats get `` (2)``, `` (3)``..."""
    names: list[str] = []
    for ckpt in checkpoints:
        parts = ckpt.resolve().parts
        base = (
            f"{parts[-3]}/{parts[-1]}"
            if len(parts) >= 3 and parts[-2] == "checkpoints"
            else ckpt.resolve().name
        )
        name, k = base, 1
        while name in names:
            k += 1
            name = f"{base} ({k})"
        names.append(name)
    return names


@click.command(name="demo")
@click.option(
    "--model",
    "family",
    default="plum",
    show_default=True,
    help="Model family of the checkpoints (partonomy ls families).",
)
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Checkpoint or training run directory; repeat for a model selector "
    f"(default: {quickstart_checkpoint()}, or that of --model).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(min=0.001),
    default=20.0,
    show_default=True,
    help="Largest accepted image upload.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option("--dtype", default="auto", show_default=True, help="auto, float32, bfloat16, ...")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=128, show_default=True)
def command(
    family: str,
    checkpoints: tuple[Path, ...],
    host: str,
    port: int,
    max_upload_mb: float,
    device: str,
    dtype: str,
    max_new_tokens: int,
) -> None:
    """Serve a web demo: upload an image, ask about its parts, see the answer and its masks."""
    from partonomy.viz.demo_app import build_demo, launch_demo
    from partonomy.viz.demo_logic import MB, DemoLimits

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # gradio's own HTTP calls (start-up checks) are not the demo's requests
    logging.getLogger("httpx").setLevel(logging.WARNING)
    paths = list(checkpoints) or [default_checkpoint(family)]
    for path in paths:
        if not path.exists():
            raise ConfigError(f"--checkpoint {path}: no such file or directory")
    models = {
        name: load_predictor(family, path, device, dtype, max_new_tokens)
        for name, path in zip(model_names(paths), paths, strict=True)
    }
    limits = DemoLimits(max_upload_bytes=int(max_upload_mb * MB))
    with tempfile.TemporaryDirectory(prefix="partonomy-demo-") as tmp:
        examples = _examples(Path(tmp))
        demo = build_demo(models, examples=examples, limits=limits)
        folders = sorted({str(Path(p).parent.resolve()) for p, _ in examples})
        click.echo(f"serving {', '.join(models)} on http://{host}:{port} (Ctrl+C stops)")
        launch_demo(
            demo,
            host=host,
            port=port,
            max_upload_bytes=limits.max_upload_bytes,
            allowed_paths=folders,
        )


def _examples(tmp: Path) -> list[tuple[str, str]]:
    """The quickstart's val questions when its world exists, else four fresh Synth images."""
    from partonomy.config import from_dict, to_dict
    from partonomy.data.synth import SynthConfig, preset
    from partonomy.data.synth.examples import qa_examples, synth_examples
    from partonomy.training.quickstart import QUICKSTART_WORLD

    if QUICKSTART_VAL_QA.is_file():
        pairs = qa_examples(QUICKSTART_VAL_QA)
    else:
        config = from_dict(
            SynthConfig, {**to_dict(preset("easy")), **QUICKSTART_WORLD}, source="demo examples"
        )
        pairs = synth_examples(tmp / "synth", config=config)
    return [(str(p), q) for p, q in pairs]
