"""The distillation runner end to end on the real teacher data: convergence, determinism, resume,
Ctrl-C, two processes (gloo) against one, the CLI contract, clear errors.

The data are the cpu-demo preset's: the shipped Qwen2.5-Coder answers and the teacher cache
(built once per machine from the real teacher, ~1-2 min, then read from the cache).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from uld_explorer.distill import runs
from uld_explorer.distill.config import preset
from uld_explorer.distill.errors import DistillError
from uld_explorer.distill.loop import train
from uld_explorer.distill.prepare import prepare
from uld_explorer.distill.rundir import RunDir

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TIMING_KEYS = {"tokens_per_s", "step_s", "elapsed_s", "eval_s"}


@pytest.fixture(scope="session")
def demo_prep(default_models):
    return prepare(preset("cpu-demo"), progress=False)


def short(**kw):
    return preset("cpu-demo", **{"max_steps": 8, "eval_every": 4, "checkpoint_every": 4, **kw})


def numbers(run_dir: Path) -> list[dict]:
    """The metrics lines without the wall-clock fields."""
    return [{k: v for k, v in d.items() if k not in TIMING_KEYS} for d in runs.read_metrics(run_dir)]


def cli(*args: str, env: dict | None = None, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uld_explorer.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, **kw)


# ------------------------------------------------------------------ convergence and determinism


def test_cpu_demo_converges(demo_prep, tmp_path):
    """The preset as shipped (CE + ULD, 200 steps, ~2 min here): on the answers it trains on, CE
    and ULD fall to at most half of their start (the preset's promise; seed 0 measured 38.9 % and
    34.4 %, seeds 0-4 in benchmarks/bench_cpu_demo_seeds.py), the held-out ULD falls too, and the
    teacher cache's bound stays small at every step."""
    cfg = preset("cpu-demo", loss="ce+uld")
    train(cfg, tmp_path / "run", prepared=demo_prep, progress=False)
    m = runs.read_metrics(tmp_path / "run")
    first, last = m[0], m[-1]
    assert [d["step"] for d in m] == list(range(cfg.max_steps + 1))
    assert first["seen_ce"] > 10.0  # uniform over 49,152 tokens: ln 49152 = 10.8
    assert last["seen_ce"] <= 0.5 * first["seen_ce"], (first["seen_ce"], last["seen_ce"])
    assert last["seen_uld"] <= 0.5 * first["seen_uld"], (first["seen_uld"], last["seen_uld"])
    assert last["eval_uld"] <= 0.75 * first["eval_uld"]
    assert all(d["uld_bound"] <= 0.05 for d in m)  # mean over a batch's pairs


