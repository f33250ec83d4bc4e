"""Sharded evaluation (``partonomy eval --num-processes 2`` on CPU/gloo): the batch split, the
merge, byte-identical results and resume after a killed sharded run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from partonomy.eval.harness import PREDICTIONS_FILE, RESULTS_FILE
from partonomy.eval.sharding import SHARD_GLOB, Shard, merge_shards, shard_file
from partonomy.io.atomic import read_jsonl_tolerant

FIXTURES = Path(__file__).parents[1] / "fixtures" / "qa"


class _Line:
    def __init__(self, qid: str, value: int) -> None:
        self.qid, self.value = qid, value

    def to_dict(self) -> dict[str, object]:
        return {"question_id": self.qid, "v": self.value}


def _read(path: Path) -> dict[str, _Line]:
    return {r["question_id"]: _Line(r["question_id"], r["v"]) for r in read_jsonl_tolerant(path)}


def test_batches_are_contiguous_blocks_of_the_single_process_batches() -> None:
    items = list(range(7))  # batches of 2: [0,1] [2,3] [4,5] [6]
    assert Shard(0, 2).batches(items, 2) == [[0, 1], [2, 3]]
    assert Shard(1, 2).batches(items, 2) == [[4, 5], [6]]
    assert Shard(0, 3).batches(items, 2) == [[0, 1]]
    assert Shard(1, 3).batches(items, 2) == [[2, 3]]
    assert Shard(2, 3).batches(items, 2) == [[4, 5], [6]]
    assert Shard(1, 4).batches([0], 2) == []  # more processes than batches: some get none
    with pytest.raises(ValueError, match="outside"):
        Shard(2, 2)


def test_merge_orders_lines_by_the_data_file_and_removes_shards(tmp_path: Path) -> None:
    main = tmp_path / PREDICTIONS_FILE
    main.write_text('{"question_id":"c","v":3}\n')
    shard_file(tmp_path, 0).write_text('{"question_id":"b","v":2}\n{"question_id":"x"')  # torn
    shard_file(tmp_path, 1).write_text('{"question_id":"a","v":1}\n')
    assert merge_shards(tmp_path, main, ["a", "b", "c", "d"], _read) == 2
    assert main.read_text() == (
        '{"question_id":"a","v":1}\n{"question_id":"b","v":2}\n{"question_id":"c","v":3}\n'
    )
    assert not list(tmp_path.glob(SHARD_GLOB))
    assert merge_shards(tmp_path, main, ["a"], _read) == 0  # nothing to merge: file untouched
    assert main.read_text().count("\n") == 3


def _eval(qa: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "partonomy", "eval", str(qa), "--out", str(out),
        "--batch-size", "2", "--no-progress", *extra,
    ]  # fmt: skip


ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def test_two_processes_give_byte_identical_results(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES, tmp_path / "qa", ignore=shutil.ignore_patterns("*.py"))
    qa = tmp_path / "qa" / "tiny_qa.json"
    model = ["--model", "plum", "--model-opt", "preset=tiny", "--model-opt", "device=cpu"]
    run = tmp_path / "run"
    one = subprocess.run(_eval(qa, run, *model), env=ENV, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-3000:]
    single = {name: (run / name).read_bytes() for name in (RESULTS_FILE, PREDICTIONS_FILE)}
    # The same directory, so the paths that results.json names are the same too.
    cmd = _eval(qa, run, *model, "--overwrite", "--num-processes", "2")
    two = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "launching 2 processes" in two.stderr
    assert "6 questions: 0 resumed, 6 computed" in two.stdout  # printed once, by rank 0
    assert two.stdout.count("questions:") == 1
    for name, data in single.items():
        assert (run / name).read_bytes() == data, name
    assert not list(run.glob(SHARD_GLOB))


def _descendants(root: int) -> list[int]:
    """Every live descendant of ``root`` (torchrun starts its workers in new sessions, so a
    process-group kill would miss them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the workers")
def test_killed_sharded_run_resumes_like_a_single_process_one(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES, tmp_path / "qa", ignore=shutil.ignore_patterns("*.py"))
    raw = json.loads((tmp_path / "qa" / "tiny_qa.json").read_text())
    many = [{**r, "question_id": f"{r['question_id']}-{k}"} for k in range(3) for r in raw]
    qa = tmp_path / "qa" / "qa.json"
    qa.write_text(json.dumps(many))
    model = ["--model", "random", "--model-opt", "masks=random", "--model-opt", "delay=0.2"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _eval(qa, killed, *model, "--num-processes", "2"),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120

    def shard_lines() -> list[int]:
        return [p.read_bytes().count(b"\n") for p in sorted(killed.glob(SHARD_GLOB))]

    while len(shard_lines()) < 2 or min(shard_lines()) < 2:
        assert proc.poll() is None, "the sharded run ended before it could be killed"
        assert time.monotonic() < deadline, "no shard predictions appeared"
        time.sleep(0.02)
    for pid in [proc.pid, *_descendants(proc.pid)]:  # as a job scheduler would: every process
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    while any(Path(f"/proc/{pid}").exists() for pid in _descendants(proc.pid)):
        time.sleep(0.02)
    n_done = sum(shard_lines())
    assert 4 <= n_done < len(many) and not (killed / RESULTS_FILE).exists()

    # Resume with one process: the shard files are merged first, nothing is predicted twice.
    rerun = subprocess.run(_eval(qa, killed, *model), env=ENV, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{n_done} resumed, {len(many) - n_done} computed" in rerun.stdout
    ids = [r["question_id"] for r in read_jsonl_tolerant(killed / PREDICTIONS_FILE)]
    assert sorted(ids) == sorted(r["question_id"] for r in many)  # each exactly once
    assert not list(killed.glob(SHARD_GLOB))

    moved = tmp_path / "resumed"
    killed.rename(moved)
    straight = subprocess.run(_eval(qa, killed, *model), env=ENV, capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr[-3000:]
    # Both were written in the directory `killed`, so even the paths they name agree.
    assert (moved / RESULTS_FILE).read_bytes() == (killed / RESULTS_FILE).read_bytes()


def test_launcher_is_accelerate_on_gpus_and_torchrun_on_cpus() -> None:
    from partonomy.eval.sharding import launch_command

    argv = ["eval", "qa.json", "--out", "run"]
    gpu = launch_command(2, argv, gpus=2)
    assert gpu[1:4] == ["-m", "accelerate.commands.launch", "--multi_gpu"]
    assert gpu[gpu.index("--num_processes") + 1] == "2"
    assert gpu[-6:] == ["-m", "partonomy", *argv]
    cpu = launch_command(2, argv, gpus=1)  # fewer GPUs than processes: CPU processes
    assert cpu[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert cpu[-6:] == ["-m", "partonomy", *argv]
