"""Runs, listed and tabulated: what the app, ``uld-explorer runs list`` and notebooks read.

Every file is read through :class:`~.rundir.RunDir` (which owns the run directory's contract and
caches what it parsed, so polling re-reads only new lines): :func:`list_runs` / :func:`run_info`
summarise run directories as :class:`RunInfo` (the state of a run launched in the background
included), :func:`runs_frame` tabulates them, :func:`metrics_frame` and :func:`probe_frame` give
their curves and probes as tidy pandas frames (:data:`METRICS` names the curves).
:func:`read_metrics` and :func:`read_probe` are ``RunDir(d).metrics()`` and ``RunDir(d).probe()``.
The plain-words reading of the curves is :mod:`~uld_explorer.distill.reading`. Importable without torch; the runs
directory defaults to ``$ULD_EXPLORER_RUNS`` or ``./runs``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .losses import PARTS
from .process import SAME
from .rundir import RunDir

__all__ = [
    "RUNS_ENV", "RUN_NAME_CHARS", "default_runs_dir", "check_run_name", "new_run_name", "RunInfo", "run_info",
    "list_runs", "read_metrics", "read_probe", "METRICS", "metrics_frame", "probe_frame", "runs_frame",
]

RUNS_ENV = "ULD_EXPLORER_RUNS"
#: What a run name may hold: one folder name, no path (letters, digits, ``.``, ``_``, ``+``, ``-``).
RUN_NAME_CHARS = "letters, digits, '.', '_', '+' and '-'"


def default_runs_dir() -> Path:
    env = os.environ.get(RUNS_ENV, "").strip()
    return Path(env).expanduser() if env else Path("runs")


def check_run_name(name: str) -> str:
    """``name`` stripped, if it can name a run directory: one folder name (no ``/``), of
    :data:`RUN_NAME_CHARS`, not starting with ``.`` or ``-``, at most 100 characters; else
    ``ValueError`` saying what to change.

    >>> check_run_name(" uld-long ")
    'uld-long'
    """
    import re

    if not isinstance(name, str) or not name.strip():
        raise ValueError("the run name is empty: type one, or leave the field empty for an automatic one")
    name = name.strip()
    if len(name) > 100:
        raise ValueError(f"the run name has {len(name)} characters: use at most 100")
    if not re.fullmatch(r"[A-Za-z0-9_+][A-Za-z0-9._+-]*", name):
        raise ValueError(f"the run name {name!r} is not one folder name: use {RUN_NAME_CHARS} only "
                         f"(no '/' or spaces), not starting with '.' or '-'")
    return name


def new_run_name(loss: str, runs_dir: Path | None = None) -> str:
    """``<loss>-YYYYmmdd-HHMMSS`` (a suffix if taken)."""
    base = f"{loss.replace('+', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    runs = runs_dir or default_runs_dir()
    name, n = base, 1
    while (runs / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The complete lines of a run's ``metrics.jsonl`` (:meth:`~.rundir.RunDir.metrics`)."""
    return RunDir(run_dir).metrics()


def read_probe(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The complete records of a run's ``probe.jsonl`` (:meth:`~.rundir.RunDir.probe`)."""
    return RunDir(run_dir).probe()


@dataclass(frozen=True)
class RunInfo:
    """One run directory, summarised (what ``uld-explorer runs list`` prints). ``state`` is one of
    :data:`~.rundir.STATES`, or ``starting`` (launched, loading, no step yet), ``stale`` (marked
    running, but its trainer is gone or its pid names another process now: never signalled,
    resume it) or ``unknown`` (no status). ``stoppable``: Stop can signal its process (the pid,
    start time and command recorded all match the live process)."""

    name: str
    path: Path
    loss: str
    preset: str
    state: str
    step: int
    max_steps: int
    last: dict[str, Any]  # the last metrics line
    last_eval: dict[str, Any]  # the last line with eval metrics
    updated: float
    message: str = ""
    created: float = 0.0  # when the run was started (config.json's "created", else its launch)
    stoppable: bool = False
    damage: str = ""  # lines of metrics.jsonl left out, in words (RunDir.metrics_damage); also in message

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "loss": self.loss, "preset": self.preset,
                "state": self.state, "step": self.step, "max_steps": self.max_steps,
                "loss_value": self.last.get("loss"), "eval_ce": self.last_eval.get("eval_ce"),
                "eval_uld": self.last_eval.get("eval_uld"), "eval_top1": self.last_eval.get("eval_top1"),
                "eval_step": self.last_eval.get("step"), "seen_uld": self.last_eval.get("seen_uld"),
                "seen_top1": self.last_eval.get("seen_top1"), "updated": self.updated, "created": self.created,
                "message": self.message, "stoppable": self.stoppable, "damage": self.damage}