def test_same_seed_same_run_other_seed_other_run(demo_prep, tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(short(max_steps=5, seed=seed), tmp_path / name, prepared=demo_prep, progress=False)
    assert numbers(tmp_path / "a") == numbers(tmp_path / "b")
    assert numbers(tmp_path / "a")[1]["loss"] != numbers(tmp_path / "c")[1]["loss"]


@pytest.mark.parametrize("changes", [dict(loss="hybrid"), dict(loss="ce+uld", alignment="byte-offset", merge="bayesian"),
                                     dict(loss="uld", student_temperature=2.0)])
def test_other_losses_and_alignments_train(demo_prep, tmp_path, changes):
    """The hybrid, byte-offset groups (merged rows) and temperatures run end to end: finite losses,
    a lower training loss after a step on the same batch's data, the run's own eval loss logged."""
    cfg = short(max_steps=2, eval_every=100, **changes)
    last = train(cfg, tmp_path / "run", prepared=demo_prep, progress=False)
    m = runs.read_metrics(tmp_path / "run")
    assert last["state"] == "finished" and all(math.isfinite(d["loss"]) for d in m)
    assert math.isfinite(m[0]["eval_loss"]) and math.isfinite(m[-1]["eval_loss"])
    assert m[-1]["eval_loss"] < m[0]["eval_loss"]


@pytest.fixture(scope="session")
def kl_prep(default_models):
    """The same-tokenizer pair: the real SmolLM2-135M-Instruct teaching the small student that uses
    its tokenizer (its answers shipped; its teacher cache built once per machine, then read)."""
    return prepare(preset("cpu-demo", teacher="SmolLM2-135M-Instruct", loss="kl"), progress=False)


def test_kl_with_the_same_tokenizer_teacher_converges(kl_prep, tmp_path):
    """``--teacher SmolLM2-135M-Instruct --loss kl`` end to end: one vocabulary on both sides, every
    answer token paired with the same token; in a short run the KL on the answers it trains on
    falls by at least 40 % (9.12 -> 4.84 nats measured, seed 0), the held-out KL falls, and the
    student agrees with the teacher's top-1 more often."""
    assert kl_prep.teacher_bytes == kl_prep.student_bytes and kl_prep.cache.vocab_size == kl_prep.V_s == 49152
    assert all(len(e.teacher.ids) == len(e.student.ids) for e in kl_prep.train)
    cfg = preset("cpu-demo", teacher="SmolLM2-135M-Instruct", loss="kl", max_steps=40, eval_every=20)
    train(cfg, tmp_path / "run", prepared=kl_prep, progress=False)
    m = runs.read_metrics(tmp_path / "run")
    first, last = m[0], m[-1]
    assert first["seen_kl"] > 5.0  # a uniform student against a confident teacher
    assert last["seen_kl"] <= 0.6 * first["seen_kl"], (first["seen_kl"], last["seen_kl"])
    assert last["eval_kl"] < 0.75 * first["eval_kl"]
    assert last["eval_top1"] > first["eval_top1"]


# ------------------------------------------------------------------ resume and Ctrl-C


def test_resume_continues_exactly(demo_prep, tmp_path):
    cfg = short(max_steps=10, eval_every=3, checkpoint_every=100)
    train(cfg, tmp_path / "whole", prepared=demo_prep, progress=False)

    def interrupt(line):  # Ctrl-C while step 4 runs: the loop saves a checkpoint and stops
        if line["step"] == 4:
            os.kill(os.getpid(), signal.SIGINT)

    first = train(cfg, tmp_path / "split", prepared=demo_prep, progress=False, on_step=interrupt)
    assert first["state"] == "stopped" and RunDir(tmp_path / "split").status()["state"] == "stopped"
    assert RunDir(tmp_path / "split").latest_checkpoint().name == "step-000005"
    assert [d["step"] for d in runs.read_metrics(tmp_path / "split")] == [0, 1, 2, 3, 4]
    again = train(cfg, tmp_path / "split", resume=True, prepared=demo_prep, progress=False)
    assert again["state"] == "finished"
    assert numbers(tmp_path / "split") == numbers(tmp_path / "whole")
    assert [p["step"] for p in runs.read_probe(tmp_path / "split")] == [p["step"] for p in runs.read_probe(tmp_path / "whole")]


def test_ctrl_c_on_the_cli_leaves_a_loadable_checkpoint(demo_prep, tmp_path):
    from uld_explorer.zoo import load

    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "uld_explorer.cli", "distill", "--preset", "cpu-demo",
                             "--max-steps", "500", "--eval-every", "1000", "--checkpoint-every", "1000",
                             "--run-dir", str(run), "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.time() + 300
        while len(runs.read_metrics(run)) < 3:
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "the run did not start"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in out + err
    st = RunDir(run).status()
    assert st["state"] == "stopped"
    ckpt = RunDir(run).latest_checkpoint()
    steps = json.loads((ckpt / "trainer.json").read_text())["step"]
    assert steps == runs.read_metrics(run)[-1]["step"] + 1  # the student after the last logged step
    loaded = load(ckpt)  # safetensors + config + tokenizer: a model folder transformers loads
    ids = torch.tensor([loaded.tokenizer("The capital of France is")["input_ids"]])
    assert torch.isfinite(loaded.model(input_ids=ids).logits).all()
    assert not list(run.glob("checkpoints/.*.tmp"))


def test_a_truncated_checkpoint_falls_back_to_the_previous_complete_one(demo_prep, tmp_path, capsys):
    """The newest checkpoint's model file is truncated after the run stopped: the resume verifies
    it against its manifest, sets it aside, continues from the previous complete one and says so;
    the metrics from there on are an uninterrupted run's."""
    cfg = short(max_steps=10, eval_every=3, checkpoint_every=3)
    train(cfg, tmp_path / "whole", prepared=demo_prep, progress=False)

    def interrupt(line):  # Ctrl-C while step 6 runs: checkpoints 6 and 7 (the stop's) are kept
        if line["step"] == 6:
            os.kill(os.getpid(), signal.SIGINT)

    split = RunDir(tmp_path / "split")
    assert train(cfg, split, prepared=demo_prep, progress=False, on_step=interrupt)["state"] == "stopped"
    assert [c.name for c in split.checkpoints()] == ["step-000006", "step-000007"]
    model = split.path / "checkpoints" / "step-000007" / "model.safetensors"
    with open(model, "r+b") as f:
        f.truncate(model.stat().st_size // 2)
    capsys.readouterr()
    again = train(cfg, split, resume=True, prepared=demo_prep, progress=False)
    assert again["state"] == "finished" and again["resumed_from"].endswith("step-000006")
    assert again["note"].startswith("resuming from step-000006 (step 6): step-000007 is damaged (model.safetensors has ")
    assert "truncated?" in again["note"] and "set aside as checkpoints/damaged-step-000007" in again["note"]
    assert f"note: {again['note']}" in capsys.readouterr().err
    assert (split.path / "checkpoints" / "damaged-step-000007").is_dir()
    assert numbers(split.path) == numbers(tmp_path / "whole")
    assert [p["step"] for p in runs.read_probe(split.path)] == [p["step"] for p in runs.read_probe(tmp_path / "whole")]


# ------------------------------------------------------------------ one trainer per run, its identity, no guesses


def test_two_trainers_on_one_run_the_second_is_refused_saying_who(demo_prep, tmp_path):
    """A real `distill` trains; a second one on its folder (a resume, a new run) is refused with
    one line naming the first (pid, command, since when); metrics.jsonl stays one run's, steps
    strictly increasing; once the first has stopped, the resume goes ahead."""
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "uld_explorer.cli", "distill", "--preset", "cpu-demo",
                              "--max-steps", "500", "--eval-every", "1000", "--checkpoint-every", "1000",
                              "--run-dir", str(run), "--no-progress"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while len(runs.read_metrics(run)) < 2:
            assert first.poll() is None, first.communicate()
            assert time.time() < deadline, "the run did not start"
            time.sleep(0.5)
        for args in (["--resume", "--max-steps", "600"], ["--max-steps", "3"]):
            second = cli("distill", *args, "--run-dir", str(run), "--no-progress")
            assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr[-2000:]
            said = second.stderr.strip().splitlines()[-1]
            assert said.startswith(f"error: {run} is in use: another trainer holds its lock (pid {first.pid} (`"), said
            assert "uld_explorer.cli distill" in said and ", since 20" in said and "wait for it to finish" in said
        assert first.poll() is None and RunDir(run).status()["state"] == "running"
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130
    steps = [d["step"] for d in runs.read_metrics(run)]
    assert steps == list(range(len(steps)))  # one writer: strictly increasing, no step twice
    more = cli("distill", "--resume", "--max-steps", str(steps[-1] + 2), "--run-dir", str(run), "--no-progress")
    assert more.returncode == 0, more.stderr[-2000:]
    assert [d["step"] for d in runs.read_metrics(run)] == list(range(steps[-1] + 3))


def test_foreign_files_need_force_then_a_stale_run_is_never_signalled_and_resumes(demo_prep, runs_dir):
    """A folder holding a user's metrics.jsonl and notes.txt: refused (named), --force trains there
    (its metrics.jsonl replaced by the run's, notes.txt kept). Then the run's status says running
    with a pid a stranger holds now: stale, Stop sends nothing, and the page's Resume goes ahead."""
    from uld_explorer.distill import launch

    d = runs_dir / "mine"
    d.mkdir()
    (d / "metrics.jsonl").write_text('{"step": 0, "loss": 123.0}\n')
    (d / "notes.txt").write_text("my notes")
    args = ["distill", "--preset", "cpu-demo", "--max-steps", "2", "--eval-every", "1000", "--run-dir", str(d),
            "--no-progress"]
    refused = cli(*args)
    assert refused.returncode == 2 and "(metrics.jsonl, notes.txt)" in refused.stderr and "--force" in refused.stderr
    assert (d / "metrics.jsonl").read_text() == '{"step": 0, "loss": 123.0}\n'
    forced = cli(*args, "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert [m["step"] for m in runs.read_metrics(d)] == [0, 1, 2] and runs.read_metrics(d)[0]["loss"] != 123.0
    assert (d / "notes.txt").read_text() == "my notes"

    stranger = subprocess.Popen(["sleep", "60"])
    try:
        status = json.loads((d / "status.json").read_text())  # the trainer's command and start time, not its pid
        (d / "status.json").write_text(json.dumps({**status, "state": "running", "pid": stranger.pid}))
        info = runs.run_info(d)
        assert info.state == "stale" and not info.stoppable
        assert launch.stop_run(d) is False
        listed = cli("runs", "list", "--runs-dir", str(runs_dir))
        assert "stale" in listed.stdout and "mine: stale: its trainer is gone" in listed.stdout
        proc = launch.resume_run(d, max_steps=3)  # stale: not busy; the lock is free
        assert proc.wait(timeout=300) == 0, RunDir(d).log_tail(20)
        assert stranger.poll() is None  # never signalled
    finally:
        stranger.kill()
        stranger.wait()
    assert runs.run_info(d).state == "finished" and [m["step"] for m in runs.read_metrics(d)] == [0, 1, 2, 3]


# ------------------------------------------------------------------ several processes


ACCELERATE_CPU = Path(__file__).resolve().parents[1] / "docs" / "accelerate" / "cpu-2-processes.yaml"


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_processes_equal_one(demo_prep, tmp_path, launcher):
    """DDP over 2 CPU processes (gloo) on the same global batch, started by torchrun or by
    `accelerate launch --config_file docs/accelerate/cpu-2-processes.yaml`: the same loss, parts
    and gradient norm every step, and the same weights after the steps; only rank 0 prints."""
    args = ["--preset", "cpu-demo", "--max-steps", "3", "--eval-every", "1000", "--checkpoint-every", "1000",
            "--batch-size", "8", "--no-progress"]
    env = {"OMP_NUM_THREADS": "1"}
    one = cli("distill", *args, "--run-dir", str(tmp_path / "one"), env=env)
    assert one.returncode == 0, one.stderr
    port = str(29500 + os.getpid() % 1000 + (7 if launcher == "accelerate" else 0))
    start = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port]
             if launcher == "torchrun" else
             [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CPU),
              "--main_process_port", port])
    two = subprocess.run([*start, "-m", "uld_explorer.cli", "distill", *args, "--run-dir", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    assert two.returncode == 0, two.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "status.json").read_text())["world"] == 2
    assert two.stdout.count("finished at step 3") == 1 and two.stderr.count("run directory:") == 1
    a, b = runs.read_metrics(tmp_path / "one"), runs.read_metrics(tmp_path / "two")
    assert [d["step"] for d in a] == [d["step"] for d in b] == [0, 1, 2, 3]
    for x, y in zip(a, b):
        assert x["tokens"] == y["tokens"]
        for k in ("loss", "ce", "uld", "grad_norm"):
            if x.get(k) is not None:
                assert y[k] == pytest.approx(x[k], rel=1e-5, abs=1e-7), (k, x["step"])
    from safetensors.torch import load_file

    wa = load_file(str(RunDir(tmp_path / "one").latest_checkpoint() / "model.safetensors"))
    wb = load_file(str(RunDir(tmp_path / "two").latest_checkpoint() / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:  # float32 sums in another order; Adam scales an entry's update by 1/sqrt(v): tiny
        # gradients differing in their last bits move by ~1e-6 (an update is lr = 5e-3 per step)
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-3, atol=1e-5)


def test_fsdp_over_two_processes_builds_the_teacher_cache_in_shards_and_equals_one_process(default_models, tmp_path):
    """FSDP2 over 2 CPU processes (gloo), started by `accelerate launch --config_file
    docs/accelerate/fsdp-2-processes.yaml` (no --fsdp flag: the config asks for it), on data whose
    teacher cache does not exist yet (its own top-k): the two processes build it in shards and it
    equals the one-process build of the real teacher. 2 steps, then a resume to 4 under torchrun
    (FSDP again, from the run's config; the checkpoint gathered from the shards): every step's loss
    and the final weights equal one process's uninterrupted 4 steps."""
    import uld_explorer as ux
    from uld_explorer.distill.data import answers_fingerprint, build_examples, load_answers, load_prompts
    from uld_explorer.distill.teacher_cache import TENSORS, build_teacher_cache, cache_fingerprint, teacher_cache_path

    cfg = preset("cpu-demo", prompts=40, eval_prompts=8, top_k=23)
    teacher = ux.load_model(cfg.teacher, progress=False)
    examples = build_examples(load_prompts(cfg.prompts), load_answers(cfg.teacher, cfg.max_new_tokens, progress=False),
                              teacher.tokenizer, ux.load_tokenizer(cfg.student, progress=False))
    fp = cache_fingerprint(answers_fingerprint(cfg.teacher, cfg.max_new_tokens), cfg.teacher, 1.0, 23, examples,
                           cfg.probe_prompt)
    path = teacher_cache_path(fp)
    path.unlink(missing_ok=True)
    args = ["--preset", "cpu-demo", "--prompts", "40", "--eval-prompts", "8", "--top-k", "23", "--eval-every", "2",
            "--checkpoint-every", "2", "--batch-size", "8", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = str(29500 + os.getpid() % 1000 + 13)
    start = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port, "-m",
             "uld_explorer.cli", "distill"]
    by_accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                     str(ROOT / "docs" / "accelerate" / "fsdp-2-processes.yaml"), "--main_process_port", port, "-m",
                     "uld_explorer.cli", "distill"]
    try:
        two = subprocess.run([*by_accelerate, *args, "--max-steps", "2", "--run-dir", str(tmp_path / "two")],
                             capture_output=True, text=True, timeout=600, env=env)
        assert two.returncode == 0, two.stderr[-3000:]
        assert json.loads((tmp_path / "two" / "config.json").read_text())["data"]["teacher_cache"] == fp
        assert path.is_file() and not list(path.parent.glob(f"{fp}.part-*")), "the parts are joined, then removed"
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as each process ran
        try:
            whole = build_teacher_cache(teacher, examples, 1.0, 23, cfg.probe_prompt, progress=False)
        finally:
            torch.set_num_threads(threads)
        from uld_explorer.distill.teacher_cache import read_teacher_cache

        joined, why = read_teacher_cache(path, fp)
        assert why is None
        for name in TENSORS:
            assert torch.equal(getattr(joined, name), getattr(whole, name)), name
        resumed = subprocess.run([*start, "--resume", "--max-steps", "4", "--no-progress", "--run-dir",
                                  str(tmp_path / "two")], capture_output=True, text=True, timeout=600, env=env)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        one = cli("distill", *args, "--max-steps", "4", "--run-dir", str(tmp_path / "one"), env={"OMP_NUM_THREADS": "1"})
        assert one.returncode == 0, one.stderr
    finally:
        path.unlink(missing_ok=True)
    status = json.loads((tmp_path / "two" / "status.json").read_text())
    assert status["world"] == 2 and status["state"] == "finished"
    assert json.loads((tmp_path / "two" / "config.json").read_text())["config"]["fsdp"] is True
    a, b = runs.read_metrics(tmp_path / "one"), runs.read_metrics(tmp_path / "two")
    assert [d["step"] for d in a] == [d["step"] for d in b] == [0, 1, 2, 3, 4]
    for x, y in zip(a, b):
        for k in ("loss", "ce", "uld", "eval_ce", "eval_uld"):
            if x.get(k) is not None:
                assert y[k] == pytest.approx(x[k], rel=1e-5), (k, x["step"])
        if x["grad_norm"] is not None:  # the sharded norm sums its squares in another order: ~1e-5 at step 0,
            assert y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-3)  # then Adam's 1/sqrt(v) grows it
    from safetensors.torch import load_file

    wa = load_file(str(RunDir(tmp_path / "one").latest_checkpoint() / "model.safetensors"))
    wb = load_file(str(RunDir(tmp_path / "two").latest_checkpoint() / "model.safetensors"))
    assert wa.keys() == wb.keys()  # the one-process format: tied weights once
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------------ the CLI contract and errors


