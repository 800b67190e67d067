"""The run directory contract (RunDir): cached reads equal fresh ones across appends, a half-written
line, a truncation and a replaced file; a poll of the runs parses each new line once; the
training context's statuses and failure messages; background runs receive their config as a
file (``--config``), which the CLI reads back, with flags overriding it. No training here."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uld_explorer.cli import build_parser
from uld_explorer.cli.common import UsageError
from uld_explorer.cli.distill import start_config
from uld_explorer.distill import launch, reading, runs
from uld_explorer.distill.config import DistillConfig, preset
from uld_explorer.distill.errors import DistillError
from uld_explorer.distill.jsonl import JSONL_CACHE
from uld_explorer.distill.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]


def fresh(path: Path) -> list[dict]:
    """The complete lines of a JSON-lines file, parsed from scratch (the oracle)."""
    if not path.exists():
        return []
    out = []
    for raw in path.read_bytes().split(b"\n")[:-1]:
        try:
            out.append(json.loads(raw))
        except ValueError:
            pass
    return out


# ---------------------------------------------------------------------------------- the cache
def test_cached_reads_equal_fresh_reads_as_the_file_grows_shrinks_and_is_replaced(tmp_path):
    run = RunDir(tmp_path / "r")
    path = run.path / run.METRICS
    assert run.metrics() == []
    run.path.mkdir()
    for s in range(3):
        run.append_metrics({"step": s, "loss": 1.0 / (s + 1), "text": "café"})
        assert run.metrics() == fresh(path)
    with open(path, "ab") as f:  # a line being written: left out until complete
        f.write(b'{"step": 3, "lo')
    assert run.metrics() == fresh(path) and [d["step"] for d in run.metrics()] == [0, 1, 2]
    with open(path, "ab") as f:
        f.write(b'ss": 0.25}\n{"step": 4}\n')
    assert [d["step"] for d in run.metrics()] == [0, 1, 2, 3, 4] == [d["step"] for d in fresh(path)]
    run.truncate(2)  # a resume rewrites the file (another inode, shorter)
    assert run.metrics() == fresh(path) and [d["step"] for d in run.metrics()] == [0, 1]
    run.append_metrics({"step": 2, "loss": 9.0})
    assert run.metrics() == fresh(path) and run.metrics()[-1]["loss"] == 9.0
    # rewritten in place (same inode, same length, its first line changed): read again from the start
    text = path.read_bytes()
    with open(path, "r+b") as f:
        f.write(text.replace(b'"step": 0', b'"step": 7'))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert run.metrics() == fresh(path) and run.metrics()[0]["step"] == 7
    path.unlink()
    assert run.metrics() == []


def test_a_read_parses_only_the_new_lines(tmp_path):
    run = RunDir(tmp_path)
    for s in range(5):
        run.append_metrics({"step": s})
    before = JSONL_CACHE.parsed
    assert len(run.metrics()) == 5 and JSONL_CACHE.parsed - before == 5
    hits = JSONL_CACHE.hits
    assert len(RunDir(tmp_path).metrics()) == 5  # another RunDir on the same directory: the same cache
    assert JSONL_CACHE.parsed - before == 5 and JSONL_CACHE.hits == hits + 1
    run.append_metrics({"step": 5})
    assert len(run.metrics()) == 6 and JSONL_CACHE.parsed - before == 6


def write_run(root: Path, name: str, loss: str, steps: int, every: int = 2) -> RunDir:
    """A run in the runner's own format: config.json, metrics with evals, probes, status."""
    run = RunDir(root / name)
    run.write_record({"config": {"loss": loss, "max_steps": steps}, "preset": "cpu-demo", "created": time.time()})
    for s in range(steps + 1):
        line = {"step": s, "loss": 2.0 - s / 100, "uld": 1.9 - s / 50}
        if s % every == 0:
            line.update(eval_ce=10 - s / 10, eval_uld=1.9 - s / 40, eval_top1=s / 100, seen_ce=9.0,
                        seen_uld=1.8 - s / 40, seen_top1=s / 90)
            run.append_probe({"step": s, "prompt": "p", "student": [{"token": "a", "prob": 0.5}],
                              "teacher": [{"token": "b", "prob": 0.9}]})
        run.append_metrics(line)
    run.write_status("running", step=steps, max_steps=steps)
    return run