def _last_error(run: RunDir) -> str:
    """The last error line of a launched run's log (or its last line)."""
    tail = run.log_tail(40).splitlines()
    errors = [ln for ln in tail if ln.startswith("error:") or "Error" in ln.split(":")[0]]
    return (errors or tail or ["no log"])[-1].removeprefix("error: ")


def _launch_state(run: RunDir, launch: dict[str, Any], st: dict[str, Any]) -> tuple[str, str] | None:
    """The state of a run whose last launch (:mod:`.launch`) has not written a status yet:
    ``starting`` while its process loads, then ``stopped`` (asked to) or ``failed`` (its log's
    last error); None when the status is newer than the launch."""
    if not launch or float(st.get("updated", 0.0)) >= float(launch.get("started", 0.0)):
        return None
    what = "resuming" if launch.get("resume") else "starting"
    if launch["alive"]:
        if launch.get("stop_requested"):
            return "starting", f"{what}: asked to stop; it exits before its next step"
        return "starting", f"{what}: loading the tokenizers, the teacher's answers and its cache"
    if launch.get("stop_requested"):
        return "stopped", f"stopped while {what}, before its first step"
    return "failed", f"exited while {what}: {_last_error(run)}"


def run_info(run_dir: str | os.PathLike) -> RunInfo | None:
    """One run directory summarised; None when it holds no run (no run's ``config.json`` and no
    ``launch.json``)."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    path = run.path
    cfg = run.record() if run.is_run() else None
    launch = run.launch()
    if cfg is None:
        if not launch:
            return None
        cfg = {"config": launch.get("config", {}), "preset": launch.get("preset")}
    metrics = run.metrics()
    st = run.status()
    state, message = st.get("state", "unknown"), st.get("message", "")
    stoppable = state == "running" and st.get("process") == SAME
    launched = _launch_state(run, launch, st)
    if launched:
        (state, message), stoppable = launched, launched[0] == "starting" and launch.get("process") == SAME
    damage = run.metrics_damage(live=state in ("running", "starting"))
    if damage:
        message = f"{message}; {damage}" if message else damage
    last = metrics[-1] if metrics else {}
    last_eval = next((m for m in reversed(metrics) if "eval_ce" in m), {})
    c = cfg.get("config", {})
    try:
        updated = max(f.stat().st_mtime for f in path.iterdir())
    except ValueError:
        updated = 0.0
    created = float(cfg.get("created") or launch.get("started") or updated)
    return RunInfo(path.name, path, c.get("loss", "?"), cfg.get("preset") or "", state,
                   int(last.get("step", 0)), int(c.get("max_steps", 0)), last, last_eval, updated, message, created,
                   stoppable, damage)


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every run directory under ``runs_dir`` (one with a ``config.json``), newest first."""
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not root.is_dir():
        return []
    infos = [i for i in (run_info(p) for p in root.iterdir() if p.is_dir()) if i is not None]
    return sorted(infos, key=lambda i: i.updated, reverse=True)


