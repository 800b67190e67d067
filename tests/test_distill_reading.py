"""What the Distillation page reads from a runs directory: run names, the runs table, the lesson
(read_runs) from measured numbers, and the states of runs launched in the background (starting,
failed, stopped) from launch.json and log.txt. Run directories here are written in the runner's own
format (RunDir.append_metrics, write_status); one test launches a real process that fails fast."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uld_explorer.distill import launch, reading, runs
from uld_explorer.distill.process import identity
from uld_explorer.distill.rundir import RunDir


def write_run(root: Path, name: str, loss: str, evals: list[tuple], steps: int | None = None, state: str = "finished",
              max_steps: int = 120) -> Path:
    """A run directory: config.json, metrics.jsonl (a line per step; eval lines from ``evals``:
    (step, eval_top1, seen_top1, eval_uld, seen_uld[, eval_ce])), status.json."""
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"config": {"loss": loss, "max_steps": max_steps},
                                               "preset": "cpu-demo", "created": time.time()}))
    by_step = {e[0]: e for e in evals}
    last = steps if steps is not None else max(by_step)
    for s in range(last + 1):
        line = {"step": s, "loss": 2.0 - s / 100}
        if s in by_step:
            _, et, st, eu, su, *ce = by_step[s]
            line.update(eval_ce=(ce or [5.0])[0], eval_uld=eu, eval_top1=et, seen_ce=5.0, seen_uld=su, seen_top1=st)
        RunDir(d).append_metrics(line)
    RunDir(d).write_status(state, step=last, max_steps=max_steps)
    return d


@pytest.mark.parametrize("name", [" a ", "uld-120", "ce+uld_2.b", "A" * 100])
def test_good_run_names(name):
    assert runs.check_run_name(name) == name.strip()


@pytest.mark.parametrize("name, says", [("", "empty"), ("   ", "empty"), ("../x", "one folder name"),
                                        ("a/b", "one folder name"), ("a b", "one folder name"),
                                        (".hidden", "not starting"), ("-x", "not starting"), ("A" * 101, "at most 100")])
def test_bad_run_names_say_what_to_change(name, says):
    with pytest.raises(ValueError, match=says):
        runs.check_run_name(name)


def test_runs_frame_is_the_table_of_list_runs(tmp_path):
    write_run(tmp_path, "u", "uld", [(0, 0.01, 0.02, 1.9, 1.9), (20, 0.03, 0.04, 0.8, 0.7)], steps=25, state="running")
    time.sleep(0.01)
    write_run(tmp_path, "c", "ce+uld", [(0, 0.01, 0.02, 1.9, 1.9)], steps=3, state="stopped", max_steps=40)
    info = runs.list_runs(tmp_path)
    assert [r.name for r in info] == ["c", "u"]  # newest first
    assert info[0].created > info[1].created > 0
    assert info[1].state == "running"  # status.json names this (live) process
    frame = runs.runs_frame(info)
    assert list(frame["run"]) == ["c", "u"]
    row = frame.set_index("run").loc["u"]
    assert (row["loss"], row["step"], row["max_steps"], row["eval_step"]) == ("uld", 25, 120, 20)
    assert (row["eval_top1"], row["seen_top1"], row["eval_uld"]) == (0.03, 0.04, 0.8)
    assert row["loss_value"] == pytest.approx(2.0 - 25 / 100)
    assert frame.set_index("run").loc["c", "max_steps"] == 40


def test_read_runs_names_the_missing_runs(tmp_path):
    write_run(tmp_path, "c", "ce+uld", [(0, 0.01, 0.02, 1.9, 1.9)])
    (text,) = reading.read_runs(runs.list_runs(tmp_path))
    assert "a ULD-only run (loss `uld`)" in text and "CE + ULD run" not in text and "`ce+uld`" in text
    assert "a ULD-only run" in reading.read_runs([])[0] and "a CE + ULD run" in reading.read_runs([])[0]


def test_read_runs_too_early_while_uld_alone_has_not_moved(tmp_path):
    write_run(tmp_path, "u", "uld", [(0, 0.01, 0.02, 1.98, 1.98), (4, 0.01, 0.01, 1.97, 1.96)])
    write_run(tmp_path, "c", "ce+uld", [(0, 0.01, 0.02, 1.98, 1.98), (4, 0.08, 0.09, 1.96, 1.95)])
    numbers, text = reading.read_runs(runs.list_runs(tmp_path))
    assert numbers == (
        "At their last evaluations, **ULD alone** (`u`, step 4): top-1 agreement with the teacher 1.0% on answers it "
        "trains on and 1.0% held-out (1.0% at step 0); ULD 1.960 seen and 1.970 held-out (1.980 at step 0); "
        "**CE + ULD** (`c`, step 4): top-1 agreement with the teacher 9.0% on answers it trains on and 8.0% held-out "
        "(1.0% at step 0); ULD 1.950 seen and 1.960 held-out (1.980 at step 0).")
    assert text.startswith("Too early to read") and "1.980 at step 0, 1.970 at step 4" in text


def test_read_runs_shape_without_identity_then_both(tmp_path):
    """The paper's picture: ULD alone's ULD falls, its top-1 does not rise; CE + ULD's rises."""
    write_run(tmp_path, "u", "uld", [(0, 0.01, 0.01, 1.98, 1.98), (120, 0.02, 0.02, 0.52, 0.40)])
    write_run(tmp_path, "c", "ce+uld", [(0, 0.01, 0.01, 1.98, 1.98), (120, 0.30, 0.45, 0.50, 0.35)])
    _, uld, other = reading.read_runs(runs.list_runs(tmp_path))
    assert uld.startswith("ULD alone learnt the SHAPE of the teacher's distributions: its held-out ULD fell from "
                          "1.980 to 0.520, about as low as CE + ULD's 0.500. Its top-1 agreement did not rise "
                          "(1.0% → 2.0%)")  # 0.52 <= 1.15 * 0.50; +1 point < TOP1_GAIN
    assert other.startswith("CE + ULD learnt the tokens too: its top-1 agreement rose from 1.0% to 30.0% held-out "
                            "(45.0% on answers it trains on)")
    assert "ULD shapes the rest of the distribution" in other