def test_cli_distill_and_runs_list(demo_prep, tmp_path):
    r = cli("distill", "--preset", "cpu-demo", "--loss", "uld", "--max-steps", "2", "--seed", "3", "--run-dir",
            str(tmp_path / "runs" / "u"), "--eval-every", "1", "--json", "--no-progress")
    assert r.returncode == 0, r.stderr
    last = json.loads(r.stdout)
    assert last["state"] == "finished" and last["step"] == 2 and "eval_top1" in last
    cfg = json.loads((tmp_path / "runs" / "u" / "config.json").read_text())
    assert cfg["preset"] == "cpu-demo" and cfg["config"]["loss"] == "uld" and cfg["config"]["seed"] == 3
    assert (tmp_path / "runs" / "u" / "checkpoints" / "step-000002" / "model.safetensors").is_file()
    lines = (tmp_path / "runs" / "u" / "metrics.jsonl").read_text().splitlines()
    for line in lines:
        d = json.loads(line)
        assert {"step", "loss", "uld", "tokens_per_s"} <= set(d)
    listed = cli("runs", "list", "--runs-dir", str(tmp_path / "runs"))
    assert listed.returncode == 0 and "u " in listed.stdout and "finished" in listed.stdout
    as_json = json.loads(cli("runs", "list", "--runs-dir", str(tmp_path / "runs"), "--json").stdout)
    assert as_json[0]["name"] == "u" and as_json[0]["step"] == 2 and as_json[0]["loss"] == "uld"
    # its config.json repeats it: the same config and preset, the same numbers
    cfg_file = str(tmp_path / "runs" / "u" / "config.json")
    twin = cli("distill", "--config", cfg_file, "--run-dir", str(tmp_path / "twin"), "--no-progress")
    assert twin.returncode == 0, twin.stderr
    twin_cfg = json.loads((tmp_path / "twin" / "config.json").read_text())
    assert (twin_cfg["config"], twin_cfg["preset"]) == (cfg["config"], cfg["preset"])
    assert numbers(tmp_path / "twin") == numbers(tmp_path / "runs" / "u")
    # the run directory is taken now
    again = cli("distill", "--max-steps", "2", "--run-dir", str(tmp_path / "runs" / "u"))
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    # resuming a finished run to a larger max_steps continues from its last checkpoint
    more = cli("distill", "--resume", "--max-steps", "3", "--run-dir", str(tmp_path / "runs" / "u"), "--no-progress")
    assert more.returncode == 0, more.stderr
    assert [d["step"] for d in runs.read_metrics(tmp_path / "runs" / "u")] == [0, 1, 2, 3]


