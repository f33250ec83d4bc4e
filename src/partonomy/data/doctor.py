"""``partonomy data check``: walk the seed README's ``dataset/`` tree and say what is usable.

For each dataset a config needs, the doctor reports ``found`` / ``missing`` / ``malformed``, the
exact paths it expects (relative to the root) and what it counted. Configs:

* ``stage1``: the stage-1 mixture's sources (sem-seg, refer-seg, VQA, ReasonSeg);
* ``stage2``: the part datasets PARTONOMY-PACO, -PartImageNet and -PASCAL-Part are built from;
* ``all``: both, plus PARTONOMY-Core (evaluation only).

Big annotation JSONs are only checked for truncation unless ``deep`` is set, which parses and
validates them (minutes for PACO-LVIS).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from partonomy.data.sources.base import CheckResult, SourceInfo

CONFIGS = ("stage1", "stage2", "all")
NEEDS = {"stage1": ("stage1",), "stage2": ("stage2",), "all": ("stage1", "stage2", "eval")}
"""Config -> the ``SourceInfo.needed_by`` tags it checks."""


@dataclass
class Report:
    """The doctor's findings for one root and config."""

    root: Path
    config: str
    results: list[CheckResult]

    @property
    def ok(self) -> bool:
        """True when every dataset the config needs was found and is well formed."""
        return all(r.status == "found" for r in self.results)

    def render(self) -> str:
        """A plain-text report: one block per dataset, then a summary line."""
        lines = [f"partonomy data check: {self.root} (config {self.config})", ""]
        width = max((len(r.name) for r in self.results), default=0)
        for r in self.results:
            counts = ", ".join(f"{v} {k}" for k, v in r.counts.items())
            lines.append(f"  {r.name:<{width}}  {r.status.upper():<9}  {counts}".rstrip())
            lines.extend(f"      expects {self.root / p}" for p in r.expected)
            lines.extend(f"      ! {p}" for p in r.problems)
        bad = [r.name for r in self.results if r.status != "found"]
        lines.append("")
        if bad:
            lines.append(f"{len(bad)} of {len(self.results)} datasets not usable: {', '.join(bad)}")
        else:
            lines.append(f"all {len(self.results)} datasets found")
        return "\n".join(lines)


def find_root(path: Path) -> Path:
    """``path`` itself, or ``path/dataset`` when ``path`` is the folder above the seed tree."""
    nested = path / "dataset"
    return nested if nested.is_dir() and not (path / "ade20k").exists() else path


def sources_for(config: str) -> list[SourceInfo]:
    """The registered sources a config needs, in registry order."""
    from partonomy.registries import SOURCES

    if config not in NEEDS:
        raise ValueError(f"unknown config '{config}'; choose one of {', '.join(CONFIGS)}")
    tags = set(NEEDS[config])
    infos: list[SourceInfo] = [SOURCES.get(name) for name in SOURCES.names()]
    return [s for s in infos if s.check is not None and tags & set(s.needed_by)]


def check_tree(
    root: str | Path, config: str = "all", *, deep: bool = False, progress: bool = False
) -> Report:
    """Check every dataset ``config`` needs under ``root`` (the ``dataset/`` folder or its parent).

    ``progress`` shows a bar over the datasets on stderr, naming the one being checked (with
    ``deep``, parsing PACO's or refCOCO's annotations takes minutes).

    Returns:
        A :class:`Report`; ``report.ok`` is False when anything needed is missing or malformed.
    """
    from tqdm.auto import tqdm

    base = find_root(Path(root))
    results = []
    bar = tqdm(sources_for(config), desc="data check", unit="dataset", disable=not progress)
    for info in bar:
        assert info.check is not None
        bar.set_postfix_str(info.name)
        results.append(info.check(base, deep))
    return Report(base, config, results)