#: The curves a run records: metrics.jsonl key -> (label, unit). Train keys come every step (the
#: loss parts: :data:`~.losses.PARTS`), ``eval_*`` keys on eval steps (held-out answers).
METRICS: dict[str, tuple[str, str]] = {
    "loss": ("training loss (the run's own)", "nats or ULD units"),
    **{key: (f"{part.label} on the batch", part.unit) for key, part in PARTS.items()},
    "grad_norm": ("gradient norm (before clipping)", ""),
    "tokens_per_s": ("answer tokens / s", "tokens/s"),
    "eval_loss": ("held-out loss (the run's own)", ""),
    "eval_ce": ("held-out CE", "nats / token"),
    "eval_uld": ("held-out ULD", "[0, 2]"),
    "eval_kl_shared": ("held-out KL on shared strings", "nats"),
    "eval_top1": ("held-out top-1 agreement with the teacher", "fraction"),
    "seen_ce": ("CE on answers it trains on", "nats / token"),
    "seen_uld": ("ULD on answers it trains on", "[0, 2]"),
    "seen_top1": ("top-1 agreement on answers it trains on", "fraction"),
}


def metrics_frame(run_dirs: Any, metrics: Any = None) -> Any:
    """The runs' curves as one long (tidy) pandas frame: columns ``run``, ``loss_name`` (the run's
    training loss), ``step``, ``metric``, ``value`` (missing values left out).

    ``run_dirs``: one path or several; ``metrics``: keys of :data:`METRICS` (default all).
    """
    import pandas as pd

    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    keys = list(metrics) if metrics is not None else list(METRICS)
    rows = []
    for d in run_dirs:
        run = RunDir(d)
        rec = run.record() or run.launch()
        loss = (rec.get("config") or {}).get("loss", "?")
        for m in run.metrics():
            for k in keys:
                v = m.get(k)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    rows.append((run.name, loss, int(m["step"]), k, float(v)))
    return pd.DataFrame(rows, columns=["run", "loss_name", "step", "metric", "value"])


def probe_frame(run_dir: str | os.PathLike, step: int | None = None) -> Any:
    """One probe record as a tidy frame: ``side`` (teacher | student), ``rank``, ``token``, ``prob``,
    plus ``step`` (the recorded eval step nearest to ``step``; default the last one)."""
    import pandas as pd

    probes = RunDir(run_dir).probe()
    if not probes:
        return pd.DataFrame(columns=["step", "side", "rank", "token", "prob"])
    rec = probes[-1] if step is None else min(probes, key=lambda p: (abs(int(p["step"]) - step), p["step"]))
    rows = [(int(rec["step"]), side, i + 1, t["token"], float(t["prob"]))
            for side in ("teacher", "student") for i, t in enumerate(rec[side])]
    return pd.DataFrame(rows, columns=["step", "side", "rank", "token", "prob"])


def runs_frame(runs: Any) -> Any:
    """Runs (:class:`RunInfo`, e.g. :func:`list_runs`) as a pandas frame, one row each, in the
    given order: ``run``, ``loss``, ``state``, ``step``, ``max_steps``, ``loss_value`` (the last
    training loss), and from the last evaluation ``eval_step``, ``eval_ce``, ``eval_uld``,
    ``eval_top1``, ``seen_top1``; then ``message``, ``preset``. Missing values are None."""
    import pandas as pd

    cols = ["run", "loss", "state", "step", "max_steps", "loss_value", "eval_step", "eval_ce", "eval_uld",
            "eval_top1", "seen_top1", "message", "preset"]
    rows = []
    for r in runs:
        d = r.to_dict()
        rows.append([r.name, r.loss, r.state, r.step, r.max_steps, d["loss_value"], d["eval_step"], d["eval_ce"],
                     d["eval_uld"], d["eval_top1"], d["seen_top1"], r.message, r.preset])
    return pd.DataFrame(rows, columns=cols).astype({"loss_value": float, "eval_ce": float, "eval_uld": float,
                                                      "eval_top1": float, "seen_top1": float})
