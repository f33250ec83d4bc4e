"""``partonomy synth`` through click's CliRunner, the preview sheet, and QA generation on a world."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from partonomy.cli.main import cli
from partonomy.data.synth import write_preview
from partonomy.io.descriptor import load_descriptor
from partonomy.io.graph import load_graph
from partonomy.io.qa_pairs import QUESTION_TYPES


def test_cli_writes_a_world_and_its_preview(tmp_path: Path) -> None:
    out = tmp_path / "world"
    args = ["synth", "--out", str(out), "--n-images", "5", "--seed", "3", "--size", "48"]
    result = CliRunner().invoke(cli, [*args, "--preview", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"descriptor: {out / 'descriptor.json'}" in result.output
    for name in ("descriptor.json", "graph.yaml", "synth_config.yaml", "preview.png"):
        assert (out / name).is_file(), name
    descriptor = load_descriptor(out / "descriptor.json")
    assert len(descriptor.instances) == 5
    with Image.open(out / "preview.png") as sheet:
        assert sheet.format == "PNG"


def test_cli_options_reach_the_config(tmp_path: Path) -> None:
    config = tmp_path / "synth.yaml"
    config.write_text("categories: [cycles]\nclutter: 0\n")
    out = tmp_path / "w"
    result = CliRunner().invoke(
        cli,
        [
            "synth", "--out", str(out), "--n-images", "3", "--size", "40", "--preset", "easy",
            "--config", str(config), "--set", "objects=[bicycle]", "--format", "jpeg",
            "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    descriptor = load_descriptor(out / "descriptor.json")
    assert {i.image_label for i in descriptor.instances} == {"bicycle"}
    assert all(i.image_path.endswith(".jpg") for i in descriptor.instances)
    assert load_graph(out / "graph.yaml").instance_graph == {"cycles": ["bicycle"]}


def test_cli_reports_config_mistakes_without_a_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_key = runner.invoke(cli, ["synth", "--out", str(tmp_path), "--set", "oclusion_prob=0"])
    assert bad_key.exit_code == 2
    assert "Did you mean 'occlusion_prob'" in bad_key.output
    assert "Traceback" not in bad_key.output
    bad_set = runner.invoke(cli, ["synth", "--out", str(tmp_path), "--set", "clutter"])
    assert bad_set.exit_code == 2 and "key=value" in bad_set.output
    bad_preset = runner.invoke(cli, ["synth", "--out", str(tmp_path), "--preset", "hard"])
    assert bad_preset.exit_code == 2 and "unknown synth preset" in bad_preset.output


def test_preview_sheet_has_one_tile_per_image(world: tuple[Path, Path], tmp_path: Path) -> None:
    sheet_path = write_preview(world[0], tmp_path / "sheet.png", n=4, tile=64)
    with Image.open(sheet_path) as sheet:
        # 4 tiles in a 2 x 2 grid; a tile is image + overlay (2 * 64 + 6 px) plus an 8-px gutter.
        assert sheet.width == 2 * (2 * 64 + 6 + 8)
        pixels = sheet.convert("RGB")
        colours = {pixels.getpixel((x, 40)) for x in range(0, sheet.width, 3)}
        assert len(colours) > 10  # images were pasted, not a blank sheet


def test_question_generation_over_the_world_yields_every_question_type(
    world: tuple[Path, Path],
) -> None:
    from partonomy.qa.generate import generate_qa

    result = generate_qa(
        load_descriptor(world[0]), load_graph(world[1]), seed=0, embedder=None, progress=False
    )
    counts = Counter(r.question_type for r in result.records)
    assert set(counts) == set(QUESTION_TYPES)
    assert sum(result.n_dropped.values()) == 0
    # Every question is about an image of the world, and its ground-truth parts are annotated.
    descriptor = load_descriptor(world[0])
    by_path = {i.image_path: i for i in descriptor.instances}
    for record in result.records[:50]:
        inst = by_path[record.image_path]
        assert set(record.segmentations) <= set(inst.part_names())
