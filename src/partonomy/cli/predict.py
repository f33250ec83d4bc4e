"""``partonomy predict IMAGE "question" [--model plum|lisa|glamm]``: ask a segmentation LMM about one
image and segment the parts it names (GLaMM also takes ``--box`` regions).

Writes ``answer.txt``, ``spans.json`` (character spans of the answer, each with its mask as a COCO
RLE) and ``overlay.png`` (the masks coloured and labelled over the image) into ``--out``; see
:func:`partonomy.viz.answer_files.write_answer` and ``docs/plum-inference.md``.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="predict")
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("question")
@click.option(
    "--model",
    "family",
    default="plum",
    show_default=True,
    help="Model family (partonomy ls families): plum, lisa, glamm, ...",
)
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    default=None,
    help="Training checkpoint or run directory (default: an untrained --preset model).",
)
@click.option(
    "--preset", default="tiny", show_default=True, help="Preset used without --checkpoint."
)
@click.option(
    "--box",
    "boxes",
    multiple=True,
    metavar="x0,y0,x1,y1",
    help="A region in image pixels for models with a region encoder (glamm); written into the "
    "question as <bbox>, in order. Repeatable.",
)
@click.option(
    "--highlight",
    default=None,
    metavar='"a,b"',
    help="Comma-separated phrases of the answer to segment instead of the tagged spans.",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("plum_predict"),
    show_default=True,
    help="Output directory.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option(
    "--dtype",
    default="auto",
    show_default=True,
    help="auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16.",
)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=512, show_default=True)
def command(
    image: Path,
    question: str,
    family: str,
    checkpoint: Path | None,
    preset: str,
    boxes: tuple[str, ...],
    highlight: str | None,
    out: Path,
    device: str,
    dtype: str,
    max_new_tokens: int,
) -> None:
    """Answer QUESTION about IMAGE and write the answer, its spans and an overlay."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from partonomy.errors import FormatError
    from partonomy.models.core.loading import load_model
    from partonomy.models.core.predictor import SegPredictor
    from partonomy.models.core.regions import parse_box
    from partonomy.viz.answer_files import write_answer

    try:
        with Image.open(image) as img:
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise FormatError(
            f"cannot read the image ({err})", file=image, hint="pass a PNG or JPEG file"
        ) from None
    phrases = None if highlight is None else [p.strip() for p in highlight.split(",") if p.strip()]
    regions = [parse_box(b, rgb.shape[:2]) for b in boxes]
    model, processor = load_model(
        family, None if checkpoint is None else str(checkpoint), preset, device, dtype
    )
    predictor = SegPredictor(model, processor, max_new_tokens=max_new_tokens)
    answer = predictor.answer(rgb, question, highlight=phrases, boxes=regions)
    paths = write_answer(out, rgb, question, answer, highlight=phrases, image_path=str(image))
    click.echo(answer.text)
    for span in answer.spans:
        click.echo(f"  [{span.start}:{span.end}] {span.text}")
    if phrases:
        found = {s.text.lower() for s in answer.spans}
        for phrase in phrases:
            if phrase.lower() not in found:
                click.secho(f"note: '{phrase}' is not in the answer; nothing segmented", err=True)
    click.echo(f"wrote {paths['answer']}, {paths['spans']}, {paths['overlay']}")