def poll(root: Path) -> None:
    """What one poll of the Distillation page reads (the runs table, the curves, the lesson, the probe)."""
    infos = runs.list_runs(root)
    runs.runs_frame(infos)
    now = [runs.run_info(r.path) for r in infos]
    dirs = [r.path for r in now]
    runs.metrics_frame(dirs, ["ce", "uld"])
    runs.metrics_frame(dirs, ["eval_ce", "eval_top1"])
    runs.metrics_frame(dirs, ["ce", "eval_ce"])
    reading.read_runs(now)
    RunDir(root / "c").probe()  # the selected run's probe
    runs.probe_frame(root / "c", 2)


def test_a_poll_parses_each_runs_new_lines_once(tmp_path):
    u, c = write_run(tmp_path, "u", "uld", 10), write_run(tmp_path, "c", "ce+uld", 10)
    lines = 2 * 11 + 6  # the metrics lines of both runs, the probe lines of the selected one
    before = JSONL_CACHE.parsed
    poll(tmp_path)
    assert JSONL_CACHE.parsed - before == lines
    poll(tmp_path)
    assert JSONL_CACHE.parsed - before == lines  # nothing new: nothing parsed
    u.append_metrics({"step": 11, "loss": 1.0})
    c.append_metrics({"step": 11, "loss": 1.0})
    c.append_probe({"step": 12, "prompt": "p", "student": [], "teacher": []})
    poll(tmp_path)
    assert JSONL_CACHE.parsed - before == lines + 3


# ---------------------------------------------------------------------------------- the training context
def session_ending(run: RunDir, cfg: DistillConfig, fail_at: int | None, error: BaseException | None = None,
                   stop_at: int | None = None):
    with run.training(cfg, preset="cpu-demo", data={"train": 3}) as session:
        for step in session.steps():
            run.append_metrics({"step": step})
            if step == stop_at:
                session.stop_flag.requested = True  # what SIGINT does
            if step == fail_at:
                raise error
    return session


@pytest.mark.parametrize("error, says", [
    (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "out of memory at step 1 (RuntimeError); the last "
                                                                  "good checkpoint is none. Lower --batch-size (now 16)"),
    (MemoryError(), "out of memory at step 1 (MemoryError)"),
    (OSError(errno.ENOSPC, "No space left on device"), "could not write to"),
    (DistillError("the checkpoint of step 1 could not be written"), "the checkpoint of step 1 could not be written"),
])
def test_failures_become_one_message_with_the_fix_and_a_failed_status(tmp_path, error, says):
    run = RunDir(tmp_path / "r")
    with pytest.raises(DistillError) as raised:
        session_ending(run, DistillConfig(max_steps=3), fail_at=1, error=error)
    assert says in str(raised.value)
    st = run.status()
    assert (st["state"], st["step"], st["message"]) == ("failed", 1, str(raised.value))
    if isinstance(error, OSError):
        assert "No space left on device" in st["message"] and "Free disk space" in st["message"]


def test_another_error_is_reraised_with_a_failed_status(tmp_path):
    run = RunDir(tmp_path / "r")
    with pytest.raises(ValueError, match="bad rows"):
        session_ending(run, DistillConfig(max_steps=3), fail_at=2, error=ValueError("bad rows"))
    assert run.status()["state"] == "failed" and run.status()["message"] == "ValueError: bad rows"


def test_a_diverged_loss_says_lower_the_lr(tmp_path):
    run = RunDir(tmp_path / "r")
    with pytest.raises(DistillError, match=r"the loss is nan at step 0: training diverged; lower --lr \(now 0.003\)"):
        with run.training(DistillConfig(max_steps=3)) as session:
            for _ in session.steps():
                session.check_finite(float("nan"))
    assert run.status()["state"] == "failed"


