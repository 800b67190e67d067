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
        launch.json        runs started by :mod:`.launch` (the app): the last process launched for
                           the run (pid, command, started, its validated config), so that a run is
                           listed ("starting") before its process has written config.json
        log.txt            runs started by :mod:`.launch`: the process's output
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

from ..jsonsafe import dumps

__all__ = [
    "RUNS_ENV", "default_runs_dir", "RunInfo", "list_runs", "read_metrics", "read_probe", "read_status",
    "write_status", "append_jsonl", "checkpoints", "latest_checkpoint", "pid_alive", "new_run_name",
    "METRICS", "metrics_frame", "probe_frame", "LAUNCH_FILE", "read_launch", "check_run_name", "log_tail",
    "runs_frame", "read_runs",
]

RUNS_ENV = "ULD_EXPLORER_RUNS"
STATES = ("running", "finished", "stopped", "failed")
#: Written by :mod:`.launch` next to the run's own files (see the module's docstring).
LAUNCH_FILE = "launch.json"
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


def append_jsonl(path: Path, obj: dict[str, Any]) -> None:
    """Append one strict-JSON line (NaN/inf -> null), flushed and fsynced."""
    line = dumps(obj)
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
    """One run directory, summarised (what ``uld-explorer runs list`` prints). ``state`` is one of
    :data:`STATES`, or ``starting`` (launched, loading, no step yet) or ``unknown`` (no status)."""

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

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "loss": self.loss, "preset": self.preset,
                "state": self.state, "step": self.step, "max_steps": self.max_steps,
                "loss_value": self.last.get("loss"), "eval_ce": self.last_eval.get("eval_ce"),
                "eval_uld": self.last_eval.get("eval_uld"), "eval_top1": self.last_eval.get("eval_top1"),
                "eval_step": self.last_eval.get("step"), "seen_uld": self.last_eval.get("seen_uld"),
                "seen_top1": self.last_eval.get("seen_top1"), "updated": self.updated, "created": self.created,
                "message": self.message}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_launch(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``launch.json`` (``{}`` for a run started from the command line), plus ``alive``: whether
    the process it names is still running this run."""
    launch = _read_json(Path(run_dir) / LAUNCH_FILE) or {}
    pid = launch.get("pid")
    alive = pid_alive(pid)
    if alive:  # a pid reused by another program after a reboot is not this run
        try:
            with open(f"/proc/{int(pid)}/cmdline", "rb") as f:
                cmdline = f.read()
            alive = not cmdline or b"uld_explorer" in cmdline  # empty: still exec'ing
        except OSError:
            pass
    return {**launch, "alive": alive} if launch else {}


def log_tail(run_dir: str | os.PathLike, lines: int = 20) -> str:
    """The last ``lines`` lines of the run's ``log.txt`` (progress-bar redraws dropped); ``""``
    without one."""
    try:
        with open(Path(run_dir) / "log.txt", "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept = [ln.rsplit("\r", 1)[-1].rstrip() for ln in text.split("\n")]
    return "\n".join([ln for ln in kept if ln][-lines:])


def _last_error(run_dir: Path) -> str:
    tail = log_tail(run_dir, 40).splitlines()
    errors = [ln for ln in tail if ln.startswith("error:") or "Error" in ln.split(":")[0]]
    return (errors or tail or ["no log"])[-1].removeprefix("error: ")


def _launch_state(path: Path, launch: dict[str, Any], st: dict[str, Any]) -> tuple[str, str] | None:
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
    return "failed", f"exited while {what}: {_last_error(path)}"


def run_info(run_dir: str | os.PathLike) -> RunInfo | None:
    """One run directory summarised; None when it holds no run (no ``config.json`` and no
    ``launch.json``)."""
    path = Path(run_dir)
    cfg = _read_json(path / "config.json")
    launch = read_launch(path)
    if cfg is None:
        if not launch:
            return None
        cfg = {"config": launch.get("config", {}), "preset": launch.get("preset")}
    metrics = read_metrics(path)
    st = read_status(path)
    state, message = st.get("state", "unknown"), st.get("message", "")
    state, message = _launch_state(path, launch, st) or (state, message)
    last = metrics[-1] if metrics else {}
    last_eval = next((m for m in reversed(metrics) if "eval_ce" in m), {})
    c = cfg.get("config", {})
    try:
        updated = max(f.stat().st_mtime for f in path.iterdir())
    except ValueError:
        updated = 0.0
    created = float(cfg.get("created") or launch.get("started") or updated)
    return RunInfo(path.name, path, c.get("loss", "?"), cfg.get("preset") or "", state,
                   int(last.get("step", 0)), int(c.get("max_steps", 0)), last, last_eval, updated, message, created)


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


#: A top-1 agreement that rose by at least this (absolute) since the run's first evaluation has
#: "risen" (the untrained student's agreement is not 0: it guesses one token everywhere, which is
#: sometimes the teacher's).
TOP1_GAIN = 0.02
#: ULD alone's held-out ULD at most this factor of the other run's: "about as low".
SAME_SHAPE_FACTOR = 1.15
#: ULD alone's held-out ULD must have fallen by at least this share of its first evaluation's
#: before the runs are read as having learnt anything (a few steps leave both near the start).
LEARNT_SHARE = 0.1


def _demo_steps() -> int:
    from .config import PRESETS

    return int(PRESETS["cpu-demo"]["max_steps"])


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


_EVAL_KEYS = ("eval_top1", "seen_top1", "eval_uld", "seen_uld", "eval_ce")


def _eval_of(r: Any) -> dict[str, Any] | None:
    e = r.last_eval
    return e if all(isinstance(e.get(k), (int, float)) for k in _EVAL_KEYS) else None


def _first_eval(r: Any) -> dict[str, Any]:
    return next((m for m in read_metrics(r.path) if all(isinstance(m.get(k), (int, float)) for k in _EVAL_KEYS)),
                r.last_eval)


def read_runs(runs: Any) -> list[str]:
    """What the runs' measured curves say about the paper's design, in plain words (Markdown
    paragraphs), from their first and last evaluations only.

    The comparison that teaches: ULD alone vs CE + ULD (or CE alone). ULD compares the two
    distributions SORTED, so it can match the teacher's shape without putting the mass on the
    teacher's tokens: its top-1 agreement with the teacher stays low, while CE + ULD can learn
    both. The first paragraph states the latest such pair's seen / held-out top-1 agreement and
    ULD side by side (with their first evaluation's); the next ones read them: too early while
    ULD alone's held-out ULD has fallen by less than :data:`LEARNT_SHARE` of its first value;
    else what ULD alone learnt (shape; identity when its top-1 rose by :data:`TOP1_GAIN`) and
    whether the other run's top-1 rose by :data:`TOP1_GAIN` (if not, what to run to see it).
    Without such a pair they say which runs to start.

    ``runs``: :class:`RunInfo` (e.g. :func:`list_runs`, newest first: the first run of each
    loss is the one compared).
    """
    latest: dict[str, Any] = {}
    for r in runs:
        latest.setdefault(r.loss, r)
    uld = latest.get("uld")
    other = latest.get("ce+uld") or latest.get("ce")
    if uld is None or other is None:
        missing = ["a ULD-only run (loss `uld`)" if uld is None else None,
                   "a CE + ULD run (loss `ce+uld`, the paper's loss)" if other is None else None]
        have = ", ".join(f"`{k}`" for k in sorted(latest)) or "none"
        return [
            f"To see why the paper keeps the cross-entropy term, overlay {' and '.join(m for m in missing if m)} "
            f"(losses overlaid now: {have}). Start them with the same preset, seed and steps (e.g. cpu-demo's "
            f"{_demo_steps()} steps) and compare their top-1 agreement with the teacher: ULD alone matches the SHAPE of the "
            f"teacher's distribution (its sorted probabilities), not which token carries each probability."
        ]
    name = "CE + ULD" if other.loss == "ce+uld" else "CE alone"
    eu, eo = _eval_of(uld), _eval_of(other)
    if eu is None or eo is None:
        waiting = [r.name for r, e in ((uld, eu), (other, eo)) if e is None]
        return [f"Comparing ULD alone (`{uld.name}`) with {name} (`{other.name}`): waiting for the first "
                f"evaluation of {' and '.join(f'`{w}`' for w in waiting)} (at step 0, then every eval_every steps)."]
    fu, fo = _first_eval(uld), _first_eval(other)

    def side(title: str, r: Any, e: dict[str, Any], f: dict[str, Any]) -> str:
        return (f"**{title}** (`{r.name}`, step {e['step']}): top-1 agreement with the teacher "
                f"{_pct(e['seen_top1'])} on answers it trains on and {_pct(e['eval_top1'])} held-out "
                f"({_pct(f['eval_top1'])} at step {f['step']}); ULD {e['seen_uld']:.3f} seen and {e['eval_uld']:.3f} "
                f"held-out ({f['eval_uld']:.3f} at step {f['step']})")

    paras = [f"At their last evaluations, {side('ULD alone', uld, eu, fu)}; {side(name, other, eo, fo)}."]
    if eu["eval_uld"] > (1 - LEARNT_SHARE) * fu["eval_uld"]:
        paras.append(
            f"Too early to read: ULD alone's held-out ULD has hardly moved ({fu['eval_uld']:.3f} at step "
            f"{fu['step']}, {eu['eval_uld']:.3f} at step {eu['step']}; ULD lies in [0, 2]). Run both longer "
            f"(cpu-demo: {_demo_steps()} steps) and watch the two top-1 curves: the paper's design predicts that ULD alone "
            f"matches the SHAPE of the teacher's distribution (its sorted probabilities) but not which token is on "
            f"top, so its top-1 agreement stays low; the CE term names that token.")
    else:
        than = ("even lower than" if eu["eval_uld"] < eo["eval_uld"] else
                "about as low as" if eu["eval_uld"] <= SAME_SHAPE_FACTOR * eo["eval_uld"] else "against")
        if eu["eval_top1"] - fu["eval_top1"] < TOP1_GAIN:
            moved = "fell" if eu["eval_top1"] < fu["eval_top1"] else "did not rise"
            paras.append(
                f"ULD alone learnt the SHAPE of the teacher's distributions: its held-out ULD fell from "
                f"{fu['eval_uld']:.3f} to {eu['eval_uld']:.3f}, {than} {name}'s {eo['eval_uld']:.3f}. Its top-1 "
                f"agreement {moved} ({_pct(fu['eval_top1'])} → {_pct(eu['eval_top1'])}): ULD compares the two "
                f"distributions sorted, so it rewards the right shape whichever tokens carry the mass, and nothing "
                f"in it says which token the teacher picks.")
        else:
            paras.append(
                f"ULD alone's held-out ULD fell from {fu['eval_uld']:.3f} to {eu['eval_uld']:.3f} ({than} {name}'s "
                f"{eo['eval_uld']:.3f}), and its top-1 agreement rose as well ({_pct(fu['eval_top1'])} → "
                f"{_pct(eu['eval_top1'])}), though ULD compares sorted probabilities and never asks for the "
                f"teacher's tokens: compare how far each run's top-1 climbs.")
        adds = "ULD shapes the rest of the distribution" if other.loss == "ce+uld" else             "the paper adds ULD to it (CE + λ·ULD) to shape the rest of the distribution"
        if eo["eval_top1"] - fo["eval_top1"] >= TOP1_GAIN:
            paras.append(
                f"{name} learnt the tokens too: its top-1 agreement rose from {_pct(fo['eval_top1'])} to "
                f"{_pct(eo['eval_top1'])} held-out ({_pct(eo['seen_top1'])} on answers it trains on). CE names the "
                f"teacher's token, {adds}: that is why the paper keeps the cross-entropy term.")
        else:
            paras.append(
                f"{name}'s top-1 agreement has not risen either ({_pct(fo['eval_top1'])} → {_pct(eo['eval_top1'])} "
                f"held-out), although its held-out CE fell from {fo['eval_ce']:.2f} to {eo['eval_ce']:.2f} nats: "
                f"its most probable token still rarely is the teacher's. The CE term is what teaches it the teacher's "
                f"tokens ({adds}): give it more steps or a larger student (the form's max steps; the "
                f"student_hidden / student_layers flags, or the gpu preset's pretrained student) to see {name}'s "
                f"top-1 climb while ULD alone's stays low.")
    if eu["step"] != eo["step"]:
        paras.append(f"The two runs were last evaluated at different steps ({eu['step']} vs {eo['step']}): the "
                     f"curves compare them step by step.")
    return paras
