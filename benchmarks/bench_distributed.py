"""Data-parallel training (DDP, FSDP, DeepSpeed ZeRO-2) and sharded evaluation, end to end.

One invocation, on a machine with two GPUs (or on CPUs with gloo at ``--shape tiny``):

1. **Scaling.** The real recipe (``torchrun ... -m partonomy train``) at the chosen shape with
   random weights, bf16 and the stage-1 LoRA setup (``configs/plum_7b_stage1.yaml``'s
   ``trainable``): one process on one GPU, then ``--nproc`` processes for each engine. Tokens/s
   is the median over the timed steps (after ``--warmup``) of the step's LM tokens (all
   processes) over its wall time, from the run's own ``train_log.jsonl``; peak memory per GPU
   is the largest per-process peak of those steps.
2. **Function, per engine.** The same multi-process run writes a checkpoint half-way and at the
   end; the loss must fall (mean of the last two logged steps below the first two); a second
   run resumes the half-way checkpoint in a new directory and must log the same losses for the
   remaining steps; ``partonomy eval --model plum --model-opt checkpoint=RUN`` must load the
   final weights in one process on one GPU.
3. **Sharded evaluation.** ``partonomy eval`` with the DDP run's final weights on ``--questions``
   questions, with 1 and with ``--nproc`` processes (``--num-processes``), into the same run
   directory; questions/s over the prediction time both report, and ``results.json`` must be
   byte-identical.
4. ``--scale-shape 13b`` repeats step 1 (timing only) at another shape while time remains.

Every run has ``deterministic`` and ``log.timing`` on (``--no-deterministic``, ``--no-timing``;
``--strict`` makes it ``deterministic: strict``):
the table then adds each run's median step split (data, forward, backward, optimiser step), which
shows where a second GPU's time goes; ``--allreduce`` first times NCCL all-reduces (64 MiB-1 GiB)
between the GPUs, the bandwidth the engines' gradient traffic gets. ``--baseline-tps`` /
``--scale-baseline-tps`` reuse a one-GPU figure measured earlier (same settings) to save a run.

The random backbones are not saved (``checkpoint.save_base: never``): every process, and the
evaluation, rebuilds them from ``model.seed`` on the GPU. It prints one table and writes
``bench_distributed.json`` (and ``logs.tar.gz``) into ``--out`` (default ``$OUT`` or
``bench_distributed_out``).

Usage::

    python benchmarks/bench_distributed.py --shape tiny                # CPU / gloo, DDP only
    NCCL_NVLS_ENABLE=0 python benchmarks/bench_distributed.py --shape 7b --scale-shape 13b \
        --engines deepspeed_zero2,fsdp --allreduce --no-sharded-eval
    # an FSDP variant for the scaling comparison (any config key can be set the same way)
    NCCL_NVLS_ENABLE=0 python benchmarks/bench_distributed.py --shape 7b --engines fsdp \
        --set distributed.fsdp_backward_prefetch=BACKWARD_PRE --set distributed.fsdp_forward_prefetch=true \
        --baseline-tps 1366 --no-sharded-eval
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from partonomy.config import apply_overrides_to_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_plum_e2e import PLUM_HEADS, SHAPES

ENGINES = ("ddp", "fsdp", "deepspeed_zero2")
TINY_MODEL: dict[str, Any] = {  # the training tests' sizes: sub-second steps on a CPU
    "llava": {"text_hidden": 32, "text_layers": 1, "text_heads": 2, "text_intermediate": 64,
              "vision_hidden": 32, "vision_layers": 1, "vision_heads": 2, "image_size": 32,
              "patch_size": 8},
    "sam": {"image_size": 64, "vision_hidden": 32, "vision_layers": 1, "vision_heads": 2,
            "patch_size": 8, "decoder_hidden": 32},
    "bidir_heads": 2, "bidir_ff": 64, "bidir_dropout": 0.0, "feedback_heads": 2,
}  # fmt: skip
STAGE1_TRAINABLE: dict[str, Any] = {  # configs/plum_7b_stage1.yaml
    "language_model": "lora",
    "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
    "embeddings": "new_rows", "lm_head": True, "sam_prompt_encoder": True,
    "sam_mask_decoder": True, "span_extractor": True, "span_query": True, "feedback_pooler": True,
}  # fmt: skip
NO_MULTICAST = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
                "NVSHMEM_DISABLE_NVLS": "1"}  # fmt: skip


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, out: Path) -> None:
        self.args, self.work, self.out = args, work, out
        self.cuda = torch.cuda.is_available()
        self.start = time.monotonic()
        self.logs = work / "logs"
        self.logs.mkdir()
        self.result: dict[str, Any] = {"args": vars(args), "skipped": [], "failures": []}

    # --------------------------------------------------------------------------- helpers
    def left(self) -> float:
        return self.args.time_budget - (time.monotonic() - self.start)

    def env(self, gpus: str | None) -> dict[str, str]:
        env = {**os.environ, **NO_MULTICAST, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
               "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
        if gpus is not None and self.cuda:
            env["CUDA_VISIBLE_DEVICES"] = gpus
        if self.args.nccl_debug:  # which transport NCCL picked (P2P/NVLink, SHM, ...)
            env |= {"NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": "INIT"}
        return env

    def start_proc(self, name: str, cmd: list[str], gpus: str | None) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed by wait)
        log.write((" ".join(cmd) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(cmd, env=self.env(gpus), stdout=log, stderr=subprocess.STDOUT)
        proc.log = log  # type: ignore[attr-defined]
        proc.name = name  # type: ignore[attr-defined]
        proc.t0 = time.monotonic()  # type: ignore[attr-defined]
        return proc

    def wait(self, proc: subprocess.Popen[bytes]) -> bool:
        try:
            rc = proc.wait(timeout=max(min(self.left(), self.args.run_timeout), 5))
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        proc.log.close()  # type: ignore[attr-defined]
        secs = time.monotonic() - proc.t0  # type: ignore[attr-defined]
        name = proc.name  # type: ignore[attr-defined]
        print(
            f"  [{time.monotonic() - self.start:6.0f}s] {name}: rc {rc} in {secs:.0f}s", flush=True
        )
        if rc != 0:
            tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2500:]
            self.result["failures"].append({"run": name, "rc": rc, "log_tail": tail})
            print(tail, flush=True)
        return rc == 0

    def run(self, name: str, cmd: list[str], gpus: str | None = None) -> bool:
        return self.wait(self.start_proc(name, cmd, gpus))

    def torchrun(self, nproc: int) -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", str(nproc), "-m", "partonomy"]  # fmt: skip

    def gpus(self, nproc: int) -> str:
        return ",".join(str(i) for i in range(nproc))

    # ------------------------------------------------------------------------------ data
    def make_data(self) -> None:
        from partonomy.config import from_dict, to_dict
        from partonomy.data.synth import SynthConfig, generate_world, preset
        from partonomy.io.descriptor import load_descriptor
        from partonomy.io.graph import load_graph
        from partonomy.io.qa_pairs import save_qa_pairs
        from partonomy.qa.generate import generate_qa
        from partonomy.training.quickstart import QUICKSTART_WORLD

        world = self.work / "world"
        synth = from_dict(SynthConfig, {**to_dict(preset("easy")), **QUICKSTART_WORLD})
        desc, graph = generate_world(world, n_images=self.args.images, seed=0, size=64,
                                     config=synth, progress=False)  # fmt: skip
        records = generate_qa(load_descriptor(desc), load_graph(graph), seed=0,
                              types=["identification_with_label"], embedder=None,
                              progress=False).records  # fmt: skip
        self.qa = world / "qa.json"
        save_qa_pairs(records, self.qa)
        self.result["n_train_samples"] = len(records)

    def config(self, shape: str, engine: str, run_dir: Path, steps: int, **extra: Any) -> Path:
        if shape == "tiny":
            model: dict[str, Any] = json.loads(json.dumps(TINY_MODEL))
        else:
            model = json.loads(json.dumps(SHAPES[shape])) | dict(PLUM_HEADS)
            model["llava"]["dtype"] = model["sam"]["dtype"] = "bfloat16"
            model["max_length"] = 512
        cfg: dict[str, Any] = {
            "family": "plum", "run_dir": str(run_dir), "seed": 0, "max_steps": steps,
            "grad_accum": 1, "precision": "auto", "cpu": not self.cuda,
            "gradient_checkpointing": shape != "tiny",
            "model": model, "trainable": STAGE1_TRAINABLE,
            "loss": {"weights": {"lm": 1.0, "bio": 2.0, "seg": 8.0, "bce": 2.0, "kl": 0.0},
                     "seg_loss": "dice"},
            "optim": {"lr": self.args.lr, "betas": [0.9, 0.95], "weight_decay": 0.0,
                      "warmup_steps": 1, "max_grad_norm": 1.0},
            "data": {"kind": "qa_pairs", "qa": {"files": [str(self.qa)]},
                     "micro_batch_size": self.args.micro_batch or (2 if shape == "tiny" else 6)},
            "distributed": {"engine": engine},
            "checkpoint": {"every": max(steps // 2, 1), "keep_last": 0, "save_base": "never"},
            "log": {"every": 1, "progress": False, "trackers": [], "timing": self.args.timing},
            "deterministic": "strict" if self.args.strict else self.args.deterministic,
            **extra,
        }  # fmt: skip
        apply_overrides_to_dict(cfg, list(self.args.set))  # --set: engine knobs to compare
        path = run_dir.parent / f"{run_dir.name}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    # ---------------------------------------------------------------------------- phases
    def train(self, name: str, shape: str, engine: str, nproc: int, steps: int) -> dict[str, Any]:
        run_dir = self.work / name
        cfg = self.config(shape, engine, run_dir, steps)
        ok = self.run(name, [*self.torchrun(nproc), "train", str(cfg)], self.gpus(nproc))
        out: dict[str, Any] = {"ok": ok, "run_dir": str(run_dir), "config": str(cfg)}
        records = _records(run_dir)
        if records:
            out |= speed(records, self.args.warmup)
            out["losses"] = [round(r["total"], 4) for r in records]
            out["engine_log"] = _engine_line(self.logs / f"{name}.log")
            out["nccl_transport"] = _transports(self.logs / f"{name}.log")
        return out

    def functional(self, runs: dict[str, dict[str, Any]], evals: bool = True) -> None:
        """Per engine: resume the half-way checkpoint, then load the final weights into a
        one-GPU eval. The engines' resumes (2 processes each) and the evaluations (one per GPU)
        all run side by side: only their losses and whether they load matter, not their speed."""
        k = max(self.args.steps // 2, 1)
        ok = {e: r for e, r in runs.items() if e in self.args.engines and r["ok"]}
        procs = {}
        for engine, first in ok.items():
            run_dir = Path(first["run_dir"])
            losses = first.get("losses", [])
            first["loss_falls"] = len(losses) >= 4 and sum(losses[-2:]) < sum(losses[:2])
            first["checkpoints"] = sorted(p.name for p in (run_dir / "checkpoints").glob("*"))
            half = run_dir / "checkpoints" / f"step_{k:06d}"
            cmd = [*self.torchrun(self.args.nproc), "train", first["config"],
                   f"run_dir={run_dir}_resumed", f"resume={half}"]  # fmt: skip
            procs[engine] = self.start_proc(
                f"{run_dir.name}_resume", cmd, self.gpus(self.args.nproc)
            )
        evals_started = {}
        for i, (engine, first) in enumerate(ok.items() if evals else []):
            evals_started[engine] = self.start_proc(
                f"eval1_{engine}",
                self.eval_cmd(engine, first),
                str(i % self.args.nproc) if self.cuda else None,
            )
        for engine, proc in procs.items():
            first = ok[engine]
            done = self.wait(proc)
            if not done:
                first["resume_exact"] = False
                continue
            a = [_loss_terms(r) for r in _records(Path(first["run_dir"]))[k:]]
            b = [_loss_terms(r) for r in _records(Path(f"{first['run_dir']}_resumed"))]
            first["resume_exact"] = done and bool(a) and a == b
            first["resume_first_step_exact"] = done and bool(a) and bool(b) and a[0] == b[0]
            first["resume_max_abs_diff"] = _max_diff(a, b) if done and a and b else None
            first["resumed_losses"] = [round(r["total"], 4) for r in b]
        for engine, proc in evals_started.items():
            done = self.wait(proc)
            ok[engine]["loads_into_1gpu_eval"] = (
                done and (self.work / f"eval_{engine}" / "results.json").exists()
            )

    def eval_cmd(self, engine: str, first: dict[str, Any]) -> list[str]:
        """One-process ``partonomy eval`` of a run's final weights (the load check; run beside
        the resumes, one per GPU)."""
        return [sys.executable, "-m", "partonomy", "eval", str(self.qa), "--model", "plum",
                "--model-opt", f"checkpoint={first['run_dir']}",
                "--out", str(self.work / f"eval_{engine}"),
                "--limit", "8", "--batch-size", "8", "--no-progress"]  # fmt: skip

    def allreduce(self) -> dict[str, Any]:
        """NCCL all-reduce bandwidth between the GPUs (what the engines' gradient traffic gets)."""
        name = "allreduce"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               str(self.args.nproc), str(Path(__file__).resolve()), "--allreduce-worker"]  # fmt: skip
        ok = self.run(name, cmd, self.gpus(self.args.nproc))
        text = (self.logs / f"{name}.log").read_text(errors="replace")
        rows = [json.loads(line[len("ALLREDUCE ") :]) for line in text.splitlines()
                if line.startswith("ALLREDUCE ")]  # fmt: skip
        return {"ok": ok, "rows": rows}

    def sharded_eval(self, checkpoint: str) -> dict[str, Any]:
        run = self.work / "eval_sharded"
        n = self.args.questions
        base = [str(self.qa), "--model", "plum", "--model-opt", f"checkpoint={checkpoint}",
                "--out", str(run), "--limit", str(n), "--batch-size", str(self.args.eval_batch),
                "--no-progress", "--overwrite"]  # fmt: skip
        res: dict[str, Any] = {"questions": n, "batch": self.args.eval_batch}
        one = self.run("eval_1proc", [sys.executable, "-m", "partonomy", "eval", *base], "0")
        single = (run / "results.json").read_bytes() if one else None
        res["qps_1"] = _eval_qps(self.logs / "eval_1proc.log")
        two = self.run("eval_2proc", [sys.executable, "-m", "partonomy", "eval", *base,
                                      "--num-processes", str(self.args.nproc)],
                       self.gpus(self.args.nproc))  # fmt: skip
        res[f"qps_{self.args.nproc}"] = _eval_qps(self.logs / "eval_2proc.log")
        res["identical_results"] = bool(
            one and two and single == (run / "results.json").read_bytes()
        )
        if res["qps_1"] and res[f"qps_{self.args.nproc}"]:
            res["speedup"] = round(res[f"qps_{self.args.nproc}"] / res["qps_1"], 2)
        return res

    def scaling(self, shape: str, engines: list[str], steps: int, tag: str) -> dict[str, Any]:
        """One-GPU baseline, then each engine on nproc GPUs (timing only)."""
        a = self.args
        given = a.baseline_tps if tag == a.shape else a.scale_baseline_tps
        if given:
            out: dict[str, Any] = {"1gpu": {"ok": True, "tokens_per_s": given,
                                            "engine_log": "engine single (given)"}}  # fmt: skip
        else:
            out = {"1gpu": self.train(f"{tag}_1gpu", shape, "ddp", 1, steps)}
        for engine in engines:
            if self.left() < self.args.min_phase:
                self.result["skipped"].append(f"{tag} {engine}: out of time")
                continue
            out[engine] = self.train(f"{tag}_{engine}", shape, engine, self.args.nproc, steps)
        base = out["1gpu"].get("tokens_per_s")
        for engine in engines:
            tps = out.get(engine, {}).get("tokens_per_s")
            if base and tps:
                out[engine]["speedup_vs_1gpu"] = round(tps / base, 2)
        return out

    def main(self) -> None:
        a = self.args
        if a.allreduce and self.cuda:
            self.result["allreduce"] = self.allreduce()
        self.make_data()
        print(f"[{time.monotonic() - self.start:.0f}s] data: {self.result['n_train_samples']} "
              f"samples; scaling and function at {a.shape}", flush=True)  # fmt: skip
        runs = self.scaling(a.shape, a.engines, a.steps, a.shape)
        self.result["main"] = runs
        trained = [r for e, r in runs.items() if e != "1gpu" and r.get("ok")]
        if not trained and self.left() > a.min_phase:  # a checkpoint for the sharded eval
            runs["ddp_for_eval"] = self.train("ddp_for_eval", a.shape, "ddp", a.nproc, 2)
            trained = [runs["ddp_for_eval"]] if runs["ddp_for_eval"]["ok"] else []
        if a.no_sharded_eval:
            self.result["skipped"].append("sharded eval: not asked for (--no-sharded-eval)")
        elif a.eval_first and trained and self.left() > a.min_phase:
            self.result["eval"] = self.sharded_eval(trained[0]["run_dir"])
            trained[0]["loads_into_1gpu_eval"] = self.result["eval"].get("qps_1") is not None
        self.functional(runs, evals=not a.eval_first)
        if a.no_sharded_eval:
            pass
        elif not a.eval_first and trained and self.left() > a.min_phase:
            self.result["eval"] = self.sharded_eval(trained[0]["run_dir"])
        elif "eval" not in self.result:
            self.result["skipped"].append("sharded eval: no checkpoint or out of time")
        if a.scale_shape and self.left() > 3 * a.min_phase:
            tag = a.scale_shape
            steps = a.scale_steps or a.steps
            self.result["scale"] = self.scaling(a.scale_shape, a.scale_engines, steps, tag)
        elif a.scale_shape:
            self.result["skipped"].append(f"scaling at {a.scale_shape}: out of time")
        self.result["seconds"] = round(time.monotonic() - self.start, 1)


