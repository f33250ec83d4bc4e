"""A short markdown table of a task's results (what ``partonomy eval|score --task`` prints)."""

from __future__ import annotations

from typing import Any

COUNTS = ("n_questions", "n_scored", "n_unanswered")


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{100 * value:.2f}"
    return str(value)


def render_task_results(results: dict[str, Any], method: str) -> str:
    """One row per group (then ``overall``); rates in percent, counts as integers."""
    task = results["config"]["task"]
    overall = results["overall"]
    rates = [k for k in overall if k not in COUNTS]
    keys = [*rates, *COUNTS]
    groups: dict[str, Any] = next(
        (results[k] for k in ("by_subset", "by_split") if k in results), {}
    )
    lines = [
        f"{task}: {method} (rates in %)",
        "",
        "| group | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for name, metrics in [*groups.items(), ("overall", overall)]:
        lines.append(f"| {name} | " + " | ".join(_cell(metrics.get(k)) for k in keys) + " |")
    return "\n".join(lines)
