"""The HF parquet form: lossless both ways (records equal, image bytes identical), offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from partonomy.cli.main import cli
from partonomy.errors import ConfigError, FormatError
from partonomy.io.hf_dataset import (
    COLUMNS,
    MANIFEST_FILE,
    hf_features,
    hf_to_qa,
    iter_hf_records,
    qa_to_hf,
)
from partonomy.io.qa_pairs import load_qa_pairs

FIXTURES = Path(__file__).parents[1] / "fixtures" / "qa"
IMAGES = ("plane.png", "boat.png", "mug.png")


@pytest.fixture
def qa_dir(tmp_path: Path) -> Path:
    out = tmp_path / "qa"
    shutil.copytree(FIXTURES, out, ignore=shutil.ignore_patterns("*.py"))
    return out


def _round_trip(qa_file: Path, tmp_path: Path, **kwargs) -> tuple[Path, Path]:
    hf_dir = tmp_path / "hf"
    qa_to_hf(qa_file, hf_dir, progress=False, **kwargs)
    back, images = tmp_path / "back" / "qa.json", tmp_path / "back" / "images"
    hf_to_qa(hf_dir, back, images, progress=False)
    return back, images


@pytest.mark.parametrize("name", ["tiny_qa.json", "original_layout.json"])
def test_round_trip_is_lossless(qa_dir, tmp_path, name):
    back, images = _round_trip(qa_dir / name, tmp_path, shard_size=2)
    original = load_qa_pairs(qa_dir / name)
    again = load_qa_pairs(back)
    assert again == original
    assert [qa.key_order for qa in again] == [qa.key_order for qa in original]
    assert json.loads(back.read_text()) == json.loads((qa_dir / name).read_text())
    for qa in original:
        assert (images / qa.image_path).read_bytes() == (qa_dir / qa.image_path).read_bytes()


def test_layout_shards_and_manifest(qa_dir, tmp_path):
    summary = qa_to_hf(qa_dir / "tiny_qa.json", tmp_path / "hf", shard_size=4, progress=False)
    assert (summary.n_records, summary.n_images) == (6, 3)
    names = sorted(p.name for p in (tmp_path / "hf" / "data").iterdir())
    assert names == ["test-00000-of-00002.parquet", "test-00001-of-00002.parquet"]
    manifest = json.loads((tmp_path / "hf" / MANIFEST_FILE).read_text())
    assert manifest["n_records"] == 6 and manifest["format_version"] == 1
    assert list(hf_features()) == list(COLUMNS)
    ids = [qa.question_id for qa, _ in iter_hf_records(tmp_path / "hf")]
    assert ids == [qa.question_id for qa in load_qa_pairs(qa_dir / "tiny_qa.json")]


def test_datasets_loads_it_offline_with_decoded_images_and_rle_strings(qa_dir, tmp_path):
    import datasets
    from PIL import Image

    qa_to_hf(qa_dir / "tiny_qa.json", tmp_path / "hf", progress=False)
    files = sorted(str(p) for p in (tmp_path / "hf" / "data").glob("*.parquet"))
    ds = datasets.load_dataset(
        "parquet", data_files={"test": files}, split="test", cache_dir=str(tmp_path / "cache")
    )
    assert isinstance(ds.features["image"], datasets.Image)
    row = ds[1]
    assert row["question_id"] == "plane-pos"
    assert isinstance(row["image"], Image.Image) and row["image"].size == (16, 12)
    assert json.loads(row["segmentations"])["wing"][0]["size"] == [12, 16]


def test_implicit_ids_stay_implicit_and_record_position_is_kept(qa_dir, tmp_path):
    back, _ = _round_trip(qa_dir / "original_layout.json", tmp_path)
    assert all("question_id" not in rec for rec in json.loads(back.read_text()))


def test_image_root_and_absolute_paths(qa_dir, tmp_path):
    elsewhere = tmp_path / "imgs"
    elsewhere.mkdir()
    for name in IMAGES:
        shutil.move(qa_dir / name, elsewhere / name)
    with pytest.raises(FormatError, match="image not found") as info:
        qa_to_hf(qa_dir / "tiny_qa.json", tmp_path / "hf", progress=False)
    assert info.value.field == "image_path" and info.value.record == "0 (question_id 'plane-ident')"
    qa_to_hf(qa_dir / "tiny_qa.json", tmp_path / "hf", image_root=elsewhere, progress=False)

    raw = json.loads((qa_dir / "tiny_qa.json").read_text())
    raw[0]["image_path"] = str(elsewhere / "plane.png")  # absolute: kept verbatim
    (qa_dir / "abs.json").write_text(json.dumps(raw))
    back, images = _round_trip_to(qa_dir / "abs.json", tmp_path / "r2", image_root=elsewhere)
    assert json.loads(back.read_text())[0]["image_path"] == str(elsewhere / "plane.png")
    stripped = images / str(elsewhere / "plane.png").lstrip("/")
    assert stripped.read_bytes() == (elsewhere / "plane.png").read_bytes()


def _round_trip_to(qa_file: Path, root: Path, **kwargs) -> tuple[Path, Path]:
    root.mkdir()
    return _round_trip(qa_file, root, **kwargs)


def test_refuses_to_overwrite_and_leaves_no_partial_directory(qa_dir, tmp_path):
    hf_dir = tmp_path / "hf"
    qa_to_hf(qa_dir / "tiny_qa.json", hf_dir, progress=False)
    with pytest.raises(ConfigError, match="--overwrite"):
        qa_to_hf(qa_dir / "tiny_qa.json", hf_dir, progress=False)
    (qa_dir / "mug.png").write_bytes(b"not a png")  # fails on the 5th record
    with pytest.raises(FormatError, match="cannot read image"):
        qa_to_hf(qa_dir / "tiny_qa.json", hf_dir, overwrite=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "qa"]  # old one kept, no temp
    back = tmp_path / "back.json"
    hf_to_qa(hf_dir, back, tmp_path / "img", progress=False)
    with pytest.raises(ConfigError, match="exists"):
        hf_to_qa(hf_dir, back, tmp_path / "img", progress=False)


def test_path_outside_images_dir_is_refused(qa_dir, tmp_path):
    (qa_dir / "sub").mkdir()
    raw = json.loads((qa_dir / "tiny_qa.json").read_text())
    for rec in raw:
        rec["image_path"] = "../" + rec["image_path"]
    (qa_dir / "sub" / "qa.json").write_text(json.dumps(raw))
    qa_to_hf(qa_dir / "sub" / "qa.json", tmp_path / "hf", progress=False)
    with pytest.raises(FormatError, match="outside the images directory") as info:
        hf_to_qa(tmp_path / "hf", tmp_path / "back.json", tmp_path / "img", progress=False)
    assert info.value.field == "image_path" and info.value.record == 0


def test_corrupt_or_foreign_parquet(qa_dir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    hf_dir = tmp_path / "hf"
    qa_to_hf(qa_dir / "tiny_qa.json", hf_dir, progress=False)
    shard = next((hf_dir / "data").glob("*.parquet"))
    table = pq.read_table(shard).drop_columns(["key_order"])
    pq.write_table(table, shard)
    with pytest.raises(FormatError, match="missing column") as info:
        list(iter_hf_records(hf_dir))
    assert info.value.field == "key_order" and info.value.file == str(shard)
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[2]["answer_choices"] = rows[2]["answer_choices"][:4]
    for row in rows:
        row["key_order"] = []
    pq.write_table(pa.Table.from_pylist(rows), shard)
    with pytest.raises(FormatError, match="exactly 5") as info:
        list(iter_hf_records(hf_dir))
    assert info.value.field == "answer_choices" and info.value.file == str(shard)
    assert info.value.record == "row 2 (question_id 'boat-neg')"
    shard.write_bytes(b"PAR1 truncated")
    with pytest.raises(FormatError, match="unreadable parquet"):
        list(iter_hf_records(hf_dir))


def test_cli_round_trip(qa_dir, tmp_path):
    runner = CliRunner()
    hf_dir, back, images = tmp_path / "hf", tmp_path / "b" / "qa.json", tmp_path / "b" / "img"
    result = runner.invoke(cli, ["convert", str(qa_dir / "tiny_qa.json"), "--to-hf", str(hf_dir)])
    assert result.exit_code == 0, result.output
    assert "6 records (3 images)" in result.output
    args = ["convert", str(hf_dir), "--to-json", str(back), "--images-dir", str(images)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert load_qa_pairs(back) == load_qa_pairs(qa_dir / "tiny_qa.json")
    result = runner.invoke(cli, ["convert", str(hf_dir), "--to-json", str(back)])
    assert result.exit_code == 2 and "--images-dir" in result.output
    result = runner.invoke(cli, [*args, "--overwrite"])
    assert result.exit_code == 0
    result = runner.invoke(cli, ["convert", str(qa_dir / "nope.json"), "--to-hf", str(hf_dir)])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output
