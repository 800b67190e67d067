"""Start, stop and resume runs as background processes (what the app's Distillation page does).

A run started here is an ordinary ``uld-explorer distill`` process in its own session: it keeps
running when the page reloads or the app stops, writes its output to ``<run>/log.txt``, and the
page follows it through the run directory alone (:class:`~.rundir.RunDir`). The config is
validated here, once (:class:`~.config.DistillConfig`), and written to ``<run>/launch.json``
with the launch (command, time, then pid); the process reads that file back
(``uld-explorer distill --config <run>/launch.json --run-dir <run>``): no config field travels
as a command-line flag. The run is listed as ``starting`` while its process loads, before it
writes ``config.json``. Stopping sends SIGINT, which the loop turns into "finish this step,
save a checkpoint, exit", and only to the process the run recorded: its pid, start time and
command must all still match (:func:`~.process.check`); a run whose trainer is gone or whose
pid was reused (``stale``) is never signalled.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .errors import DistillError
from .process import SAME, describe, identity, signal_if_same
from .rundir import RunDir
from .runs import check_run_name

__all__ = ["distill_command", "start_run", "start_new_run", "stop_run", "resume_run"]

#: The folder holding this ``uld_explorer`` package: put first on the child's PYTHONPATH, so the
#: run executes the same code as the caller (a checkout, not another install found from its cwd).
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def distill_command(run_dir: str | os.PathLike, config_file: str | os.PathLike, *, resume: bool = False) -> list[str]:
    """The ``uld-explorer distill`` command line of a background run: its config comes from
    ``config_file`` (a JSON file of DistillConfig fields, or a record with a ``"config"`` key).

    >>> distill_command("runs/a", "runs/a/launch.json")[3:]
    ['distill', '--config', 'runs/a/launch.json', '--run-dir', 'runs/a', '--no-progress']
    """
    cmd = [sys.executable, "-m", "uld_explorer.cli", "distill", "--config", os.fspath(config_file), "--run-dir",
           os.fspath(run_dir), "--no-progress"]
    return cmd + (["--resume"] if resume else [])


def _spawn(run: RunDir, record: dict[str, Any]) -> subprocess.Popen:
    """Write ``launch.json`` (``record``: resume, preset, config; no pid yet), start the process
    that reads it, then record its identity (pid, start time, command: :func:`~.process.identity`)."""
    cmd = distill_command(run.path, run.path / RunDir.LAUNCH, resume=record["resume"])
    launch = {"pid": None, "command": cmd, "started": time.time(), **record}
    run.write_launch(launch)
    path = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    log = run.open_log()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path})
    except OSError:
        run.remove_launch()
        raise
    finally:
        log.close()
    ident = identity(proc.pid)  # Popen returns once the command is exec'd: this is the run's process
    run.write_launch({**launch, **ident, "command": ident["command"] or cmd})
    return proc


def _busy(run: RunDir) -> str | None:
    """Why a new process must not be launched on ``run`` now (None: it may)."""
    st = run.status()
    if st.get("state") == "running":  # its process checked (a stale one is not running)
        return f"{run.name} is still running ({describe(st)})"
    launch = run.launch()
    if launch.get("alive"):
        return f"{run.name} is still starting (pid {launch.get('pid')})"
    return None


def start_run(run_dir: str | os.PathLike, preset: str = "cpu-demo", **overrides: Any) -> subprocess.Popen:
    """Start a new run in the background; ``run_dir`` must not hold a run yet (nor one being
    started). The config (``preset`` + ``overrides``, DistillConfig fields; None leaves the
    preset's value) is validated here first: a bad value is a ``ValueError`` now, not a failed
    process."""
    from .config import preset as make_config

    run = RunDir(run_dir)
    config = make_config(preset, **{k: v for k, v in overrides.items() if v is not None})
    if run.taken():
        raise ValueError(f"a run named {run.name!r} already exists in {run.path.parent}: pick another name, or "
                         f"resume that run")
    foreign = run.foreign_files()
    if run.path.exists() and (foreign or not run.path.is_dir()):  # nothing of the user's is overwritten
        what = f"it holds files that are not a run's: {', '.join(foreign[:5])}" if foreign else "it is a file"
        raise ValueError(f"{run.path} cannot take a new run ({what}): pick another name")
    return _spawn(run, {"resume": False, "preset": preset, "config": config.to_dict()})


def start_new_run(runs_dir: str | os.PathLike, name: str, preset: str = "cpu-demo",
                  **overrides: Any) -> tuple[Path, subprocess.Popen]:
    """:func:`start_run` in ``runs_dir / name`` after checking ``name`` is one folder name
    (:func:`~.runs.check_run_name`); returns the run directory and the process."""
    run_dir = Path(runs_dir) / check_run_name(name)
    return run_dir, start_run(run_dir, preset, **overrides)


def resume_run(run_dir: str | os.PathLike, max_steps: int | None = None) -> subprocess.Popen:
    """Continue a stopped (or finished, with a larger ``max_steps``) run in the background, with
    its own config (:meth:`~.rundir.RunDir.resumed`)."""
    run = RunDir(run_dir)
    busy = _busy(run)
    if busy:
        raise ValueError(busy)
    try:
        config, preset = run.resumed(max_steps)
    except DistillError as err:
        raise ValueError(str(err)) from None
    return _spawn(run, {"resume": True, "preset": preset, "config": config.to_dict()})


def stop_run(run_dir: str | os.PathLike) -> bool:
    """Ask a running run to stop (SIGINT: it saves a checkpoint after the current step); a run
    still starting (no step yet) exits without one. Only the process the run recorded is
    signalled: its pid, start time and command must all match (:func:`~.process.signal_if_same`).

    Returns
    -------
    bool
        True when asked; False when the run is not running (finished, stopped, failed, or
        ``stale``: its trainer is gone, or its pid names another process now).

    Raises
    ------
    ValueError
        The run reads as running but its process cannot be checked (no ``/proc``): not signalled.
    """
    run = RunDir(run_dir)
    st = run.status()
    if st.get("state") == "running":
        if st.get("process") != SAME:
            raise ValueError(f"{run.name}: {st.get('message') or 'its process cannot be checked'}; stop it where it "
                             f"runs (Ctrl-C)")
        return signal_if_same(st)
    launch = run.launch()
    if launch.get("alive") and launch.get("process") == SAME:
        run.write_launch({**{k: v for k, v in launch.items() if k not in ("alive", "process")},
                          "stop_requested": time.time()})
        return signal_if_same(launch)
    return False
