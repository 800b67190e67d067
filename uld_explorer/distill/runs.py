"""The run directory: what a run writes and what the app, the CLI and notebooks read.

::

    <runs>/<name>/
        config.json        {"config": DistillConfig as a dict, "preset": ..., "created": ...}
        metrics.jsonl      one JSON object per line, appended and flushed every step:
                           step, loss, its parts (ce, uld, kl, hybrid), uld_bound, grad_norm, lr,
                           tokens_per_s, elapsed_s; on eval steps also eval_loss, eval_ce,
                           eval_uld, eval_uld_bound, eval_kl_shared, eval_top1 (held-out
                           answers) and seen_loss, seen_ce, seen_uld, seen_top1 (the first
                           eval_prompts training answers)
        probe.jsonl        per eval step: the probe prompt's top-k next tokens, student and teacher
        status.json        state (running | finished | stopped | failed), pid, step, message
        checkpoints/step-000040/   model.safetensors + config.json (transformers), tokenizer files,
                                   optimizer.safetensors, trainer.json

Line ``step = s`` describes the student after ``s`` optimizer steps (``s = 0``: the start): the
loss of batch ``s`` before its update, and on eval steps the held-out metrics. Importable without
torch; the runs directory defaults to ``$ULD_EXPLORER_RUNS`` or ``./runs``.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

__all__ = [
    "RUNS_ENV", "default_runs_dir", "RunInfo", "list_runs", "read_metrics", "read_probe", "read_status",
    "write_status", "append_jsonl", "checkpoints", "latest_checkpoint", "pid_alive", "new_run_name",
    "METRICS", "metrics_frame", "probe_frame",
]

RUNS_ENV = "ULD_EXPLORER_RUNS"
STATES = ("running", "finished", "stopped", "failed")


def default_runs_dir() -> Path:
    env = os.environ.get(RUNS_ENV, "").strip()
    return Path(env).expanduser() if env else Path("runs")


def new_run_name(loss: str, runs_dir: Path | None = None) -> str:
    """``<loss>-YYYYmmdd-HHMMSS`` (a suffix if taken)."""
    base = f"{loss.replace('+', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    runs = runs_dir or default_runs_dir()
    name, n = base, 1
    while (runs / name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def append_jsonl(path: Path, obj: dict[str, Any]) -> None:
    """Append one strict-JSON line (NaN/inf -> null), flushed and fsynced."""
    line = json.dumps({k: _json_safe(v) for k, v in obj.items()}, ensure_ascii=False, allow_nan=False)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.endswith("\n"):  # a line being written is skipped until complete
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue
    except FileNotFoundError:
        return


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The complete lines of ``metrics.jsonl`` (a partly written last line is left out)."""
    return list(_read_jsonl(Path(run_dir) / "metrics.jsonl"))


def read_probe(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return list(_read_jsonl(Path(run_dir) / "probe.jsonl"))


def truncate_jsonl(path: Path, keep_below_step: int) -> None:
    """Keep only the lines with ``step < keep_below_step`` (a resumed run rewrites the rest)."""
    if not path.exists():
        return
    kept = [d for d in _read_jsonl(path) if int(d.get("step", -1)) < keep_below_step]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for d in kept:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not running
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``status.json``; a run marked running whose process is gone reads as ``stopped`` with
    a message saying so (e.g. the machine rebooted)."""
    try:
        st = json.loads((Path(run_dir) / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"state": "unknown", "message": "no status.json"}
    if st.get("state") == "running" and not pid_alive(st.get("pid")):
        st = {**st, "state": "stopped", "message": "the process is gone (killed?); resume from the last checkpoint"}
    return st


def write_status(run_dir: Path, state: str, **fields: Any) -> None:
    assert state in STATES, state
    st = {"state": state, "pid": os.getpid(), "updated": time.time(), **fields}
    tmp = run_dir / "status.json.tmp"
    tmp.write_text(json.dumps(st, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, run_dir / "status.json")


def checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints (those with ``trainer.json``), oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / "trainer.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    found = checkpoints(run_dir)
    return found[-1] if found else None


@dataclass(frozen=True)
class RunInfo:
    """One run directory, summarised (what ``uld-explorer runs list`` prints)."""

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

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "loss": self.loss, "preset": self.preset,
                "state": self.state, "step": self.step, "max_steps": self.max_steps,
                "loss_value": self.last.get("loss"), "eval_ce": self.last_eval.get("eval_ce"),
                "eval_uld": self.last_eval.get("eval_uld"), "eval_top1": self.last_eval.get("eval_top1"),
                "updated": self.updated, "message": self.message}


def run_info(run_dir: str | os.PathLike) -> RunInfo | None:
    path = Path(run_dir)
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    metrics = read_metrics(path)
    st = read_status(path)
    last = metrics[-1] if metrics else {}
    last_eval = next((m for m in reversed(metrics) if "eval_ce" in m), {})
    c = cfg.get("config", {})
    try:
        updated = max(f.stat().st_mtime for f in path.iterdir())
    except ValueError:
        updated = 0.0
    return RunInfo(path.name, path, c.get("loss", "?"), cfg.get("preset") or "", st.get("state", "unknown"),
                   int(last.get("step", 0)), int(c.get("max_steps", 0)), last, last_eval, updated,
                   st.get("message", ""))


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every run directory under ``runs_dir`` (one with a ``config.json``), newest first."""
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not root.is_dir():
        return []
    infos = [i for i in (run_info(p) for p in root.iterdir() if p.is_dir()) if i is not None]
    return sorted(infos, key=lambda i: i.updated, reverse=True)


#: The curves a run records: metrics.jsonl key -> (label, unit). Train keys come every step,
#: ``eval_*`` keys on eval steps (held-out answers).
METRICS: dict[str, tuple[str, str]] = {
    "loss": ("training loss (the run's own)", "nats or ULD units"),
    "ce": ("CE on the batch", "nats / token"),
    "uld": ("ULD on the batch", "[0, 2]"),
    "kl": ("KL on the batch", "nats"),
    "hybrid": ("hybrid ULD on the batch", "mixed"),
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
        d = Path(d)
        info = run_info(d)
        loss = info.loss if info else "?"
        for m in read_metrics(d):
            for k in keys:
                v = m.get(k)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    rows.append((d.name, loss, int(m["step"]), k, float(v)))
    return pd.DataFrame(rows, columns=["run", "loss_name", "step", "metric", "value"])


def probe_frame(run_dir: str | os.PathLike, step: int | None = None) -> Any:
    """One probe record as a tidy frame: ``side`` (teacher | student), ``rank``, ``token``, ``prob``,
    plus ``step`` (the recorded eval step nearest to ``step``; default the last one)."""
    import pandas as pd

    probes = read_probe(run_dir)
    if not probes:
        return pd.DataFrame(columns=["step", "side", "rank", "token", "prob"])
    rec = probes[-1] if step is None else min(probes, key=lambda p: (abs(int(p["step"]) - step), p["step"]))
    rows = [(int(rec["step"]), side, i + 1, t["token"], float(t["prob"]))
            for side in ("teacher", "student") for i, t in enumerate(rec[side])]
    return pd.DataFrame(rows, columns=["step", "side", "rank", "token", "prob"])
