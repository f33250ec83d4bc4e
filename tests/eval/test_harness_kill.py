"""Resume after a real ``kill -9``: the rerun computes only what is missing, and its results
equal an uninterrupted run's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from partonomy.eval.harness import PREDICTIONS_FILE, RESULTS_FILE

FIXTURES = Path(__file__).parents[1] / "fixtures" / "qa"
N_QUESTIONS = 12
DELAY_S = 0.15  # per question: the run lasts ~1.8 s, so the kill lands mid-run


def _command(qa: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from partonomy.cli.main import cli; cli()",
        "eval",
        "--model",
        "random",
        str(qa),
        "--out",
        str(out),
        "--model-opt",
        "masks=random",
        "--model-opt",
        f"delay={DELAY_S}",
        "--batch-size",
        "1",
        "--no-progress",
    ]


def _n_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _without_paths(results: dict) -> dict:
    config = {k: v for k, v in results["config"].items() if not k.endswith("_file")}
    return {**results, "config": config}


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    qa_dir = tmp_path / "qa"
    shutil.copytree(FIXTURES, qa_dir, ignore=shutil.ignore_patterns("*.py"))
    raw = json.loads((qa_dir / "tiny_qa.json").read_text())
    many = [{**r, "question_id": f"{r['question_id']}-{k}"} for k in range(2) for r in raw]
    qa = qa_dir / "qa.json"
    qa.write_text(json.dumps(many))
    assert len(many) == N_QUESTIONS
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _command(qa, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while _n_lines(killed / PREDICTIONS_FILE) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no predictions appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    n_done = _n_lines(killed / PREDICTIONS_FILE)
    assert 3 <= n_done < N_QUESTIONS
    assert not (killed / RESULTS_FILE).exists()
    before = (killed / PREDICTIONS_FILE).read_bytes()

    rerun = subprocess.run(_command(qa, killed), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{n_done} resumed, {N_QUESTIONS - n_done} computed" in rerun.stdout
    after = (killed / PREDICTIONS_FILE).read_bytes()
    assert after.startswith(before[: before.rfind(b"\n") + 1])  # finished lines untouched
    ids = [json.loads(line)["question_id"] for line in after.splitlines()]
    assert sorted(ids) == sorted(r["question_id"] for r in many)  # each exactly once

    straight = tmp_path / "straight"
    run = subprocess.run(_command(qa, straight), env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    resumed = json.loads((killed / RESULTS_FILE).read_text())
    uninterrupted = json.loads((straight / RESULTS_FILE).read_text())
    assert _without_paths(resumed) == _without_paths(uninterrupted)
    assert resumed["overall"]["micro_giou"] is not None and resumed["overall"]["n_questions"] == 12