def test_read_runs_ce_alone_at_another_step(tmp_path):
    write_run(tmp_path, "u", "uld", [(0, 0.05, 0.05, 1.98, 1.98), (120, 0.0, 0.0, 0.90, 0.80)])
    write_run(tmp_path, "c", "ce", [(0, 0.05, 0.05, 1.98, 1.98), (100, 0.30, 0.45, 0.50, 0.35)], max_steps=100)
    numbers, uld, other, steps = reading.read_runs(runs.list_runs(tmp_path))
    assert "**CE alone** (`c`, step 100)" in numbers
    assert "fell from 1.980 to 0.900, against CE alone's 0.500. Its top-1 agreement fell (5.0% → 0.0%)" in uld
    assert "the paper adds ULD to it (CE + λ·ULD)" in other
    assert steps == ("The two runs were last evaluated at different steps (120 vs 100): the curves compare them "
                     "step by step.")


def test_read_runs_when_neither_top1_rose(tmp_path):
    """What cpu-demo's 120 steps measured: both students' top-1 at their step-0 value (the small
    student's first guess), ULD alone's ULD below CE + ULD's: the reading says what to run."""
    write_run(tmp_path, "u", "uld", [(0, 0.034, 0.044, 1.98, 1.99, 10.8), (120, 0.0, 0.0, 0.457, 0.28, 17.2)])
    write_run(tmp_path, "c", "ce+uld", [(0, 0.034, 0.044, 1.98, 1.99, 10.8), (120, 0.035, 0.041, 0.824, 0.763, 8.05)])
    _, uld, other = reading.read_runs(runs.list_runs(tmp_path))
    assert "even lower than CE + ULD's 0.824. Its top-1 agreement fell (3.4% → 0.0%)" in uld
    assert other.startswith("CE + ULD's top-1 agreement has not risen either (3.4% → 3.5% held-out), although its "
                            "held-out CE fell from 10.80 to 8.05 nats")
    assert "more steps or a larger student" in other


