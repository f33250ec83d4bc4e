"""``partonomy quickstart``: the whole pipeline on Partonomy-Synth, on CPU, in minutes.

1. a Partonomy-Synth world (``easy`` preset) -> descriptor + concept graph;
2. explanatory QA pairs (:func:`partonomy.qa.generate.generate_qa`), split by image into
   train / val (:func:`partonomy.qa.split.split_records`);
3. a tiny model of each chosen family (``--model plum|lisa|glamm|pixellm|all``; default ``plum``) trained
   on the train split with its tiny config (``configs/tiny_synth.yaml`` for PLUM,
   ``configs/<family>_tiny_synth.yaml`` for the others; :func:`partonomy.training.recipe.run_training`);
4. each trained model evaluated on the held-out val questions beside the ``random``,
   ``whole_object`` and ``oracle`` reference models (:func:`partonomy.eval.harness.run_eval`);
5. the paper's Table 2 / 3 layouts printed (one row per model) and one combined
   ``results.json`` written, with each trained model's learning floors checked.

Output directory::

    <out>/world/            images, descriptor.json, graph.yaml, qa_train.json, qa_val.json
    <out>/train/<model>/    each training run (train_log.jsonl, checkpoints/final)
    <out>/eval/<model>/     each model's eval run (predictions.jsonl, results.json)
    <out>/results.json      {"models": {name: results}, "floors": {model: {...}},
                             "train": {model: {...}}, ...}
    <out>/tables.md         the printed tables
    <out>/examples.png      the first model's masks beside the ground truth on val questions
                            (``examples_<model>.png`` for the others)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from partonomy.errors import ConfigError
from partonomy.io.atomic import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from partonomy.training.config import TrainConfig

log = logging.getLogger(__name__)

CONFIG_NAME = "tiny_synth.yaml"
"""PLUM's tiny config; another family ``f`` uses ``f_tiny_synth.yaml``, and a family on another
backbone ``b`` (``--set backbone=b``) ``f_b_tiny_synth.yaml`` (see :func:`config_name`)."""
DEFAULT_BACKBONE = "llava"
"""The backbone of the families' own tiny configs (LLaVA-1.5 on HF parts, the papers')."""
BASELINES = ("random", "whole_object", "oracle")
FAMILIES = ("plum", "lisa", "glamm", "pixellm", "segllm")
"""The families ``--model all`` trains, in table order."""
QUICKSTART_WORLD: dict[str, Any] = {
    "categories": ["road vehicles", "cycles"],
    "rotation_deg": 0.0,
    "clutter": 0,
    "noise": 0.0,
    "occlusion_prob": 0.0,
    "scale_range": [0.42, 0.48],
}
"""The quickstart's Synth subset: the ``easy`` preset narrowed to two categories (13 objects,
~25 part names) with upright, unoccluded objects on clutter-free backgrounds. A tiny PLUM trained
from scratch for a few CPU minutes learns these part masks; the full world needs far more steps."""


@dataclass
class QuickstartConfig:
    """The quickstart's data and evaluation knobs (the model and training are in the YAML).

    Attributes:
        model: the family to train (``plum``, ``lisa``, ``glamm``, ``pixellm``) or ``all`` (each of
            :data:`FAMILIES`).
        backbone: the named backbone preset (``--set backbone=NAME``): None or ``llava`` is the
            family's own tiny config; another name picks ``configs/<family>_<NAME>_tiny_synth.yaml``
            (``qwen2_5_vl``: a tiny Qwen2.5-VL-shaped backbone with a tiny SAM 2).
        n_images: Synth images (train + val).
        size: image side in pixels.
        synth_preset: Synth world preset (``easy``: four categories, large objects).
        synth: overrides of that preset's :class:`~partonomy.data.synth.SynthConfig` fields
            (default :data:`QUICKSTART_WORLD`).
        seed: seed of the world, the questions and the split.
        types: question types generated (and trained, unless the training config filters).
        val_fraction: share of images held out for evaluation.
        eval_batch_size: questions per model call in evaluation.
        eval_limit: evaluate only the first N val questions (None: all).
        model_options: extra options of every trained model. The tiny LMs are trained on answer
            tokens only (``loss.lm_tokens: answer``, the original's LM loss), so choices are
            scored by the mean cross-entropy of the answer tokens (``choice_score: answer``):
            the paper's whole-conversation mean would be dominated by the never-trained system
            prompt and favour the shortest choice.
        train_overrides: extra ``key=value`` overrides of the training config.
        floors: the learning floors checked on the val split (see :func:`check_floors`).
    """

    model: str = "plum"
    backbone: str | None = None
    n_images: int = 3500
    size: int = 64
    synth_preset: str = "easy"
    synth: dict[str, Any] = field(default_factory=lambda: dict(QUICKSTART_WORLD))
    seed: int = 0
    types: list[str] = field(
        default_factory=lambda: ["identification_with_label", "positive_with_label"]
    )
    val_fraction: float = 0.1
    eval_batch_size: int = 8
    eval_limit: int | None = None
    model_options: dict[str, Any] = field(default_factory=lambda: {"choice_score": "answer"})
    train_overrides: list[str] = field(default_factory=list)
    floors: bool = True


@dataclass
class QuickstartResult:
    """What the quickstart produced: the combined results, the tables and the floor checks
    (``floors``: per trained model, see :func:`check_floors`)."""

    out_dir: Path
    results: dict[str, Any]
    tables: str
    floors: dict[str, dict[str, Any]]
    seconds: float

    @property
    def passed(self) -> bool | None:
        """Whether every trained model passed its floors (None when floors were not checked)."""
        if any(f["passed"] is None for f in self.floors.values()):
            return None
        return all(f["passed"] for f in self.floors.values())


def trained_models(model: str) -> list[str]:
    """The families a ``--model`` value trains.

    Raises:
        ConfigError: not a family name nor ``all``.
    """
    if model == "all":
        return list(FAMILIES)
    from partonomy.models.core.family import get_family

    get_family(model)  # a "did you mean" error for an unknown name
    return [model]


def config_name(family: str, backbone: str | None = None) -> str:
    """The tiny config file name of ``family`` on ``backbone`` (None: :data:`DEFAULT_BACKBONE`)."""
    if backbone is not None and backbone != DEFAULT_BACKBONE:
        return f"{family}_{backbone}_{CONFIG_NAME}"
    return CONFIG_NAME if family == "plum" else f"{family}_{CONFIG_NAME}"


def take_backbone(overrides: Sequence[str]) -> tuple[str | None, list[str]]:
    """Split ``--set`` items into the quickstart's own ``backbone=NAME`` (the last one wins) and
    the training-config overrides (everything else, in order)."""
    backbone: str | None = None
    rest: list[str] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and key.strip() == "backbone":
            backbone = value.strip()
        else:
            rest.append(item)
    return backbone, rest


def _config_dirs() -> list[Path]:
    """Where tiny configs are looked up: ``./configs``, then the source checkout's (editable
    install)."""
    return [Path.cwd() / "configs", Path(__file__).resolve().parents[3] / "configs"]


def find_config(
    explicit: str | Path | None = None, family: str = "plum", backbone: str | None = None
) -> Path:
    """The tiny training config: ``explicit``, else ``configs/<config_name(family, backbone)>``
    in the current directory, else in the source checkout this package was installed from.

    Raises:
        ConfigError: no such file (for a backbone: naming the backbones that have one), or both
            ``explicit`` and a backbone preset.
    """
    if explicit is not None:
        if backbone is not None:
            raise ConfigError(
                "--config and --set backbone= both pick the training config; give one"
            )
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"--config {path}: no such file")
        return path
    name = config_name(family, backbone)
    for folder in _config_dirs():
        if (folder / name).is_file():
            return folder / name
    if backbone is not None and backbone != DEFAULT_BACKBONE:
        known = sorted(
            {
                p.name[len(family) + 1 : -len(CONFIG_NAME) - 1]
                for folder in _config_dirs()
                for p in folder.glob(f"{family}_*_{CONFIG_NAME}")
            }
        )
        raise ConfigError(
            f"--set backbone={backbone}: no configs/{name}; {family}'s backbone presets: "
            f"{', '.join([DEFAULT_BACKBONE, *known])}"
        )
    raise ConfigError(
        f"cannot find configs/{name}: run from the repository root, or pass --config PATH"
    )


IDENTIFICATION_TYPES = ("identification_with_label", "identification")
"""Where the floors are read, first present wins: the questions asking for *all* visible parts.
(On intersection questions the whole-object baseline is the union of the few named parts, often a
single part, so "twice the whole-object baseline" is only meaningful on identification.)"""


def check_floors(models: dict[str, dict[str, Any]], model: str = "plum") -> dict[str, Any]:
    """One trained model's learning floors on the val split.

    On its identification questions (the first of :data:`IDENTIFICATION_TYPES` evaluated):

    * ``macro_giou`` >= 0.5 and >= 2x the ``whole_object`` baseline's;
    * accuracy >= 0.4 (random is 0.2).

    And on every evaluated question type: ``micro_giou`` (the mean IoU of the part masks) above the
    ``whole_object`` baseline's (a strict ``>``; a type without a baseline value counts it as 0).
    Micro, not macro: on intersection questions most answers name one or two parts that cover most
    of the object, so the whole-object mask's per-image (macro) mean is about 0.67 there, and a
    model that is far better part by part (micro 0.64 vs 0.46) ties it on the macro mean.

    Returns:
        ``{"passed": bool, "question_type": str | None, "checks": [{"name", "value",
        "threshold", "passed"}, ...]}``.
    """
    types = models[model]["by_type"]
    qtype = next((t for t in IDENTIFICATION_TYPES if t in types), None)
    row = types.get(qtype, {}) if qtype else {}
    whole_types = models.get("whole_object", {}).get("by_type", {})

    def baseline(question_type: str | None, metric: str = "macro_giou") -> float:
        if question_type is None:
            return 0.0
        return float(whole_types.get(question_type, {}).get(metric) or 0.0)

    def check(
        name: str, value: float | None, threshold: float, *, strict: bool = False
    ) -> dict[str, Any]:
        passed = value is not None and (value > threshold if strict else value >= threshold)
        return {"name": name, "value": value, "threshold": threshold, "passed": passed}

    macro = row.get("macro_giou")
    checks = [
        check(f"{model} macro_giou >= 0.5", macro, 0.5),
        check(f"{model} macro_giou >= 2 x whole_object", macro, 2 * baseline(qtype)),
        check(f"{model} accuracy >= 0.4", row.get("accuracy"), 0.4),
    ]
    for question_type in sorted(types):
        checks.append(
            check(
                f"{model} micro_giou > whole_object on {question_type}",
                types[question_type].get("micro_giou"),
                baseline(question_type, "micro_giou"),
                strict=True,
            )
        )
    return {
        "passed": all(c["passed"] for c in checks),
        "question_type": qtype,
        "checks": checks,
    }


def combined_tables(models: dict[str, dict[str, Any]]) -> str:
    """Tables 2 and 3 (the paper's layouts) with one row per model."""
    from partonomy.eval.report import render_table2, render_table3

    out = []
    for render in (render_table2, render_table3):
        blocks = [render(res, method=name).splitlines() for name, res in models.items()]
        head = blocks[0][:4]  # title, blank, header, separator
        out.append("\n".join(head + [b[4] for b in blocks]))
    return "\n\n".join(out) + "\n"


def _write_examples(out: Path, val_qa: Path, model: str, name: str, n: int = 8) -> Path | None:
    """``out/<name>``: ``model``'s masks beside the ground truth on the first ``n`` val questions
    that ask for every visible part (see :mod:`partonomy.eval.examples`)."""
    from partonomy.eval.examples import write_examples
    from partonomy.io.predictions import load_predictions
    from partonomy.io.qa_pairs import load_qa_pairs

    records = load_qa_pairs(val_qa)
    records = [r for r in records if r.question_type in IDENTIFICATION_TYPES] or records
    predictions = load_predictions(out / "eval" / model / "predictions.jsonl")
    return write_examples(
        out / name,
        records,
        predictions,
        qa_file=val_qa,
        n=n,
        title=f"ground truth | tiny {model} (held-out val questions)",
    )


def _make_data(out: Path, cfg: QuickstartConfig, progress: bool, echo: Callable[[str], None]):
    """Write the Synth world and its train / val QA files (reused when they exist)."""
    from partonomy.config import from_dict, to_dict
    from partonomy.data.synth import SynthConfig, generate_world, preset
    from partonomy.io.descriptor import load_descriptor
    from partonomy.io.graph import load_graph
    from partonomy.io.qa_pairs import save_qa_pairs
    from partonomy.qa.generate import generate_qa
    from partonomy.qa.split import split_records

    world = out / "world"
    train_qa, val_qa = world / "qa_train.json", world / "qa_val.json"
    if train_qa.exists() and val_qa.exists():
        return train_qa, val_qa
    echo(f"[1/4] Partonomy-Synth world: {cfg.n_images} images at {cfg.size} px -> {world}")
    descriptor_path, graph_path = generate_world(
        world,
        n_images=cfg.n_images,
        seed=cfg.seed,
        size=cfg.size,
        config=from_dict(
            SynthConfig,
            {**to_dict(preset(cfg.synth_preset)), **cfg.synth},
            source="quickstart synth",
        ),
        progress=progress,
    )
    echo(f"[2/4] QA pairs: {', '.join(cfg.types)}")
    generated = generate_qa(
        load_descriptor(descriptor_path),
        load_graph(graph_path),
        seed=cfg.seed,
        types=cfg.types,
        embedder=None,
        progress=progress,
        source=descriptor_path,
    )
    train, val = split_records(generated.records, val_fraction=cfg.val_fraction, seed=cfg.seed)
    save_qa_pairs(train, train_qa)
    save_qa_pairs(val, val_qa)
    return train_qa, val_qa


def quickstart_train_config(
    path: Path,
    family: str,
    out: Path,
    train_qa: Path,
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> TrainConfig:
    """The :class:`~partonomy.training.config.TrainConfig` the quickstart trains ``family`` with:
    the tiny config at ``path`` (:func:`find_config`), its run directory under ``out``, its data
    ``train_qa``, resumable, then ``overrides``.

    Raises:
        ConfigError: the config trains another family (or any config error).
    """
    from partonomy.training.config import load_train_config

    train_cfg = load_train_config(
        path,
        [
            f"run_dir={out / 'train' / family}",
            f"data.qa.files=[{train_qa}]",
            "resume=auto",
            f"log.progress={str(progress).lower()}",
            *overrides,
        ],
    )
    if train_cfg.family != family:
        raise ConfigError(f"{path} trains family {train_cfg.family!r}, not {family!r}")
    return train_cfg


def run_quickstart(
    out_dir: str | Path,
    cfg: QuickstartConfig | None = None,
    *,
    config_path: str | Path | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> QuickstartResult:
    """Run the quickstart end to end (module docstring) and return its results.

    Args:
        out_dir: output directory (created). An existing run there is continued: the world and
            QA files are reused, training resumes, evaluations resume.
        cfg: data and evaluation knobs (default :class:`QuickstartConfig`).
        config_path: the training config (default: see :func:`find_config`); only with one model.
        progress: show progress bars.
        echo: where the stage headers and tables are printed.

    Raises:
        ConfigError: an unknown ``cfg.model``, or ``config_path`` with ``--model all``.
    """
    from partonomy.eval.harness import EvalConfig, run_eval
    from partonomy.io.qa_pairs import load_qa_pairs
    from partonomy.training.recipe import run_training

    cfg = cfg or QuickstartConfig()
    families = trained_models(cfg.model)
    if config_path is not None and len(families) > 1:
        raise ConfigError("--config names one model's config; it cannot be used with --model all")
    configs = {f: find_config(config_path, f, cfg.backbone) for f in families}  # fail early
    out = Path(out_dir)
    start = time.perf_counter()
    timings: dict[str, float] = {}

    t = time.perf_counter()
    train_qa, val_qa = _make_data(out, cfg, progress, echo)
    n_train, n_val = len(load_qa_pairs(train_qa)), len(load_qa_pairs(val_qa))
    echo(f"      {n_train} train / {n_val} val questions")
    timings["data"] = time.perf_counter() - t

    trained: dict[str, dict[str, Any]] = {}
    for family in families:
        t = time.perf_counter()
        train_cfg = quickstart_train_config(
            configs[family], family, out, train_qa, cfg.train_overrides, progress
        )
        echo(f"[3/4] training a tiny {family} for {train_cfg.max_steps} steps on CPU")
        result = run_training(train_cfg)
        records = result.records
        trained[family] = {
            "steps": result.steps,
            "first_loss": records[0]["total"] if records else None,
            "last_loss": records[-1]["total"] if records else None,
            "checkpoint": str(result.final_checkpoint),
            "seconds": round(time.perf_counter() - t, 1),
        }
        timings[f"train_{family}"] = time.perf_counter() - t

    t = time.perf_counter()
    names = [*families, *BASELINES]
    echo(f"[4/4] evaluating on {n_val} held-out questions: {', '.join(names)}")
    models: dict[str, dict[str, Any]] = {}
    options: dict[str, dict[str, Any]] = {name: {} for name in BASELINES}
    for family in families:
        options[family] = {
            "checkpoint": trained[family]["checkpoint"],
            "device": "cpu",
            "batch_size": cfg.eval_batch_size,
            **cfg.model_options,
        }
    for name in names:
        outcome = run_eval(
            EvalConfig(
                model=name,
                qa_file=str(val_qa),
                out=str(out / "eval" / name),
                model_options=options[name],
                batch_size=cfg.eval_batch_size,
                limit=cfg.eval_limit,
                progress=progress,
                overwrite=True,
            )
        )
        models[name] = outcome.results
    timings["eval"] = time.perf_counter() - t
    for k, family in enumerate(families):
        name = "examples.png" if k == 0 else f"examples_{family}.png"
        examples = _write_examples(out, val_qa, family, name)
        if examples is not None:
            echo(f"      {family}'s masks beside the ground truth: {examples}")

    tables = combined_tables(models)
    floors = {
        family: (
            check_floors(models, family)
            if cfg.floors
            else {"passed": None, "question_type": None, "checks": []}
        )
        for family in families
    }
    seconds = time.perf_counter() - start
    results = {
        "models": models,
        "floors": floors,
        "train": trained,
        "data": {"n_images": cfg.n_images, "size": cfg.size, "n_train": n_train, "n_val": n_val,
                 "types": cfg.types},
        "seconds": {k: round(v, 1) for k, v in {**timings, "total": seconds}.items()},
    }  # fmt: skip
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "tables.md", tables)
    echo("")
    echo(tables)
    for family_floors in floors.values():
        for check in family_floors["checks"]:
            mark = "PASS" if check["passed"] else "FAIL"
            value = "n/a" if check["value"] is None else f"{check['value']:.3f}"
            echo(f"{mark}  {check['name']}: {value} (threshold {check['threshold']:.3f})")
    echo(f"results: {out / 'results.json'}  ({seconds:.0f} s)")
    return QuickstartResult(out, results, tables, floors, seconds)
