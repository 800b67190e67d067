"""Start, stop and resume runs as background processes (what the app's Distillation page does).

A run started here is an ordinary ``uld-explorer distill`` process in its own session: it keeps
running when the page reloads or the app stops, writes its output to ``<run>/log.txt``, and the
page follows it through the run directory alone (:mod:`.runs`). Each launch is recorded in
``<run>/launch.json`` (pid, command, time, the validated config), so the run is listed as
``starting`` while its process loads, before it writes ``config.json``. Stopping sends SIGINT,
which the loop turns into "finish this step, save a checkpoint, exit".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .runs import LAUNCH_FILE, check_run_name, read_launch, read_status

__all__ = ["distill_command", "start_run", "start_new_run", "stop_run", "resume_run"]

#: The folder holding this ``uld_explorer`` package: put first on the child's PYTHONPATH, so the
#: run executes the same code as the caller (a checkout, not another install found from its cwd).
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


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


def _spawn(cmd: list[str], run_dir: Path, record: dict[str, Any]) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    log = open(run_dir / "log.txt", "ab")
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path})
    finally:
        log.close()
    _write_launch(run_dir, {"pid": proc.pid, "command": cmd, "started": time.time(), **record})
    return proc


def _write_launch(run_dir: Path, launch: dict[str, Any]) -> None:
    tmp = run_dir / (LAUNCH_FILE + ".tmp")
    tmp.write_text(json.dumps(launch, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, run_dir / LAUNCH_FILE)


def _busy(run_dir: Path) -> str | None:
    """Why a new process must not be launched on ``run_dir`` now (None: it may)."""
    st = read_status(run_dir)
    if st.get("state") == "running":
        return f"{run_dir.name} is still running (pid {st.get('pid')})"
    launch = read_launch(run_dir)
    if launch.get("alive"):
        return f"{run_dir.name} is still starting (pid {launch.get('pid')})"
    return None


def start_run(run_dir: str | os.PathLike, preset: str = "cpu-demo", **overrides: Any) -> subprocess.Popen:
    """Start a new run in the background; ``run_dir`` must not hold a run yet (nor one being
    started). The config (``preset`` + ``overrides``) is validated here first: a bad value is a
    ``ValueError`` now, not a failed process."""
    from .config import preset as make_config

    run_dir = Path(run_dir)
    config = make_config(preset, **{k: v for k, v in overrides.items() if v is not None})
    if (run_dir / "config.json").exists() or (run_dir / LAUNCH_FILE).exists():
        raise ValueError(f"a run named {run_dir.name!r} already exists in {run_dir.parent}: pick another name, or "
                         f"resume that run")
    return _spawn(distill_command(run_dir, preset, **overrides), run_dir,
                  {"resume": False, "preset": preset, "config": config.to_dict()})


def start_new_run(runs_dir: str | os.PathLike, name: str, preset: str = "cpu-demo",
                  **overrides: Any) -> tuple[Path, subprocess.Popen]:
    """:func:`start_run` in ``runs_dir / name`` after checking ``name`` is one folder name
    (:func:`~.runs.check_run_name`); returns the run directory and the process."""
    run_dir = Path(runs_dir) / check_run_name(name)
    return run_dir, start_run(run_dir, preset, **overrides)


def resume_run(run_dir: str | os.PathLike, max_steps: int | None = None) -> subprocess.Popen:
    """Continue a stopped (or finished, with a larger ``max_steps``) run in the background."""
    run_dir = Path(run_dir)
    busy = _busy(run_dir)
    if busy:
        raise ValueError(busy)
    try:
        saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ValueError(f"nothing to resume in {run_dir.name}: it never got to its first step (no config.json); "
                         f"start a new run") from None
    config = {**saved.get("config", {}), **({"max_steps": int(max_steps)} if max_steps is not None else {})}
    return _spawn(distill_command(run_dir, resume=True, max_steps=max_steps), run_dir,
                  {"resume": True, "preset": saved.get("preset"), "config": config})


def stop_run(run_dir: str | os.PathLike) -> bool:
    """Ask a running run to stop (SIGINT: it saves a checkpoint after the current step); a run
    still starting (no step yet) exits without one. Returns False when it is not running."""
    run_dir = Path(run_dir)
    st = read_status(run_dir)
    pid = st.get("pid")
    if st.get("state") == "running":
        os.kill(int(pid), signal.SIGINT)
        return True
    launch = read_launch(run_dir)
    if launch.get("alive"):
        _write_launch(run_dir, {**{k: v for k, v in launch.items() if k != "alive"}, "stop_requested": time.time()})
        os.kill(int(launch["pid"]), signal.SIGINT)
        return True
    return False