def test_finished_stopped_and_resumed_statuses_and_records(tmp_path):
    run = RunDir(tmp_path / "r")
    cfg = DistillConfig(max_steps=3)
    done = session_ending(run, cfg, fail_at=None)
    assert done.state == "finished" and run.status()["state"] == "finished" and run.status()["step"] == 3
    rec = run.record()
    assert rec["config"] == cfg.to_dict() and rec["preset"] == "cpu-demo" and rec["data"] == {"train": 3}
    with pytest.raises(DistillError, match="already holds a run"):
        run.check_new()
    # a resumed run: its own config with the new max_steps, its record kept, lines from `start` rewritten
    resumed, name = run.resumed(5)
    assert resumed == cfg.replace(max_steps=5) and name == "cpu-demo"
    with run.training(resumed, resume=True, start=2) as session:
        for step in session.steps():
            run.append_metrics({"step": step, "again": True})
            if step == 3:
                session.stop_flag.requested = True
    assert session.state == "stopped" and [d["step"] for d in run.metrics()] == [0, 1, 2, 3]
    assert [d.get("again", False) for d in run.metrics()] == [False, False, True, True]
    st = run.status()
    assert st["state"] == "stopped" and st["message"] == "stopped at step 3: continue with --resume"
    assert run.record()["created"] == rec["created"] and run.record()["config"]["max_steps"] == 5
    with pytest.raises(DistillError, match="nothing to resume"):
        RunDir(tmp_path / "empty").resumed()


# ---------------------------------------------------------------------------------- the config as a file
def test_the_launch_command_carries_the_config_file_and_no_field_flags(tmp_path):
    run = RunDir(tmp_path / "r")
    cmd = launch.distill_command(run.path, run.path / run.LAUNCH, resume=True)
    flags = {"--" + name.replace("_", "-") for name in DistillConfig.__dataclass_fields__}
    assert cmd[cmd.index("--config") + 1] == str(run.path / run.LAUNCH) and "--resume" in cmd
    assert not flags & set(cmd), flags & set(cmd)
    # the process reads back exactly the validated config the launch recorded
    config = preset("cpu-demo", loss="uld", seed=3, max_steps=30)
    run.write_launch({"pid": None, "command": cmd, "started": time.time(), "resume": False, "preset": "cpu-demo",
                      "config": config.to_dict()})
    args = build_parser().parse_args(cmd[3:-1])
    start, name = start_config(args)
    assert (start, name) == (config, "cpu-demo")


def test_config_file_fields_or_a_runs_config_json_and_flags_override_it(tmp_path):
    fields = tmp_path / "fields.json"
    fields.write_text(json.dumps({"loss": "uld", "max_steps": 7}))
    args = build_parser().parse_args(["distill", "--config", str(fields), "--max-steps", "9"])
    start, name = start_config(args)
    assert (start.loss, start.max_steps, name) == ("uld", 7, "cpu-demo")  # the preset fills the rest
    from uld_explorer.cli.flags import config_from_args

    assert config_from_args(DistillConfig, args, start=start).max_steps == 9  # an explicit flag wins
    run = RunDir(tmp_path / "run")
    run.write_record({"config": preset("gpu", seed=4).to_dict(), "preset": "gpu", "created": 0.0})
    start, name = start_config(build_parser().parse_args(["distill", "--config", str(run.path / run.CONFIG)]))
    assert (start, name) == (preset("gpu", seed=4), "gpu")


