"""The runner under faults (issue 18 §4): a same-size byte flip in the teacher cache is found on
load, said, and rebuilt from the real teacher; a file written before the sha256 was recorded is
read and gains it; another dataset's file is refused."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from uld_explorer.distill.teacher_cache import (
    TENSORS,
    TeacherCache,
    build_teacher_cache,
    cache_fingerprint,
    load_or_build_teacher_cache,
    read_teacher_cache,
    save_teacher_cache,
)


def tiny_cache(fp: str = "f" * 16) -> TeacherCache:
    g = torch.Generator().manual_seed(0)
    v = torch.rand(5, 4, generator=g).sort(dim=1, descending=True).values
    return TeacherCache(values=v, ids=torch.randint(0, 50, (5, 4), generator=g), tail=torch.rand(5, dtype=torch.float64),
                        actual=torch.rand(5), offsets=torch.tensor([0, 2, 5]), probe_values=v[0].clone(),
                        probe_ids=torch.arange(4), vocab_size=50, fingerprint=fp)


def flip_a_data_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # the tensors' bytes follow the JSON header: the file keeps its size
    path.write_bytes(bytes(data))


def test_a_flipped_byte_is_found_another_dataset_refused_an_old_file_gains_its_sha(tmp_path):
    cache, path = tiny_cache(), tmp_path / "c.safetensors"
    save_teacher_cache(cache, path)
    got, why = read_teacher_cache(path, cache.fingerprint)
    assert why is None and torch.equal(got.values, cache.values) and got.vocab_size == 50
    assert read_teacher_cache(path, "0" * 16)[1].startswith("it records another dataset's fingerprint")
    size = path.stat().st_size
    flip_a_data_byte(path)
    assert path.stat().st_size == size
    got, why = read_teacher_cache(path, cache.fingerprint)
    assert got is None and "sha256 differs" in why
    path.write_bytes(b"not a safetensors file")
    assert read_teacher_cache(path, cache.fingerprint)[1].startswith("it cannot be read")
    # an earlier version's file (no sha256 in its metadata): read, and rewritten with it
    save_file({n: getattr(cache, n).contiguous() for n in TENSORS}, str(path),
              metadata={"vocab_size": "50", "fingerprint": cache.fingerprint, "format": "1"})
    got, why = read_teacher_cache(path, cache.fingerprint)
    assert why is None and torch.equal(got.ids, cache.ids)
    flip_a_data_byte(path)  # from now on protected
    assert "sha256 differs" in read_teacher_cache(path, cache.fingerprint)[1]


@pytest.mark.slow
def test_a_damaged_teacher_cache_is_said_and_rebuilt_from_the_real_teacher(default_models):
    """Two examples of the cpu-demo data (their own fingerprint, so no other run's cache is touched):
    the damaged file gives one warning naming it, then the cache is rebuilt from the teacher and
    equals a fresh build."""
    import uld_explorer as ux
    from uld_explorer.distill.config import preset
    from uld_explorer.distill.data import answers_fingerprint, build_examples, load_answers, load_prompts
    from uld_explorer.zoo.cache import cache_dir

    cfg = preset("cpu-demo")
    teacher = ux.load_model(cfg.teacher, progress=False)
    student_tok = ux.load_tokenizer(cfg.student, progress=False)
    examples = build_examples(load_prompts()[:2], load_answers(cfg.teacher, 64, progress=False), teacher.tokenizer,
                              student_tok)
    fp_answers = answers_fingerprint(cfg.teacher, 64)
    fp = cache_fingerprint(fp_answers, cfg.teacher, 1.0, 16, examples, "reliability test probe")
    path = cache_dir() / "distill" / "teacher" / f"{fp}.safetensors"
    try:
        fresh = build_teacher_cache(teacher, examples, 1.0, 16, "reliability test probe", progress=False)
        fresh.fingerprint = fp
        save_teacher_cache(fresh, path)
        flip_a_data_byte(path)
        with pytest.warns(UserWarning, match=r"teacher cache .* is not usable: its content's sha256 differs .* "
                                             r"rebuilding it from the teacher"):
            rebuilt = load_or_build_teacher_cache(cfg.teacher, examples, fp_answers, 1.0, 16, "reliability test probe",
                                                  progress=False)
        assert torch.equal(rebuilt.values, fresh.values) and torch.equal(rebuilt.ids, fresh.ids)
        assert read_teacher_cache(path, fp)[1] is None  # the file on disk is whole again
    finally:
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------- metrics.jsonl cut short
def test_a_cut_last_metrics_line_is_skipped_and_said_once_the_run_is_not_live(tmp_path, capsys):
    """A run whose trainer died mid-write: the runs list and the page (run_info) read every whole
    line and say one was skipped; while the run is live the partial line is one being written."""
    from uld_explorer.cli import main
    from uld_explorer.distill.config import DistillConfig
    from uld_explorer.distill.rundir import RunDir
    from uld_explorer.distill.runs import run_info, runs_frame

    run = RunDir(tmp_path / "runs" / "cut")
    run.path.mkdir(parents=True)
    run.write_record({"config": DistillConfig(max_steps=5).to_dict(), "preset": "cpu-demo", "created": 1.0})
    for step in range(3):
        run.append_metrics({"step": step, "loss": 1.0 - step / 10})
    with open(run.path / run.METRICS, "a", encoding="utf-8") as f:
        f.write('{"step": 3, "lo')  # the write the kill cut short
    run.write_status("running", step=3)
    live = run_info(run.path)
    assert live.step == 2 and live.damage == ""  # live: the last line may be being written
    run.write_status("failed", step=3, message="killed")
    info = run_info(run.path)
    assert info.step == 2 and info.last["loss"] == 0.8
    assert info.damage == "1 line of metrics.jsonl skipped (not JSON; the last one cut short, its trainer stopped " \
                          "mid-write)"
    assert info.damage in info.message and info.damage in runs_frame([info])["message"][0]
    with open(run.path / run.METRICS, "a", encoding="utf-8") as f:  # and a garbage line in the middle
        f.write('\n{"step": 4, "loss": 0.6}\n')
    assert run_info(run.path).damage.startswith("1 line of metrics.jsonl skipped")  # the cut line, now complete
    assert [m["step"] for m in run.metrics()] == [0, 1, 2, 4]
    assert main(["runs", "list", "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "cut: 1 line of metrics.jsonl skipped" in out and "4/5" in out


# ---------------------------------------------------------------------------------- kill -9 mid-checkpoint
@pytest.mark.slow
def test_kill_9_during_a_checkpoint_write_resumes_from_the_last_complete_one(tmp_path, default_models):
    """A real `distill` checkpointing every step is SIGKILLed while a checkpoint is being written
    (its `.step-N.tmp` folder on disk); the resume starts from the newest complete checkpoint,
    clears the half-written one and finishes."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from uld_explorer.distill.rundir import RunDir

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "uld_explorer.cli", "distill", "--preset", "cpu-demo", "--max-steps", "400",
           "--eval-every", "1000", "--checkpoint-every", "1", "--keep-checkpoints", "2", "--run-dir", str(run),
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    caught = None
    try:
        deadline = time.time() + 300
        while caught is None and time.time() < deadline and proc.poll() is None:
            tmp = list((run / "checkpoints").glob(".step-*.tmp")) if (run / "checkpoints").is_dir() else []
            done = [c for c in (run / "checkpoints").glob("step-*")] if tmp else []
            if tmp and done:  # mid-write, with a complete one before it
                os.kill(proc.pid, signal.SIGKILL)
                caught = tmp[0].name
            else:
                time.sleep(0.002)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert caught is not None, "never caught a checkpoint being written"
    assert proc.returncode == -signal.SIGKILL
    complete = [c.name for c in RunDir(run).checkpoints()]
    newest = max(int(n.split("-")[1]) for n in complete)
    left = (run / "checkpoints" / caught).exists()  # the half-written folder (unless its rename won the race)
    assert left or (run / "checkpoints" / caught.removeprefix(".").removesuffix(".tmp")).exists()
    more = subprocess.run([sys.executable, "-m", "uld_explorer.cli", "distill", "--resume", "--max-steps",
                           str(newest + 2), "--checkpoint-every", "1000", "--run-dir", str(run), "--no-progress",
                           "--json"], capture_output=True, text=True, timeout=600)
    assert more.returncode == 0, more.stderr[-3000:]
    last = json.loads(more.stdout)
    assert last["state"] == "finished" and last["resumed_from"].endswith(f"step-{newest:06d}")
    assert not list((run / "checkpoints").glob(".step-*.tmp"))
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(len(steps))) and steps[-1] == newest + 2  # no step twice, none missing