@pytest.mark.parametrize("args, message", [
    (["--loss", "kl"], "needs one shared tokenizer"),
    (["--lr", "0"], "lr must be in (0, 1]"),
    (["--student-hidden", "100"], "multiple of 32"),
    (["--alignment", "diagonal"], "argument --alignment: invalid choice: 'diagonal'"),
    (["--resume"], "--resume needs --run-dir"),
])
def test_cli_errors_name_the_fix(demo_prep, tmp_path, args, message):
    r = cli("distill", "--max-steps", "1", *args, "--runs-dir", str(tmp_path), "--no-progress")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


def test_fsdp_with_train_last_layers_and_deepspeed_are_refused_naming_the_fix(tmp_path):
    r = cli("distill", "--preset", "cpu-pretrained", "--fsdp", "--run-dir", str(tmp_path / "a"), "--no-progress")
    assert r.returncode == 2 and "use one or the other (train_last_layers 0 with fsdp)" in r.stderr
    r = cli("distill", "--preset", "cpu-demo", "--run-dir", str(tmp_path / "b"), "--no-progress",
            env={"ACCELERATE_USE_DEEPSPEED": "true"})  # what `accelerate launch` sets for a DeepSpeed config
    assert r.returncode == 2 and "does not drive: use --fsdp" in r.stderr and "Traceback" not in r.stderr