# -------------------------------------------------------------------------------- parsing
def _records(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "train_log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _loss_terms(record: dict[str, Any]) -> dict[str, Any]:
    skip = {"time", "peak_mem_gib"}
    return {k: v for k, v in record.items() if k not in skip and not k.startswith("t_")}


def _max_diff(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float | None:
    if len(a) != len(b):
        return None
    diffs = [abs(x[k] - y[k]) for x, y in zip(a, b) for k in x
             if isinstance(x[k], float) and isinstance(y.get(k), float)]  # fmt: skip
    return max(diffs, default=0.0)


def speed(records: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """Median tokens/s over the steps after ``warmup`` (per-step wall time from the log's
    cumulative ``time``), and the largest per-process peak memory of those steps."""
    timed = [(r, r["time"] - p["time"]) for p, r in itertools.pairwise(records)][warmup - 1 :]
    if not timed:
        return {}
    rates = [r["tokens"] / dt for r, dt in timed if dt > 0]
    peaks = [r.get("peak_mem_gib") for r, _ in timed if r.get("peak_mem_gib")]
    out: dict[str, Any] = {
        "tokens_per_s": round(statistics.median(rates), 1),
        "step_s": round(statistics.median(dt for _, dt in timed), 3),
        "tokens_per_step": int(statistics.median(r["tokens"] for r, _ in timed)),
        "timed_steps": len(timed),
    }
    if peaks:
        out["peak_mem_gib"] = [max(col) for col in zip(*peaks)]
    phases = sorted({k for r, _ in timed for k in r if k.startswith("t_")})
    if phases:  # log.timing: the median split of a step (main process)
        out["split_s"] = {k[2:]: round(statistics.median(r.get(k, 0.0) for r, _ in timed), 3)
                          for k in phases}  # fmt: skip
    return out


def _engine_line(log: Path) -> str | None:
    for line in log.read_text(errors="replace").splitlines():
        if "INFO partonomy.training.recipe: engine" in line:
            return line.split("recipe: ", 1)[1]
    return None


def _transports(log: Path) -> list[str]:
    """NCCL's ``... via P2P/CUMEM`` style channel lines, reduced to their distinct transports."""
    found = set()
    for line in log.read_text(errors="replace").splitlines():
        if "NCCL INFO Channel" in line and " via " in line:
            found.add(line.split(" via ", 1)[1].strip())
    return sorted(found)


def _eval_qps(log: Path) -> float | None:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if "questions/s" in line:
            return float(line.rsplit(" questions/s", 1)[0].rsplit(" ", 1)[1])
    return None


# -------------------------------------------------------------------------------- report
def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "torch": torch.__version__}
    for pkg in ("transformers", "accelerate", "peft", "deepspeed"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    if torch.cuda.is_available():
        out["gpu"] = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
        out["nccl"] = ".".join(str(v) for v in torch.cuda.nccl.version())
        out["cuda"] = str(torch.version.cuda)
    else:
        out["gpu"] = "none (CPU, gloo)"
    out["cpus"] = str(os.cpu_count())
    return out


def table(result: dict[str, Any], nproc: int) -> str:
    lines = []
    for key in ("main", "scale"):
        runs = result.get(key)
        if not runs:
            continue
        shape = result["args"]["shape"] if key == "main" else result["args"]["scale_shape"]
        lines.append(f"training, shape {shape} (median tokens/s over timed steps):")
        lines.append(f"  {'run':<22}{'engine':<12}{'tok/s':>10}{'x 1 GPU':>9}{'step s':>8}"
                     f"{'tok/step':>9}  {'peak GiB per GPU':<18}{'loss falls':<11}"
                     f"{'resume exact':<17}{'1-GPU eval'}")  # fmt: skip
        for name, r in runs.items():
            engine = (r.get("engine_log") or "").split(",")[0].replace("engine ", "") or "-"
            peak = "/".join(f"{p:.1f}" for p in r.get("peak_mem_gib", [])) or "-"
            lines.append(
                f"  {name + ' x' + str(nproc) if name != '1gpu' else '1 GPU':<22}{engine:<12}"
                f"{r.get('tokens_per_s', float('nan')):>10.0f}"
                f"{r.get('speedup_vs_1gpu', float('nan')):>9.2f}"
                f"{r.get('step_s', float('nan')):>8.3f}{r.get('tokens_per_step', 0):>9}  "
                f"{peak:<18}{_yn(r.get('loss_falls')):<11}{_resume(r):<13}"
                f"{_yn(r.get('loads_into_1gpu_eval'))}"
            )
    for key in ("main", "scale"):
        for name, r in (result.get(key) or {}).items():
            if r.get("split_s"):
                split = ", ".join(f"{k} {v:.3f}" for k, v in r["split_s"].items())
                lines.append(f"  step split {key}/{name}: {split} s")
    for row in (result.get("allreduce") or {}).get("rows", []):
        lines.append(
            f"NCCL all_reduce {row['mib']} MiB {row['dtype']}: {row['ms']:.2f} ms, "
            f"bus bandwidth {row['busbw_gbs']:.1f} GB/s"
        )
    transports = sorted({t for runs in (result.get("main") or {}, result.get("scale") or {})
                         for r in runs.values() for t in r.get("nccl_transport", [])})  # fmt: skip
    if transports:
        lines.append(f"NCCL transports: {', '.join(transports)}")
    ev = result.get("eval")
    if ev:
        lines.append(
            f"sharded eval ({ev['questions']} questions, batch {ev['batch']}): "
            f"1 process {ev.get('qps_1')} q/s, {nproc} processes {ev.get(f'qps_{nproc}')} q/s "
            f"(x{ev.get('speedup')}); results.json identical: {ev['identical_results']}"
        )
    for item in result["skipped"]:
        lines.append(f"skipped: {item}")
    for fail in result["failures"]:
        lines.append(f"FAILED: {fail['run']} (rc {fail['rc']})")
    return "\n".join(lines)


def _yn(value: Any) -> str:
    return "-" if value is None else ("yes" if value else "NO")


def _resume(r: dict[str, Any]) -> str:
    if r.get("resume_exact") is None:
        return "-"
    if r["resume_exact"]:
        return "yes"
    diff = r.get("resume_max_abs_diff")
    if diff is None:
        return "NO (failed)"
    return f"1st {_yn(r.get('resume_first_step_exact'))}, {diff:.0e}"


def allreduce_worker() -> None:
    """Under torchrun: time NCCL all_reduce of 64 MiB .. 1 GiB buffers; rank 0 prints rows."""
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl")
    for dtype in (torch.float32, torch.bfloat16):
        for mib in (64, 256, 1024):
            x = torch.ones(mib * 2**20 // torch.finfo(dtype).bits * 8, dtype=dtype, device="cuda")
            for _ in range(3):
                dist.all_reduce(x)
            torch.cuda.synchronize()
            reps = 10
            t0 = time.perf_counter()
            for _ in range(reps):
                dist.all_reduce(x)
            torch.cuda.synchronize()
            ms = (time.perf_counter() - t0) / reps * 1e3
            busbw = mib * 2**20 * 2 * (world - 1) / world / (ms / 1e3) / 1e9
            if rank == 0:
                row = {"mib": mib, "dtype": str(dtype).split(".")[-1], "ms": round(ms, 3),
                       "busbw_gbs": round(busbw, 1)}  # fmt: skip
                print("ALLREDUCE " + json.dumps(row), flush=True)
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["tiny", "7b", "13b"], default="tiny")
    parser.add_argument(
        "--engines", default=None, help="comma list (default: all on GPUs, ddp on CPU)"
    )
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8, help="optimiser steps per training run")
    parser.add_argument("--warmup", type=int, default=3, help="steps not timed")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--micro-batch", type=int, default=None)
    parser.add_argument("--images", type=int, default=48, help="Synth images (one question each)")
    parser.add_argument("--questions", type=int, default=96, help="sharded-eval questions")
    parser.add_argument("--eval-batch", type=int, default=8)
    parser.add_argument("--scale-shape", choices=["7b", "13b"], default=None)
    parser.add_argument("--scale-engines", default="fsdp,deepspeed_zero2")
    parser.add_argument("--scale-steps", type=int, default=None, help="default: --steps")
    parser.add_argument("--scale-baseline-tps", type=float, default=None,
                        help="as --baseline-tps, at --scale-shape")  # fmt: skip
    parser.add_argument("--time-budget", type=float, default=540.0, help="seconds for everything")
    parser.add_argument("--min-phase", type=float, default=45.0)
    parser.add_argument("--nccl-debug", action="store_true", help="log NCCL's transports")
    parser.add_argument(
        "--baseline-tps",
        type=float,
        default=None,
        help="one-GPU tokens/s measured earlier at --shape (skips that run)",
    )
    parser.add_argument(
        "--eval-first",
        action="store_true",
        help="sharded eval (its 1-process run is the 1-GPU load check) before the resume checks",
    )
    parser.add_argument("--run-timeout", type=float, default=180.0, help="seconds per process")
    parser.add_argument("--no-sharded-eval", action="store_true", help="skip the sharded eval")
    parser.add_argument("--allreduce", action="store_true", help="measure NCCL all_reduce first")
    parser.add_argument("--allreduce-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--timing", action=argparse.BooleanOptionalAction, default=True,
        help="log.timing in the runs (step split; synchronises at each phase)",
    )  # fmt: skip
    parser.add_argument(
        "--deterministic", action=argparse.BooleanOptionalAction, default=True,
        help="the runs' deterministic setting (exact resumes on GPUs need it)",
    )  # fmt: skip
    parser.add_argument(
        "--strict", action="store_true",
        help="deterministic: strict (deterministic attention backward too: bit-exact resumes)",
    )  # fmt: skip
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override in every training run's config (dotted key, YAML value), e.g. "
        "distributed.fsdp_sharding=SHARD_GRAD_OP or distributed.fsdp_forward_prefetch=true",
    )  # fmt: skip
    parser.add_argument("--out", default=os.environ.get("OUT") or "bench_distributed_out")
    args = parser.parse_args()
    if args.allreduce_worker:
        allreduce_worker()
        return
    cuda = torch.cuda.is_available()
    args.engines = (args.engines or (",".join(ENGINES) if cuda else "ddp")).split(",")
    args.scale_engines = args.scale_engines.split(",")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(args, Path(tmp), out)
        try:
            bench.main()
        finally:
            bench.result["versions"] = versions()
            bench.result["load"] = os.getloadavg()
            text = table(bench.result, args.nproc)
            header = " ".join(f"{k} {v}" for k, v in bench.result["versions"].items())
            print("\n" + header + "\n" + text, flush=True)
            (out / "bench_distributed.json").write_text(json.dumps(bench.result, indent=1))
            (out / "summary.txt").write_text(header + "\n" + text + "\n")
            with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
                tar.add(bench.logs, arcname="logs")


if __name__ == "__main__":
    main()
