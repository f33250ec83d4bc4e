"""Reading a released HF-format checkpoint directory lazily, and telling which family wrote it.

A released directory (``save_pretrained`` of the original ``LISAForCausalLM``, ``GLaMMForCausalLM``
or ``PLUMForCausalLM``) holds ``config.json``, the tokenizer files and the weights as one or more
``pytorch_model*.bin`` or ``*.safetensors`` files, with ``pytorch_model.bin.index.json`` /
``model.safetensors.index.json`` naming the shard of every key when sharded.

:class:`SourceCheckpoint` lists the keys and shapes without reading tensor data and loads one tensor
when asked: safetensors through ``safe_open`` (only that tensor is read), ``.bin`` shards through
``torch.load(mmap=True)`` (the file is mapped, pages are read when touched), so converting a 13B
checkpoint never holds two copies of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from partonomy.errors import ConfigError


def detect_family(keys: Any, config: Mapping[str, Any] | None = None) -> str | None:
    """The family a key set looks like, or None.

    * ``plum``: PLUM's span extractor / feedback keys (``model.token_to_mask_fcs``,
      ``bio_encoder``, ``mask_pooler``); it also has ``text_hidden_fcs``, so it is checked first.
    * ``glamm``: ``text_hidden_fcs`` and ``model.region_encoder``.
    * ``pixellm``: a ``text_hidden_fcs`` checkpoint whose ``config.json`` has ``seg_token_num``
      (PixelLM's codebook) or without SAM but with a light mask decoder.
    * ``segllm``: HIPIE keys (``seg_model``), ``segmentator_predictor`` or ``hipie`` in the config.
    * ``lisa``: ``text_hidden_fcs`` alone.
    """
    keys = list(keys)
    config = config or {}

    def has(fragment: str) -> bool:
        return any(fragment in k for k in keys)

    if has("token_to_mask_fcs.") or has("bio_encoder.") or has("mask_pooler."):
        return "plum"
    if (
        has("seg_model.")
        or has("segmentator_predictor.")
        or any("hipie" in str(v).lower() for v in config.values())
    ):
        return "segllm"
    if not has("text_hidden_fcs."):
        return None
    if has("region_encoder."):
        return "glamm"
    if "seg_token_num" in config or not has("visual_model.image_encoder."):
        return "pixellm"
    return "lisa"


class SourceCheckpoint(Mapping[str, torch.Tensor]):
    """A released checkpoint directory as a lazy, read-only ``key -> tensor`` mapping.

    Args:
        directory: holds ``config.json`` and the weights (see module docstring).

    Raises:
        ConfigError: not a directory, no ``config.json``, no weights, or a broken index.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ConfigError(f"{self.directory}: not a directory (expected a released checkpoint)")
        config_file = self.directory / "config.json"
        if not config_file.is_file():
            raise ConfigError(
                f"{config_file}: missing; a released HF-format checkpoint directory holds config.json"
            )
        self.config: dict[str, Any] = json.loads(config_file.read_text())
        self._where: dict[str, Path] = {}
        self._bin: dict[Path, dict[str, torch.Tensor]] = {}
        self._safe: dict[Path, Any] = {}
        self._index()

    def _index(self) -> None:
        d = self.directory
        for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
            index = d / index_name
            if index.is_file():
                weight_map = json.loads(index.read_text()).get("weight_map")
                if not isinstance(weight_map, dict):
                    raise ConfigError(
                        f"{index}: no 'weight_map' object; re-download the index file"
                    )
                for key, shard in weight_map.items():
                    path = d / shard
                    if not path.is_file():
                        raise ConfigError(
                            f"{index}: key {key!r} is in shard {shard!r}, which is missing from {d}"
                        )
                    self._where[key] = path
                return
        shards = sorted(d.glob("*.safetensors")) or sorted(d.glob("pytorch_model*.bin"))
        if not shards:
            raise ConfigError(
                f"{d}: no weights (expected *.safetensors or pytorch_model*.bin, optionally with "
                "an index json)"
            )
        for shard in shards:
            for key in self._shard_keys(shard):
                self._where[key] = shard

    def _shard_keys(self, shard: Path) -> list[str]:
        if shard.suffix == ".safetensors":
            return list(self._safe_handle(shard).keys())
        return list(self._bin_shard(shard))

    def _safe_handle(self, shard: Path) -> Any:
        if shard not in self._safe:
            from safetensors import safe_open

            self._safe[shard] = safe_open(str(shard), framework="pt")
        return self._safe[shard]

    def _bin_shard(self, shard: Path) -> dict[str, torch.Tensor]:
        if shard not in self._bin:
            state = torch.load(shard, map_location="cpu", weights_only=True, mmap=True)
            if not isinstance(state, dict):
                raise ConfigError(f"{shard}: not a state dict")
            self._bin[shard] = state
        return self._bin[shard]

    # ------------------------------------------------------------------------ Mapping
    def __getitem__(self, key: str) -> torch.Tensor:
        shard = self._where[key]
        if shard.suffix == ".safetensors":
            return self._safe_handle(shard).get_tensor(key)  # type: ignore[no-any-return]
        return self._bin_shard(shard)[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def shape(self, key: str) -> tuple[int, ...]:
        """The shape of ``key`` without reading its data (safetensors) or by mapping its shard."""
        shard = self._where[key]
        if shard.suffix == ".safetensors":
            return tuple(self._safe_handle(shard).get_slice(key).get_shape())
        return tuple(self._bin_shard(shard)[key].shape)

    def meta(self) -> dict[str, torch.Tensor]:
        """Every key as a meta tensor of its shape (and dtype), for planning without data."""
        out = {}
        for key in self:
            shard = self._where[key]
            if shard.suffix == ".safetensors":
                sl = self._safe_handle(shard).get_slice(key)
                dtype = _SAFE_DTYPES.get(sl.get_dtype(), torch.float32)
                out[key] = torch.empty(tuple(sl.get_shape()), dtype=dtype, device="meta")
            else:
                t = self._bin_shard(shard)[key]
                out[key] = torch.empty(t.shape, dtype=t.dtype, device="meta")
        return out


_SAFE_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "BOOL": torch.bool,
}