def test_resume_without_a_run(tmp_path):
    r = cli("distill", "--resume", "--run-dir", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "nothing to resume" in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_preset_without_a_gpu_says_so(tmp_path):
    r = cli("distill", "--preset", "gpu", "--max-steps", "1", "--run-dir", str(tmp_path / "g"))
    assert r.returncode == 2 and "no CUDA GPU" in r.stderr


def test_out_of_memory_is_one_clear_line(demo_prep, tmp_path):
    """A batch far too large for the address space: a clear message, exit 2, status failed."""
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30)); "
            "from uld_explorer.cli import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "distill", "--max-steps", "2", "--batch-size", "4000",
                        "--eval-every", "1000", "--run-dir", str(tmp_path / "big"), "--no-progress"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "out of memory" in r.stderr and "--batch-size" in r.stderr and "Traceback" not in r.stderr
    assert RunDir(tmp_path / "big").status()["state"] == "failed"


class FullDiskAtSecondCheckpoint(RunDir):
    """A run directory whose disk fills up while the second checkpoint's optimizer is written."""

    def __init__(self, path):
        super().__init__(path)
        self.writes = 0

    def write_optimizer(self, opt, path):
        import errno

        self.writes += 1
        if self.writes == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().write_optimizer(opt, path)


def test_full_disk_keeps_the_last_good_checkpoint(demo_prep, tmp_path):
    """The second checkpoint's write fails with ENOSPC: a DistillError naming the last good one,
    which stays complete and loadable; no half-written checkpoint is left; the run resumes."""
    full = FullDiskAtSecondCheckpoint(tmp_path / "run")
    with pytest.raises(DistillError, match="step-000002.*resume"):
        train(short(max_steps=6, checkpoint_every=2, eval_every=100), full, prepared=demo_prep, progress=False)
    assert [p.name for p in full.checkpoints()] == ["step-000002"]
    assert not list((tmp_path / "run" / "checkpoints").glob(".*"))
    status = full.status()
    assert status["state"] == "failed" and "step-000002" in status["message"]
    done = train(short(max_steps=6, checkpoint_every=2, eval_every=100), tmp_path / "run", resume=True,
                 prepared=demo_prep, progress=False)
    assert done["state"] == "finished"