@pytest.mark.parametrize("content, says", [
    ('{"loss": "uld", "no_such_field": 1}', "unknown DistillConfig field(s) no_such_field"),
    ('{"lr": 5}', "lr must be in (0, 1]"),
    ("[1, 2]", "expected a JSON object of DistillConfig fields"),
    ("{not json", "not a JSON file"),
])
def test_a_bad_config_file_is_one_line_naming_it(tmp_path, capsys, content, says):
    from uld_explorer.cli import main

    path = tmp_path / "c.json"
    path.write_text(content)
    assert main(["distill", "--config", str(path), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --config {path}: ") and says in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
    with pytest.raises(UsageError, match="cannot read it"):
        start_config(build_parser().parse_args(["distill", "--config", str(tmp_path / "missing.json")]))


def test_the_distillation_page_parses_each_new_line_once_per_poll(tmp_path, monkeypatch):
    """The real page (AppTest) on two runs: its first run parses every metrics line once (and
    the selected run's probe lines); a rerun with nothing new parses nothing; new lines once."""
    from apptest import open_page

    u, c = write_run(tmp_path, "u", "uld", 10), write_run(tmp_path, "c", "ce+uld", 10)
    monkeypatch.setenv(runs.RUNS_ENV, str(tmp_path))
    before = JSONL_CACHE.parsed
    at = open_page(ROOT / "uld_explorer" / "app" / "pages" / "distill.py", 120)
    assert at.selectbox(key="run").value == "c" and not at.error
    assert JSONL_CACHE.parsed - before == 2 * 11 + 6
    at.run()
    assert JSONL_CACHE.parsed - before == 2 * 11 + 6
    u.append_metrics({"step": 11, "loss": 1.0})
    c.append_probe({"step": 12, "prompt": "p", "student": [], "teacher": []})
    at.run()
    assert JSONL_CACHE.parsed - before == 2 * 11 + 6 + 2


# ---------------------------------------------------------------------------------- one trainer, its identity
def test_the_lock_refuses_a_second_holder_saying_who_and_is_released(tmp_path):
    run = RunDir(tmp_path / "r")
    with run.lock():
        with pytest.raises(DistillError) as refused:
            with RunDir(tmp_path / "r").lock():  # another open file: flock refuses it, even in this process
                pass
        said = str(refused.value)
        assert f"pid {os.getpid()}" in said and "since" in said and "wait for it to finish, or stop it" in said
        with RunDir(tmp_path / "r").lock(main=False):  # a DDP process other than the main one: no lock
            pass
        run.write_record({"config": {}})
    with RunDir(tmp_path / "r").lock():  # released
        pass
    assert (run.path / run.LOCK).read_text() == ""  # a run's folder keeps its (empty) lock file
    with RunDir(tmp_path / "new").lock():  # a folder created for a run that never started: removed again
        assert (tmp_path / "new" / RunDir.LOCK).exists()
    assert not (tmp_path / "new").exists()
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(DistillError, match="a_file is a file, not a folder"):
        with RunDir(tmp_path / "a_file").lock():
            pass


@pytest.fixture
def stranger():
    """A process this test starts (``sleep 60``): the pid a dead run's status.json names now."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_pid_reused_by_a_stranger_is_stale_never_signalled(tmp_path, stranger, capsys):
    """status.json says running with the trainer's identity, but the pid is the stranger's now
    (another start time and command): stale everywhere, Stop sends nothing, resume is allowed."""
    from uld_explorer.cli import main
    from uld_explorer.distill.process import identity

    run = write_run(tmp_path, "r", "uld", 4)
    trainer = {"pid": stranger.pid, "pid_start": identity(stranger.pid)["pid_start"] - 1,
               "command": [sys.executable, "-m", "uld_explorer.cli", "distill", "--run-dir", str(run.path)]}
    status = json.loads((run.path / run.STATUS).read_text())
    (run.path / run.STATUS).write_text(json.dumps({**status, **trainer}))
    st = run.status()
    assert (st["state"], st["process"]) == ("stale", "other") and f"pid {stranger.pid}" in st["message"]
    info = runs.run_info(run.path)
    assert info.state == "stale" and not info.stoppable and "never signalled" in info.message
    assert launch.stop_run(run.path) is False
    time.sleep(0.2)
    assert stranger.poll() is None  # alive: not signalled
    assert main(["runs", "list", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert " stale " in out and "r: stale: its trainer is gone" in out
    with run.lock():  # nobody holds the run: a resume may take it (the slow tests resume one for real)
        assert run.resumed()[0].loss == "uld"
    # the same record once the stranger is gone: stale too
    stranger.kill()
    stranger.wait()
    assert run.status()["state"] == "stale" and "is gone" in run.status()["message"]


def test_a_pid_whose_identity_cannot_be_checked_is_not_signalled(tmp_path, stranger):
    """A status.json without start time and command (no /proc where it was written, or an older
    version): the run may still be running, so it reads as running, but nothing is signalled."""
    run = write_run(tmp_path, "r", "uld", 4)
    (run.path / run.STATUS).write_text(json.dumps({"state": "running", "pid": stranger.pid, "step": 4}))
    info = runs.run_info(run.path)
    assert info.state == "running" and not info.stoppable and "cannot be checked" in info.message
    with pytest.raises(ValueError, match="cannot be checked"):
        launch.stop_run(run.path)
    with pytest.raises(ValueError, match="still running"):
        launch.resume_run(run.path)
    time.sleep(0.2)
    assert stranger.poll() is None


def test_the_page_shows_a_stale_run_with_stop_disabled(tmp_path, monkeypatch, stranger):
    from apptest import open_page

    run = write_run(tmp_path, "c", "ce+uld", 4)
    status = json.loads((run.path / run.STATUS).read_text())
    (run.path / run.STATUS).write_text(json.dumps({**status, "pid": stranger.pid}))  # our command, its pid
    monkeypatch.setenv(runs.RUNS_ENV, str(tmp_path))
    at = open_page(ROOT / "uld_explorer" / "app" / "pages" / "distill.py", 120)
    assert at.dataframe[0].value["state"].tolist() == ["stale"]
    assert at.button(key="stop").disabled and not at.button(key="resume").disabled
    (warning,) = at.warning
    assert warning.value.startswith("c: its trainer is gone") and not at.error
    assert stranger.poll() is None


# ---------------------------------------------------------------------------------- nothing overwritten on a guess
def test_a_new_run_refuses_files_it_did_not_write_unless_forced(tmp_path):
    run = RunDir(tmp_path / "r")
    run.check_new()  # missing: fine
    run.path.mkdir()
    for name in (run.LAUNCH, run.LOG, run.LOCK):  # what a launch leaves before its first step
        (run.path / name).write_text("")
    run.check_new()
    (run.path / run.METRICS).write_text('{"step": 0, "mine": true}\n')
    (run.path / "notes.txt").write_text("my notes")
    with pytest.raises(DistillError, match=r"holds files this runner did not write \(metrics.jsonl, notes.txt\).*"
                                           r"--force"):
        run.check_new()
    run.check_new(force=True)
    with run.training(DistillConfig(max_steps=1)) as session:  # forced: the run's own names are replaced
        for step in session.steps():
            run.append_metrics({"step": step})
    assert run.metrics() == [{"step": 0}, {"step": 1}] and (run.path / "notes.txt").read_text() == "my notes"
    with pytest.raises(DistillError, match="already holds a run"):
        run.check_new(force=True)  # --force never replaces a run
    (tmp_path / "f").write_text("x")
    with pytest.raises(DistillError, match="f is a file, not a folder"):
        RunDir(tmp_path / "f").check_new()
    with pytest.raises(ValueError, match=r"cannot take a new run \(it holds files that are not a run's: notes.txt\)"):
        (tmp_path / "u").mkdir()
        (tmp_path / "u" / "notes.txt").write_text("x")
        launch.start_run(tmp_path / "u")


@pytest.mark.parametrize("content, says", [
    ("{ nope", "config.json is not JSON"),
    ('{"loss": "uld"}', "config.json is not a run's config.json"),
    ('{"config": {"lr": 5}}', "config.json holds a config that is not valid: lr must be in"),
])
def test_resuming_a_folder_whose_config_is_not_a_runs_names_the_file(tmp_path, content, says):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(DistillError, match=says) as raised:
        RunDir(tmp_path).resumed()
    assert str(tmp_path / "config.json") in str(raised.value)


# ---------------------------------------------------------------------------------- checkpoints: verified, fall back
def fake_checkpoint(run: RunDir, step: int) -> Path:
    """A checkpoint folder as save_checkpoint writes it (files, then trainer.json with their manifest)."""
    from uld_explorer.zoo.cache import file_record

    ckpt = run.path / run.CHECKPOINTS / f"step-{step:06d}"
    ckpt.mkdir(parents=True)
    for name in ("model.safetensors", "optimizer.safetensors", "config.json"):
        (ckpt / name).write_bytes(os.urandom(1000))
    (ckpt / "trainer.json").write_text(json.dumps({"step": step, "elapsed_s": 1.0, "files": file_record(ckpt)}))
    return ckpt


def test_resume_falls_back_to_the_newest_complete_checkpoint(tmp_path):
    run = RunDir(tmp_path)
    assert run.resume_checkpoint() == (None, [])  # no checkpoint: from step 0
    a, b, c = (fake_checkpoint(run, s) for s in (2, 4, 6))
    assert run.resume_checkpoint() == (c, [])
    with open(c / "model.safetensors", "r+b") as f:
        f.truncate(10)
    (b / "optimizer.safetensors").write_bytes(b"\0" * 1000)  # same size, other bytes
    ckpt, damaged = run.resume_checkpoint()
    assert ckpt == a and [(d.name, why.split(" ")[0]) for d, why in damaged] == [("step-000006", "model.safetensors"),
                                                                              ("step-000004", "optimizer.safetensors")]
    assert "truncated" in damaged[0][1] and "sha256 differs" in damaged[1][1]
    (a / "trainer.json").write_text("{")
    with pytest.raises(DistillError, match="no complete checkpoint to resume.*step-000002: trainer.json is not "
                                           "readable"):
        run.resume_checkpoint()
    aside = run.set_aside(c)
    assert aside.name == "damaged-step-000006" and [p.name for p in run.checkpoints()] == ["step-000002", "step-000004"]
