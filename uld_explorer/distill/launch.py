"""Start, stop and resume runs as background processes (what the app's Distillation page does).

A run started here is an ordinary ``uld-explorer distill`` process in its own session: it keeps
running when the page reloads or the app stops, writes its output to ``<run>/log.txt``, and the
page follows it through the run directory alone (:mod:`.runs`). Stopping sends SIGINT, which the
loop turns into "finish this step, save a checkpoint, exit".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from .runs import pid_alive, read_status

__all__ = ["distill_command", "start_run", "stop_run", "resume_run"]


def distill_command(run_dir: str | os.PathLike, preset: str = "cpu-demo", *, resume: bool = False,
                    **overrides: Any) -> list[str]:
    """The ``uld-explorer distill`` command line for a run (``overrides``: DistillConfig fields)."""
    cmd = [sys.executable, "-m", "uld_explorer.cli", "distill", "--preset", preset, "--run-dir", os.fspath(run_dir),
           "--no-progress"]
    if resume:
        cmd.append("--resume")
    for name, value in overrides.items():
        if value is not None:
            cmd += ["--" + name.replace("_", "-"), str(value)]
    return cmd


def _spawn(cmd: list[str], run_dir: Path) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run_dir / "log.txt", "ab")
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        log.close()


def start_run(run_dir: str | os.PathLike, preset: str = "cpu-demo", **overrides: Any) -> subprocess.Popen:
    """Start a new run in the background; ``run_dir`` must not hold a run yet."""
    run_dir = Path(run_dir)
    if (run_dir / "config.json").exists():
        raise ValueError(f"{run_dir} already holds a run: resume it or pick another name")
    return _spawn(distill_command(run_dir, preset, **overrides), run_dir)


def resume_run(run_dir: str | os.PathLike, max_steps: int | None = None) -> subprocess.Popen:
    """Continue a stopped (or finished, with a larger ``max_steps``) run in the background."""
    run_dir = Path(run_dir)
    st = read_status(run_dir)
    if st.get("state") == "running":
        raise ValueError(f"{run_dir.name} is still running (pid {st.get('pid')})")
    return _spawn(distill_command(run_dir, resume=True, max_steps=max_steps), run_dir)


def stop_run(run_dir: str | os.PathLike) -> bool:
    """Ask a running run to stop (SIGINT: it saves a checkpoint after the current step). Returns
    False when it is not running."""
    st = read_status(run_dir)
    pid = st.get("pid")
    if st.get("state") != "running" or not pid_alive(pid):
        return False
    os.kill(int(pid), signal.SIGINT)
    return True