def test_read_runs_when_uld_alone_gains_identity_too(tmp_path):
    write_run(tmp_path, "u", "uld", [(0, 0.01, 0.01, 1.98, 1.98), (120, 0.20, 0.21, 0.60, 0.50)])
    write_run(tmp_path, "c", "ce+uld", [(0, 0.01, 0.01, 1.98, 1.98), (120, 0.21, 0.22, 0.50, 0.35)])
    uld = reading.read_runs(runs.list_runs(tmp_path))[1]
    assert "its top-1 agreement rose as well (1.0% → 20.0%)" in uld and "against CE + ULD's 0.500" in uld


def test_read_runs_waits_for_a_first_evaluation(tmp_path):
    write_run(tmp_path, "u", "uld", [(0, 0.01, 0.01, 1.98, 1.98)])
    c = tmp_path / "c"
    c.mkdir()
    (c / "config.json").write_text(json.dumps({"config": {"loss": "ce+uld", "max_steps": 5}}))
    (text,) = reading.read_runs(runs.list_runs(tmp_path))
    assert "waiting for the first evaluation of `c`" in text


# ---------------------------------------------------------------------------------- launched runs
def sleeper(seconds: float = 60) -> subprocess.Popen:
    """A process standing in for a launched run (its identity is recorded by write_launch)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(float(__import__('sys').argv[1]))",
                             str(seconds), "uld_explorer"])


def write_launch(d: Path, pid: int, **extra) -> None:
    """A launch record naming process ``pid`` by its identity (pid, start time, command), as
    launch._spawn writes it; ``extra`` overrides (e.g. another start time: a reused pid)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / RunDir.LAUNCH).write_text(json.dumps({**identity(pid), "started": time.time(), "preset": "cpu-demo",
                                               "config": {"loss": "uld", "max_steps": 30}, **extra}))


def test_a_launched_run_is_listed_while_it_starts_then_as_failed_with_its_error(tmp_path):
    proc = sleeper()
    try:
        d = tmp_path / "r"
        write_launch(d, proc.pid)
        (d / "log.txt").write_text("run directory: r\nerror: only 5 answered prompts for 32 held-out ones\n")
        (r,) = runs.list_runs(tmp_path)
        assert (r.name, r.state, r.loss, r.max_steps, r.preset) == ("r", "starting", "uld", 30, "cpu-demo")
        assert r.message.startswith("starting: loading")
        with pytest.raises(ValueError, match="still starting"):
            launch.resume_run(d)
        with pytest.raises(ValueError, match="already exists"):
            launch.start_run(d)
    finally:
        proc.kill()
        proc.wait()
    (r,) = runs.list_runs(tmp_path)
    assert r.state == "failed" and r.message == "exited while starting: only 5 answered prompts for 32 held-out ones"


def test_a_pid_reused_by_another_program_is_not_the_run(tmp_path):
    proc = subprocess.Popen(["sleep", "30"])
    try:
        ours = [sys.executable, "-m", "uld_explorer.cli", "distill", "--config", "launch.json"]
        write_launch(tmp_path / "r", proc.pid, command=ours)  # the run's command, the stranger's pid
        assert RunDir(tmp_path / "r").launch()["alive"] is False
        (r,) = runs.list_runs(tmp_path)
        assert r.state == "failed" and not r.stoppable
        assert launch.stop_run(tmp_path / "r") is False and proc.poll() is None  # not signalled
    finally:
        proc.kill()
        proc.wait()


