"""What the runs' measured curves say about the paper's design, in plain words: :func:`read_runs`.

The comparison that teaches: ULD alone against CE + ULD (or CE alone), from their first and last
evaluations. The thresholds are named constants (:data:`TOP1_GAIN`, :data:`SAME_SHAPE_FACTOR`,
:data:`LEARNT_SHARE`); the app's Distillation page shows the paragraphs under the curves.
Importable without torch.
"""

from __future__ import annotations

from typing import Any

from .config import PRESETS
from .rundir import RunDir

__all__ = ["read_runs", "TOP1_GAIN", "SAME_SHAPE_FACTOR", "LEARNT_SHARE"]

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
    return int(PRESETS["cpu-demo"]["max_steps"])


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


_EVAL_KEYS = ("eval_top1", "seen_top1", "eval_uld", "seen_uld", "eval_ce")


def _eval_of(r: Any) -> dict[str, Any] | None:
    e = r.last_eval
    return e if all(isinstance(e.get(k), (int, float)) for k in _EVAL_KEYS) else None


def _first_eval(r: Any) -> dict[str, Any]:
    return next((m for m in RunDir(r.path).metrics() if all(isinstance(m.get(k), (int, float)) for k in _EVAL_KEYS)),
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

    ``runs``: :class:`~.runs.RunInfo` (e.g. :func:`~.runs.list_runs`, newest first: the first run of each
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
        adds = "ULD shapes the rest of the distribution" if other.loss == "ce+uld" else \
            "the paper adds ULD to it (CE + λ·ULD) to shape the rest of the distribution"
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