# ---------------------------------------------------------------------------------- trackers and the final folder
@pytest.mark.slow
@pytest.mark.parametrize("report_to", ["tensorboard", "csv"])
def test_trackers_write_what_metrics_jsonl_holds_and_the_final_folder_loads(tmp_path, report_to, default_models):
    """A short cpu-demo run: TensorBoard's own reader finds every logged number at its step (or
    metrics.csv holds them), and final/ is a Hugging Face folder that AutoModelForCausalLM loads,
    equal to the last checkpoint, with a model card naming teacher, loss, data and held-out CE."""
    import csv
    import json

    from transformers import AutoModelForCausalLM

    from uld_explorer.distill.config import preset
    from uld_explorer.distill.loop import train

    cfg = preset("cpu-demo", max_steps=4, eval_every=2, checkpoint_every=2, report_to=report_to)
    last = train(cfg, tmp_path / "run", progress=False)
    assert last["state"] == "finished"
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    want = {(m["step"], k): float(v) for m in lines for k, v in m.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if report_to == "tensorboard":
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        got = {}  # the scalars' folder, and the hyperparameters' (add_hparams writes one of its own)
        for events in {p.parent for p in (tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*")}:
            acc = EventAccumulator(str(events))
            acc.Reload()
            got.update({(e.step, tag): e.value for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)})
    else:
        with open(tmp_path / "run" / "metrics.csv", encoding="utf-8") as f:
            got = {(int(r["step"]), r["name"]): float(r["value"]) for r in csv.DictReader(f)}
    assert set(got) == set(want)
    assert all(got[k] == pytest.approx(want[k], rel=1e-6, abs=1e-9) for k in want)
    final = tmp_path / "run" / "final"
    model = AutoModelForCausalLM.from_pretrained(final)
    ckpt = AutoModelForCausalLM.from_pretrained(last["checkpoint"])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ckpt.state_dict().values()))
    card = (final / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlibrary_name: transformers") and f"`{cfg.teacher}`" in card and "`ce+uld`" in card
    assert f"| held-out CE (nats/token) | {last['eval_ce']:.4f} |" in card
    assert not (final / "optimizer.safetensors").exists()
