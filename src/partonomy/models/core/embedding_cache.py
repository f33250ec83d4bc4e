"""A persistent on-disk cache of the mask head's image embeddings (``partonomy cache-embeddings``).

SAM's image encoder is frozen in every recipe, so an image's embedding depends only on the image
and the encoder's weights: it can be computed once and read back by every later evaluation
(``--model-opt embedding_cache=DIR``).

Layout: ``DIR/<encoder id>/<kk>/<key digest>.pt``, one ``torch.save``'d ``(D, h, w)`` tensor per
image, in the dtype the encoder produced it. The key is the image's content key (:func:`image_key`:
shape, dtype and a hash of the decoded pixels, so a re-encoded or renamed file with the same pixels
hits); the encoder id is a hash of the encoder's class, input side and every parameter and buffer,
so embeddings of another SAM (or of the same SAM in another dtype) never mix. Every file is written
atomically (temporary file, then rename): an interrupted run leaves no partial entry, and a rerun
skips what is there.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from partonomy.errors import FormatError
from partonomy.io.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from partonomy.models.core.model import SegLMM


def image_key(image: np.ndarray) -> str:
    """Content key of an image: shape, dtype and a BLAKE2 hash of its bytes."""
    digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).hexdigest()
    return f"{image.shape}:{image.dtype}:{digest}"


def encoder_identity(mask_head: nn.Module) -> str:
    """A 16-hex-digit digest of the mask head's image encoder: its class, input side, and the
    name, shape, dtype and bytes of every parameter and buffer."""
    encoder: Any = getattr(getattr(mask_head, "sam", mask_head), "vision_encoder", mask_head)
    digest = hashlib.sha256(type(encoder).__qualname__.encode())
    digest.update(str(getattr(mask_head, "input_size", "")).encode())
    state = encoder.state_dict()
    for name in sorted(state):
        tensor = state[name].detach()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class EmbeddingCache:
    """The embeddings of one encoder under ``root`` (module docstring).

    Args:
        root: the cache directory (created on the first write).
        encoder_id: from :func:`encoder_identity`.
    """

    def __init__(self, root: str | Path, encoder_id: str) -> None:
        self.root = Path(root)
        self.encoder_id = encoder_id
        self.dir = self.root / encoder_id

    @classmethod
    def for_mask_head(cls, root: str | Path, mask_head: nn.Module) -> EmbeddingCache:
        return cls(root, encoder_identity(mask_head))

    def path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.dir / digest[:2] / f"{digest}.pt"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str, device: torch.device | str | None = None) -> torch.Tensor | None:
        """The ``(D, h, w)`` embedding of ``key``, or None when it is not cached.

        Raises:
            FormatError: the entry exists but cannot be read (delete it and rerun).
        """
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            value = torch.load(path, map_location=device, weights_only=True)
        except Exception as err:
            raise FormatError(
                f"cannot read cached embedding: {err}",
                file=path,
                hint="delete the file (or the cache directory) and rerun to recompute it",
            ) from None
        if not isinstance(value, torch.Tensor) or value.dim() != 3:
            raise FormatError(
                "a cached embedding must be one (D, h, w) tensor",
                file=path,
                hint="delete the file and rerun to recompute it",
            )
        return value

    def put(self, key: str, embedding: torch.Tensor) -> None:
        """Store ``embedding`` ``(D, h, w)`` for ``key`` (atomically; replaces an older entry)."""
        if embedding.dim() != 3:
            raise ValueError(f"an embedding is (D, h, w), got shape {tuple(embedding.shape)}")
        buffer = io.BytesIO()
        torch.save(embedding.detach().cpu().clone(), buffer)
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())


@torch.no_grad()
def fill_cache(
    model: SegLMM,
    sam_image_size: int,
    images: Sequence[Path],
    cache: EmbeddingCache,
    *,
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[int, int]:
    """Compute and store the embedding of every image not yet in ``cache``.

    Args:
        model: the model whose mask head encodes the images (on its device, in its dtype).
        sam_image_size: the encoder input side ``T`` (the processor's ``sam_image_size``).
        images: image files (decoded as :func:`partonomy.io.images.load_image` does).
        cache: where the embeddings go (:meth:`EmbeddingCache.for_mask_head` of ``model``).
        batch_size: images per encoder call.
        progress: show a tqdm bar.

    Returns:
        ``(computed, already cached)`` image counts (a file seen twice counts once).
    """
    from tqdm import tqdm

    from partonomy.io.images import load_image
    from partonomy.models.backbones.preprocess import sam_preprocess

    device = next(model.parameters()).device
    computed = skipped = 0
    pending: dict[str, torch.Tensor] = {}

    def flush() -> None:
        batch = torch.stack(list(pending.values())).to(device)
        for key, embedding in zip(pending, model.image_embeddings(batch), strict=True):
            cache.put(key, embedding)
        pending.clear()

    for path in tqdm(images, desc="cache-embeddings", unit="img", disable=not progress):
        image = load_image(path, file=path, record=path.name)
        key = image_key(image)
        if key in pending or key in cache:
            skipped += 1
            continue
        pending[key] = torch.from_numpy(sam_preprocess(image, sam_image_size)[0])
        computed += 1
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()
    return computed, skipped
