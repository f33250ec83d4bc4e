"""Training checkpoints: only the trained weights, the config, and the exact resume state.

A checkpoint is a directory, written under a temporary name and renamed into place, so a reader
(or a resumed run) never sees a half-written one::

    <run>/checkpoints/step_000200/
        manifest.json        format version, step, trainable names, embedding row subsets, files
        config.yaml          the run's full, resolved training config (model config included)
        weights.safetensors  the trained tensors (trainable parameters incl. LoRA adapters); for
                             an embedding trained on a row subset only those rows, key "<name>@rows"
        base.safetensors     only when a backbone was randomly initialised (no pretrained file
                             to rebuild it from): every other parameter, so the directory is
                             self-contained
        resume.pt            optimiser + scheduler state, step, data position (global micro-batches)
        rng_rank<r>.pt       each process's torch (and CUDA) RNG state
        engine_state/        FSDP / DeepSpeed only: the engine's sharded optimiser state

Load for inference with :func:`load_checkpoint`; a run is resumed by the recipe
(``resume=auto`` or ``resume=<dir>``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from partonomy.errors import ConfigError, FormatError
from partonomy.io.atomic import atomic_write_json, atomic_write_text

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CONFIG = "config.yaml"
WEIGHTS = "weights.safetensors"
BASE = "base.safetensors"
RESUME = "resume.pt"
ENGINE_STATE = "engine_state"
ROWS_SUFFIX = "@rows"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def step_dir_name(step: int) -> str:
    """``step_000123``: sortable checkpoint directory name."""
    return f"step_{step:06d}"


@dataclass
class Manifest:
    """What a checkpoint directory holds (``manifest.json``)."""

    step: int
    trainable: list[str]
    row_subsets: dict[str, list[int]]
    has_base: bool
    has_resume: bool
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "step": self.step,
            "trainable": self.trainable,
            "row_subsets": self.row_subsets,
            "has_base": self.has_base,
            "has_resume": self.has_resume,
        }


def read_manifest(path: str | Path) -> Manifest:
    """Read ``<path>/manifest.json``.

    Raises:
        FormatError: missing, unreadable, or written by a newer format version.
    """
    file = Path(path) / MANIFEST
    if not file.exists():
        raise FormatError(
            "not a training checkpoint (no manifest.json)",
            file=path,
            hint="pass a checkpoint directory such as runs/x/checkpoints/final",
        )
    raw = json.loads(file.read_text())
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise FormatError(
            f"checkpoint format version {version!r}; this code reads version {FORMAT_VERSION}",
            file=file,
            field="format_version",
        )
    return Manifest(
        step=int(raw["step"]),
        trainable=list(raw["trainable"]),
        row_subsets={k: [int(i) for i in v] for k, v in raw["row_subsets"].items()},
        has_base=bool(raw["has_base"]),
        has_resume=bool(raw["has_resume"]),
    )


def trained_tensors(
    params: Mapping[str, torch.Tensor],
    names: Iterable[str],
    row_subsets: Mapping[str, Sequence[int]],
) -> dict[str, torch.Tensor]:
    """The tensors to save: ``names`` from ``params``, row-sliced where ``row_subsets`` says so.

    Args:
        params: parameter name -> full tensor (``dict(model.named_parameters())``, or an
            engine's gathered state dict).
        names: the trained parameter names.
        row_subsets: name -> rows that train (only those rows are saved, under ``name@rows``).

    Returns:
        Detached, contiguous CPU copies (safetensors refuses shared storage).
    """
    out: dict[str, torch.Tensor] = {}
    for name in names:
        tensor = params[name].detach()
        if name in row_subsets:
            idx = torch.as_tensor(list(row_subsets[name]), dtype=torch.long, device=tensor.device)
            out[name + ROWS_SUFFIX] = tensor.index_select(0, idx).cpu().contiguous()
        else:
            out[name] = tensor.cpu().clone().contiguous()
    return out


def base_tensors(
    params: Mapping[str, torch.Tensor], trained: Iterable[str]
) -> dict[str, torch.Tensor]:
    """Every parameter of ``params`` not in ``trained`` (for self-contained random-init checkpoints)."""
    skip = set(trained)
    return {n: p.detach().cpu().clone().contiguous() for n, p in params.items() if n not in skip}


def load_tensors_into(
    model: nn.Module,
    tensors: Mapping[str, torch.Tensor],
    row_subsets: Mapping[str, Sequence[int]],
    *,
    strict: bool = True,
) -> list[str]:
    """Copy saved tensors into ``model``'s parameters in place (``@rows`` keys into their rows).

    Args:
        strict: a saved name that is not a parameter of the model is an error; else it is
            skipped and returned.

    Returns:
        The saved names that were skipped (always empty when ``strict``).

    Raises:
        FormatError: a saved name is not a parameter of the model (``strict``), or a shape differs.
    """
    params = dict(model.named_parameters())
    skipped: list[str] = []
    with torch.no_grad():
        for key, value in tensors.items():
            name = key[: -len(ROWS_SUFFIX)] if key.endswith(ROWS_SUFFIX) else key
            if name not in params and not strict:
                skipped.append(name)
                continue
            if name not in params:
                raise FormatError(
                    f"saved tensor '{name}' is not a parameter of the model",
                    hint="the checkpoint was made with a different model or trainable config",
                )
            param = params[name]
            if key.endswith(ROWS_SUFFIX):
                idx = torch.as_tensor(list(row_subsets[name]), dtype=torch.long)
                if value.shape[1:] != param.shape[1:] or len(idx) != value.shape[0]:
                    raise FormatError(f"saved rows of '{name}' have shape {tuple(value.shape)}")
                param[idx.to(param.device)] = value.to(param.device, param.dtype)
            else:
                if value.shape != param.shape:
                    raise FormatError(
                        f"saved tensor '{name}' has shape {tuple(value.shape)}, "
                        f"the model's is {tuple(param.shape)}"
                    )
                param.copy_(value.to(param.device, param.dtype))
    return skipped


def load_weights(
    model: nn.Module, path: str | Path, manifest: Manifest | None = None, *, strict: bool = True
) -> list[str]:
    """Load a checkpoint's ``base.safetensors`` (if any), then its trained weights, into ``model``.

    ``model`` must already have the checkpoint's trainable spec applied (LoRA injected).

    Args:
        strict: refuse saved tensors the model lacks (else skip them; see the return value).

    Returns:
        The names of saved tensors that were skipped (``strict=False`` only).
    """
    path = Path(path)
    manifest = manifest or read_manifest(path)
    skipped: list[str] = []
    if manifest.has_base:
        skipped += load_tensors_into(model, load_file(str(path / BASE)), {}, strict=strict)
    skipped += load_tensors_into(
        model, load_file(str(path / WEIGHTS)), manifest.row_subsets, strict=strict
    )
    return skipped


def begin(path: str | Path) -> Path:
    """Create and return the temporary directory a checkpoint for ``path`` is written into."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)  # left over by a crash while writing
    tmp.mkdir(parents=True)
    return tmp


def write_model_files(
    tmp: Path,
    *,
    params: Mapping[str, torch.Tensor],
    step: int,
    trainable: Sequence[str],
    row_subsets: Mapping[str, Sequence[int]],
    config_yaml: str,
    save_base: bool,
    has_resume: bool,
) -> None:
    """Write manifest, config and weights into ``tmp``; ``params`` maps names to full tensors."""
    save_file(trained_tensors(params, trainable, row_subsets), str(tmp / WEIGHTS))
    if save_base:
        save_file(base_tensors(params, trainable), str(tmp / BASE))
    atomic_write_text(tmp / CONFIG, config_yaml)
    manifest = Manifest(
        step=step,
        trainable=sorted(trainable),
        row_subsets={k: [int(i) for i in v] for k, v in row_subsets.items()},
        has_base=save_base,
        has_resume=has_resume,
    )
    atomic_write_json(tmp / MANIFEST, manifest.to_dict())


def write_resume(tmp: Path, state: dict[str, Any]) -> None:
    """Write the (rank-0) resume state: optimiser, scheduler, step, data position."""
    torch.save(state, tmp / RESUME)


def write_rng(tmp: Path, rank: int) -> None:
    """Write this process's RNG state (each rank its own file)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(state, tmp / f"rng_rank{rank}.pt")


def restore_rng(path: str | Path, rank: int) -> None:
    """Restore this process's RNG state from a checkpoint.

    Raises:
        FormatError: the checkpoint has no RNG file for ``rank`` (a different world size).
    """
    file = Path(path) / f"rng_rank{rank}.pt"
    if not file.exists():
        raise FormatError(
            f"no RNG state for rank {rank}",
            file=path,
            hint="resume with the same number of processes the checkpoint was written with",
        )
    state = torch.load(file, weights_only=False)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def read_resume(path: str | Path) -> dict[str, Any]:
    """The resume state written by :func:`write_resume`."""
    file = Path(path) / RESUME
    if not file.exists():
        raise FormatError("checkpoint has no resume state (resume.pt)", file=path)
    return torch.load(file, weights_only=False)  # type: ignore[no-any-return]


def commit(tmp: Path, path: str | Path) -> None:
    """Atomically move the finished ``tmp`` directory to ``path`` (replacing an older copy)."""
    path = Path(path)
    for child in tmp.iterdir():  # make the data durable before the rename publishes it
        if child.is_file():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
    if path.exists():
        trash = path.parent / f".{path.name}.old"
        if trash.exists():
            shutil.rmtree(trash)
        os.replace(path, trash)
        os.replace(tmp, path)
        shutil.rmtree(trash)
    else:
        os.replace(tmp, path)


def list_checkpoints(checkpoints_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete ``step_*`` checkpoints under ``checkpoints_dir``, sorted by step."""
    root = Path(checkpoints_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / MANIFEST).exists():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(checkpoints_dir: str | Path) -> Path | None:
    """The newest complete ``step_*`` checkpoint with resume state, or None."""
    for _, path in reversed(list_checkpoints(checkpoints_dir)):
        if (path / RESUME).exists():
            return path
    return None


def prune(checkpoints_dir: str | Path, keep_last: int) -> None:
    """Delete all but the ``keep_last`` newest ``step_*`` checkpoints (``0`` keeps all)."""
    if keep_last <= 0:
        return
    for _, path in list_checkpoints(checkpoints_dir)[:-keep_last]:
        shutil.rmtree(path)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a checkpoint dir, or a run dir (its ``checkpoints/final``, else
    its latest ``step_*``).

    Raises:
        ConfigError: nothing that looks like a checkpoint is there.
    """
    path = Path(path)
    if (path / MANIFEST).exists():
        return path
    for candidate in (path / "checkpoints" / "final", path / "final"):
        if (candidate / MANIFEST).exists():
            return candidate
    ckpts = list_checkpoints(path / "checkpoints")
    if ckpts:
        return ckpts[-1][1]
    # e.g. the quickstart's train/ folder, which holds one run directory per family
    runs = sorted(p for p in path.glob("*/checkpoints") if p.is_dir()) if path.is_dir() else []
    hint = f"; run directories below it: {', '.join(str(r.parent) for r in runs)}" if runs else ""
    raise ConfigError(
        f"{path}: no training checkpoint here (expected manifest.json, or a run directory with "
        f"checkpoints/final or checkpoints/step_*){hint}"
    )


def load_checkpoint(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    merge_lora: bool = True,
) -> tuple[Any, Any]:
    """Rebuild a trained model (of any family) from a checkpoint for inference.

    Builds the model from the checkpoint's family and model config (pretrained backbones are read from the
    paths it names), applies the same trainable spec (which re-injects the LoRA adapters), loads
    ``base.safetensors`` if present and then the trained weights, optionally folds LoRA into the
    base weights, and switches to eval mode.

    Args:
        path: a checkpoint directory, or a run directory (see :func:`resolve_checkpoint`).
        device: where to put the model.
        dtype: cast the model to this dtype after loading (None keeps fp32).
        merge_lora: fold LoRA adapters (and a trained new-rows embedding delta) into their base
            weights (faster inference).

    Returns:
        ``(model, processor)``: a :class:`~partonomy.models.core.model.SegLMM` in eval mode
        and its :class:`~partonomy.models.core.processing.SegProcessor`.
    """
    from partonomy.models.core.trainable import fold_new_rows, set_trainable
    from partonomy.models.core.trainable import merge_lora as merge
    from partonomy.training.config import load_train_config
    from partonomy.training.model import build_model

    ckpt = resolve_checkpoint(path)
    manifest = read_manifest(ckpt)
    cfg = load_train_config(ckpt / CONFIG)
    resolve_relative_paths(cfg.model, ckpt)
    # Built on the target device: no host copy of a large model, and a random backbone (one
    # the checkpoint does not hold: save_base never) is initialised as in training on GPUs.
    with torch.device(device):
        model, processor = build_model(cfg)
    set_trainable(model, cfg.trainable, new_token_ids=processor_new_token_ids(processor))
    load_weights(model, ckpt, manifest)
    if merge_lora:
        merge(model)
        fold_new_rows(model)
    for param in model.parameters():
        param.requires_grad_(False)
    model.to(device=device)
    if dtype is not None:
        model.to(dtype=dtype)
    model.eval()
    return model, processor


def resolve_relative_paths(model_cfg: Any, root: Path) -> None:
    """Make the backbone locations of a checkpoint's model config absolute, in place.

    A converted released checkpoint keeps its backbones inside the checkpoint directory
    (``llava/``, ``sam/``) and names them relative to it, so the directory can be moved.
    Absolute paths, and relative ones that do not exist under ``root``, are left as they are.
    """
    for section in ("llava", "sam"):
        sub = getattr(model_cfg, section, None)
        for key in ("pretrained", "tokenizer", "vision_tower"):
            value = getattr(sub, key, None)
            if isinstance(value, str) and not Path(value).is_absolute() and (root / value).exists():
                setattr(sub, key, str(root / value))


def processor_new_token_ids(processor: Any) -> list[int]:
    """Ids of the tokens the processor added to the base vocabulary (``<image>`` etc.)."""
    tok = processor.tokenizer
    return list(range(int(tok.vocab_size), len(tok)))
