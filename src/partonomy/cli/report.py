"""``partonomy report RUN_DIR [RUN_DIR ...] --out report.html``: one self-contained HTML report.

Calls :func:`partonomy.eval.html_report.write_report`; what the page holds is in
``docs/demo-and-report.md``.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="report")
@click.argument(
    "run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write (atomically).",
)
@click.option(
    "--gallery",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Best and worst questions shown per run.",
)
@click.option("--title", default=None, help="Page title (default: partonomy evaluation report).")
def command(run_dirs: tuple[Path, ...], out: Path, gallery: int, title: str | None) -> None:
    """Write one self-contained HTML report (tables, charts, gallery) of `partonomy eval` RUN_DIRS."""
    from partonomy.eval.html_report import write_report

    path = write_report(list(run_dirs), out, gallery=gallery, title=title)
    size = path.stat().st_size
    click.echo(
        f"wrote {path} ({size / 1024:.0f} KiB, {len(run_dirs)} run(s)); open it in a browser"
    )