def test_stop_while_starting_then_stopped_before_its_first_step(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import signal, time\nsignal.signal(signal.SIGINT, "
                             "lambda *a: exit(130))\nprint('uld_explorer', flush=True)\ntime.sleep(60)",
                             "uld_explorer"], stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()  # its handler is installed
        d = tmp_path / "r"
        write_launch(d, proc.pid)
        assert launch.stop_run(d) is True
        assert proc.wait(timeout=10) == 130
        (r,) = runs.list_runs(tmp_path)
        assert (r.state, r.message) == ("stopped", "stopped while starting, before its first step")
        assert launch.stop_run(d) is False
    finally:
        proc.kill()
        proc.wait()


def test_a_resumed_run_reads_as_resuming_until_its_own_status(tmp_path):
    d = write_run(tmp_path, "r", "uld", [(0, 0.01, 0.01, 1.98, 1.98)], state="stopped")
    proc = sleeper()
    try:
        time.sleep(0.01)
        write_launch(d, proc.pid, resume=True)
        r = runs.run_info(d)
        assert r.state == "starting" and r.message.startswith("resuming:")
        assert r.step == 0 and r.loss == "uld"  # the run's own config and metrics, not the launch's
        RunDir(d).write_status("running", step=0)  # the resumed process takes over (this pid: alive)
        assert runs.run_info(d).state == "running"
    finally:
        proc.kill()
        proc.wait()


def test_log_tail_keeps_the_last_lines_without_progress_redraws(tmp_path):
    (tmp_path / "log.txt").write_text("a\nstep 1\rstep 2\rstep 3\n\nb\n" + "".join(f"x{i}\n" for i in range(30)))
    assert RunDir(tmp_path).log_tail(3) == "x27\nx28\nx29"
    assert RunDir(tmp_path).log_tail(32).splitlines()[:2] == ["step 3", "b"]
    assert RunDir(tmp_path / "nowhere").log_tail() == ""


def test_start_run_checks_the_config_and_the_name_before_launching(tmp_path):
    with pytest.raises(ValueError, match="lr must be in"):
        launch.start_new_run(tmp_path, "x", "cpu-demo", lr=5.0)
    with pytest.raises(ValueError, match="unknown preset"):
        launch.start_new_run(tmp_path, "x", "no-such-preset")
    with pytest.raises(ValueError, match="one folder name"):
        launch.start_new_run(tmp_path, "../x")
    assert list(tmp_path.iterdir()) == []  # nothing launched, nothing written
    write_run(tmp_path, "taken", "uld", [(0, 0.01, 0.01, 1.98, 1.98)])
    with pytest.raises(ValueError, match="a run named 'taken' already exists"):
        launch.start_new_run(tmp_path, "taken", "cpu-demo")
    with pytest.raises(ValueError, match="nothing to resume"):
        launch.resume_run(tmp_path / "empty")


@pytest.mark.slow
def test_a_real_launch_that_fails_early_is_listed_as_failed_with_the_runners_message(tmp_path):
    """A real ``uld-explorer distill`` process whose config passes the checks but that cannot run
    (more held-out prompts than answered ones): listed as starting, then failed with the CLI's
    one-line error, and the child imported this checkout's package."""
    run_dir, proc = launch.start_new_run(tmp_path, "too-many", "cpu-demo", eval_prompts=100_000, max_steps=2)
    try:
        assert runs.run_info(run_dir).state == "starting"
        assert proc.wait(timeout=180) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    r = runs.run_info(run_dir)
    assert r.state == "failed", r
    assert r.message.startswith("exited while starting: only ") and "lower --eval-prompts" in r.message
    launched = json.loads((run_dir / RunDir.LAUNCH).read_text())
    assert launched["pid"] == proc.pid and launched["config"]["eval_prompts"] == 100_000
    assert launched["command"][launched["command"].index("--config") + 1] == str(run_dir / RunDir.LAUNCH)