# ------------------------------------------------------------------ the teacher cache on real rows


def test_teacher_cache_is_the_real_teacher_and_its_bound_holds(demo_prep):
    """Rows of the cache equal the real teacher's full distribution (top-k, tail), and on those
    rows the cached ULD is within its bound of the full-vocabulary ULD, gradient included, and
    the cached hybrid (JSD and KL on the matched strings) within its bound of the full hybrid."""
    from uld_explorer import HybridConfig, hybrid_top_k, hybrid_uld, uld_distance, uld_top_k
    from uld_explorer.compare.forward import next_token_distributions
    from uld_explorer.zoo import load

    teacher = load(demo_prep.config.teacher)
    cache = demo_prep.cache
    for e in (0, 5):
        ex = demo_prep.train[e]
        tok, dist = next_token_distributions(teacher, ex.answer, 1.0, prompt=ex.teacher.prompt)
        p = torch.from_numpy(dist[: len(tok)])  # (T_t, V_t)
        rows = demo_prep.train_rows[e]
        k = cache.k
        top = torch.sort(p, -1, descending=True).values[:, :k]
        torch.testing.assert_close(cache.values[rows], top, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(cache.tail[rows].numpy(), (p.double().sum(-1) - top.double().sum(-1)).numpy(),
                                   atol=1e-6)
        assert torch.equal(p.gather(1, cache.ids[rows]), cache.values[rows])
        # a student row: random logits with the student's vocabulary size
        g = torch.Generator().manual_seed(e)
        z0 = torch.randn(len(tok), demo_prep.V_s, generator=g, dtype=torch.float64) * 3
        zf = z0.clone().requires_grad_(True)
        full = uld_distance(p.double(), torch.softmax(zf, -1), validate=False)
        full.sum().backward()
        zc = z0.clone().requires_grad_(True)
        est = uld_top_k(cache.values[rows].double(), cache.tail[rows], torch.softmax(zc, -1))
        est.value.sum().backward()
        assert torch.all((full - est.value).abs() <= est.bound + 1e-9)
        assert torch.all((zf.grad - zc.grad).abs().sum(-1) <= est.grad_bound + 1e-9)
        # the hybrid from the cache (ids, pooled strings, tail) against the hybrid of the full rows
        q = torch.softmax(z0, -1)
        for beta in (0.5, 0.0):
            cfg = HybridConfig(beta=beta)
            exact = hybrid_uld(p.double(), q, match=demo_prep.match, config=cfg, validate=False)
            h = hybrid_top_k(cache.values[rows].double(), cache.ids[rows], cache.tail[rows], q, match=demo_prep.match,
                             config=cfg)
            assert torch.all((exact.value - h.value).abs() <= h.bound + 1e-9), beta
            assert torch.all((exact.matched - h.matched).abs() <= h.matched_bound + 1e-9), beta
            assert torch.all((exact.unmatched - h.unmatched).abs() <= h.unmatched_bound + 1e-9), beta
            if beta:  # where the teacher is sure (r < 0.02, most rows) the bound is small
                assert float(h.bound[cache.tail[rows] < 0.02].mean()) < 0.02
    # k = 256 keeps nearly all of the teacher: the tail mass r is ~0.006 on average over the
    # dataset (up to ~0.3 where the teacher hesitates), so the bound min(Q, r) is too
    assert float(cache.tail.mean()) < 0.02 and float(cache.tail.max()) < 0.6


def test_cache_fingerprint_follows_the_settings(demo_prep):
    from uld_explorer.distill.teacher_cache import cache_fingerprint

    ex = demo_prep.train[:3]
    base = cache_fingerprint("a", "Qwen2.5-Coder-0.5B-Instruct", 1.0, 256, ex, "p")
    assert base == cache_fingerprint("a", "Qwen2.5-Coder-0.5B-Instruct", 1.0, 256, ex, "p")
    for changed in (("b", "Qwen2.5-Coder-0.5B-Instruct", 1.0, 256, ex, "p"), ("a", "Qwen2.5-Coder-0.5B-Instruct", 2.0, 256, ex, "p"),
                    ("a", "Qwen2.5-Coder-0.5B-Instruct", 1.0, 128, ex, "p"), ("a", "Qwen2.5-Coder-0.5B-Instruct", 1.0, 256, ex[:2], "p"),
                    ("a", "Qwen2.5-Coder-0.5B-Instruct", 1.0, 256, ex, "q")):
        assert cache_fingerprint(*changed) != base


@pytest.mark.parametrize("teacher", ["Qwen2.5-Coder-0.5B-Instruct", "SmolLM2-135M-Instruct"])
def test_answers_are_the_shipped_ones_and_fingerprinted(teacher):
    from uld_explorer.distill.data import answers_fingerprint, load_answers, load_prompts, shipped_answers_dir

    files = sorted(f.name for f in shipped_answers_dir().glob("*.jsonl"))
    assert files == ["Qwen2.5-Coder-0.5B-Instruct-64.jsonl", "SmolLM2-135M-Instruct-64.jsonl"]
    lines = (shipped_answers_dir() / f"{teacher}-64.jsonl").read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["fingerprint"] == answers_fingerprint(teacher, 64)
    assert header["regenerate"] == f"uld-explorer answers --teacher {teacher} --max-new-tokens 64"
    answers = load_answers(teacher, 64, progress=False)  # the shipped file: nothing is generated
    assert len(answers) == len(lines) - 1 >= 300 and "Paris" in answers["p0001"]
    assert set(answers) <= {p.id for p in load_prompts()}


def test_batches_are_a_pure_function_of_seed_and_step():
    from uld_explorer.distill.loop import batch_indices

    n, B = 10, 4
    stream = [i for s in range(5) for i in batch_indices(n, B, 7, s)]
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))  # epochs
    assert batch_indices(n, B, 7, 3) == batch_indices(n, B, 7, 3) != batch_indices(n, B, 8, 3)


def test_lr_schedule():
    from uld_explorer.distill.loop import lr_at

    cfg = preset("cpu-demo", lr=1e-2, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_at(cfg, 0) == pytest.approx(1e-3) and lr_at(cfg, 9) == pytest.approx(1e-2)
    assert lr_at(cfg, 60) == pytest.approx(1e-3 + 0.5 * 9e-3)  # halfway down the cosine
    assert lr_at(cfg, 110) == pytest.approx(1e-3) and math.isclose(lr_at(cfg, 500), 1e-3)
