"""Losses x seeds -> run directories -> held-out scores per prompt -> a table with intervals.

:func:`run_experiment` trains every (loss, seed) of an :class:`ExperimentConfig` on one
:class:`~.config.DistillConfig` (through :func:`~.loop.train`, each run a
:class:`~.rundir.RunDir`), scores the final student and the student before training on the
held-out prompts, per prompt (:mod:`.scores`), and :func:`summarise` turns the scores into means
with bootstrap intervals (:mod:`.bootstrap`): per loss, the change from step 0, and the paired
difference against the baseline loss. The experiment's folder, owned by :class:`ExperimentDir`::

    <out>/
        experiment.json     the plan: preset, the DistillConfig shared by every run (loss and seed
                            aside), the data's fingerprints (teacher answers, teacher cache: a
                            change is refused), the ExperimentConfig last asked for
        runs/<loss>-seed<seed>/   a run directory (RunDir), its heldout.json the final scores
        step0/seed-<s>.json       the student before training: per seed where its init depends on
        step0/shared.json         the seed (the small random student), else once (a pretrained one)
        results.json, results.csv the summary (:func:`summarise`)

It can be stopped and continued: a run whose scores are written is never redone, a stopped run
resumes from its checkpoint, a finished run not yet scored is only scored (Ctrl-C during a run:
the loop finishes its step and checkpoints, and :func:`run_experiment` raises
``KeyboardInterrupt``). The runs go seed by seed (every loss of seed 0, then seed 1, ...), so an
experiment stopped early already holds every loss. Rerunning with more seeds or losses adds them.

Examples
--------
>>> ExperimentConfig(losses=("ce", "uld"), seeds=(0, 1)).runs()
[('ce', 0), ('uld', 0), ('ce', 1), ('uld', 1)]
>>> run_name("ce+uld", 2)
'ce+uld-seed2'
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..checks import check_int, check_real
from ..jsonsafe import dumps
from .config import DistillConfig
from .errors import DistillError
from .losses import LOSSES
from .rundir import RunDir

__all__ = ["ExperimentConfig", "ExperimentDir", "FORMAT", "comma_list", "run_name", "step0_key", "score_student",
           "run_experiment", "summarise", "number", "csv_text", "CSV_COLUMNS"]

#: The format of ``experiment.json``, ``heldout.json``, ``step0/*.json`` and ``results.json``.
FORMAT = 1


def comma_list(kind: type) -> Callable[[str], tuple]:
    """A parser of ``"a,b,c"`` into a tuple of ``kind`` (the CLI's ``--losses``, ``--seeds``).

    >>> comma_list(int)("0, 1,2")
    (0, 1, 2)
    """
    def parse(text: str) -> tuple:
        return tuple(kind(t.strip()) for t in str(text).split(",") if t.strip())

    parse.__name__ = f"comma-separated {kind.__name__}"
    return parse


def _f(default: Any, help: str, **more: Any) -> Any:  # noqa: A002 - the metadata key the CLI reads
    return field(default=default, metadata={"help": help, **more})


@dataclass(frozen=True)
class ExperimentConfig:
    """What an experiment compares and how its intervals are computed (the DistillConfig of the
    runs is apart: every run shares it but for ``loss`` and ``seed``)."""

    losses: tuple[str, ...] = _f(("ce", "ce+uld", "uld", "hybrid"), "the losses compared, comma-separated (keys "
                                 "of the loss registry: " + ", ".join(LOSSES) + ")", parse=comma_list(str),
                                 metavar="LOSS,...")
    seeds: tuple[int, ...] = _f((0, 1, 2), "seeds per loss, comma-separated (each: the student's init and the batch "
                                "order)", parse=comma_list(int), metavar="SEED,...")
    baseline: str = _f("ce", "the loss every other is compared with (paired differences); one of the losses",
                       choices=LOSSES)
    resamples: int = _f(10_000, "bootstrap resamples B")
    confidence: float = _f(0.95, "the intervals' confidence level")
    bootstrap_seed: int = _f(0, "the bootstrap's random seed (recorded in results.json)")
    generate_batch_size: int = _f(16, "held-out prompts answered together (greedy generation)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "losses", tuple(self.losses))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if not self.losses:
            raise ValueError(f"losses must name at least one loss of: {', '.join(LOSSES)}")
        unknown = [k for k in self.losses if k not in LOSSES]
        if unknown:
            raise ValueError(f"losses must be keys of the loss registry ({', '.join(LOSSES)}); unknown: "
                             f"{', '.join(map(repr, unknown))}")
        if len(set(self.losses)) < len(self.losses) or len(set(self.seeds)) < len(self.seeds):
            raise ValueError(f"losses and seeds must not repeat (got losses {','.join(self.losses)}, seeds "
                             f"{','.join(map(str, self.seeds))})")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed (e.g. 0,1,2)")
        for s in self.seeds:
            check_int(s, "seeds", 0, 2**32 - 1, "seeds")
        if self.baseline not in self.losses:
            raise ValueError(f"baseline {self.baseline!r} is not among the losses ({', '.join(self.losses)}): add "
                             f"it to the losses, or pick the baseline among them")
        check_int(self.resamples, "resamples", 100, 10_000_000, "a number of bootstrap resamples")
        if not 0 < check_real(self.confidence, "confidence") < 1:
            raise ValueError(f"confidence must be in (0, 1), e.g. 0.95 (got {self.confidence})")
        check_int(self.bootstrap_seed, "bootstrap_seed", 0, 2**32 - 1, "a seed")
        check_int(self.generate_batch_size, "generate_batch_size", 1, 4096, "a number of prompts")

    def runs(self) -> list[tuple[str, int]]:
        """Every (loss, seed), seed by seed: all losses of the first seed first."""
        return [(loss, seed) for seed in self.seeds for loss in self.losses]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def run_name(loss: str, seed: int) -> str:
    """The run directory's name of (loss, seed) under ``<out>/runs/``."""
    return f"{loss}-seed{seed}"


def step0_key(config: DistillConfig) -> str:
    """Which student-before-training a run starts from: ``seed-<s>`` for the small random student
    (its weights are drawn from the seed), ``shared`` for given weights (a pretrained student:
    the same for every run, scored once)."""
    return f"seed-{config.seed}" if config.student_init == "small" else "shared"


# ---------------------------------------------------------------------------- the experiment's folder


class ExperimentDir:
    """The experiment's folder (see the module's docstring): its plan, its runs, its step-0
    scores and its results. Everything in a run's own folder goes through :class:`RunDir`."""

    PLAN, RESULTS_JSON, RESULTS_CSV, RUNS, STEP0 = ("experiment.json", "results.json", "results.csv", "runs",
                                                     "step0")

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def run(self, loss: str, seed: int) -> RunDir:
        return RunDir(self.path / self.RUNS / run_name(loss, seed))

    def plan(self) -> dict[str, Any] | None:
        """``experiment.json`` (``{"format", "preset", "config", "data", "experiment", "created"}``) or None."""
        try:
            data = json.loads((self.path / self.PLAN).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise DistillError(f"{self.path / self.PLAN} is not readable JSON ({err}): not an experiment's plan; "
                               f"choose another --out") from None
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            raise DistillError(f"{self.path / self.PLAN} is not an experiment's plan (no \"config\" object); choose "
                               f"another --out")
        return data

    def check(self, config: DistillConfig) -> None:
        """An experiment of ``config`` may start or continue here (nothing is written).

        Raises
        ------
        DistillError
            The path is a file; the folder holds files but no plan; the plan there has other
            settings for the runs (a changed setting would mix runs of two experiments).
        """
        if self.path.exists() and not self.path.is_dir():
            raise DistillError(f"--out {self.path} is a file, not a folder: give the experiment's folder (created)")
        old = self.plan()
        if old is None:
            others = sorted(os.listdir(self.path)) if self.path.is_dir() else []
            if others:
                raise DistillError(f"--out {self.path} holds files but no experiment ({', '.join(others[:5])}): "
                                   f"choose a new or empty folder")
            return
        try:  # the recorded settings as a config: a field added since then takes its default on both sides
            there = _shared(DistillConfig.from_dict(old["config"]))
        except (TypeError, ValueError) as err:
            raise DistillError(f"--out {self.path}: its experiment.json records settings this version cannot read "
                               f"({err}); choose another --out") from None
        diff = [f"{k}: {there.get(k)!r} there, {v!r} now" for k, v in _shared(config).items() if there.get(k) != v]
        if diff:
            raise DistillError(f"--out {self.path} holds an experiment with other settings ({'; '.join(diff)}): "
                               f"continue it without those flags (uld-explorer experiment --out {self.path}), or "
                               f"choose another --out")

    def check_data(self, data: dict[str, Any]) -> None:
        """The data the runs here were trained and scored on (the plan's ``"data"``: the teacher
        answers' and the teacher cache's fingerprints) is ``data``; nothing recorded: nothing to check.

        Raises
        ------
        DistillError
            The answers or the teacher cache changed since: kept runs would be mixed with new ones.
        """
        there = (self.plan() or {}).get("data") or {}
        diff = [f"{k}: {there[k]} there, {v} now" for k, v in data.items() if k in there and there[k] != v]
        if diff:
            raise DistillError(f"--out {self.path} holds runs trained on other data ({'; '.join(diff)}): the teacher's "
                               f"answers or its cache changed since. Choose another --out (or delete this one to "
                               f"start again)")

    def start(self, config: DistillConfig, exp: ExperimentConfig, preset: str | None,
              data: dict[str, Any] | None = None) -> None:
        """:meth:`check` and :meth:`check_data`, then write the plan: the runs' shared config, the
        preset, the data's fingerprints and ``exp`` (losses, seeds and the bootstrap's settings may
        change between calls: the plan records the last asked for)."""
        self.check(config)
        self.check_data(data or {})
        created = (self.plan() or {}).get("created", time.time())
        self.path.mkdir(parents=True, exist_ok=True)
        self._write(self.PLAN, dumps({"format": FORMAT, "preset": preset, "config": _shared(config),
                                      "data": data or {}, "experiment": exp.to_dict(), "created": created}, indent=1))

    def step0(self, key: str) -> dict[str, Any] | None:
        return _read(self.path / self.STEP0 / f"{key}.json")

    def write_step0(self, key: str, record: dict[str, Any]) -> None:
        (self.path / self.STEP0).mkdir(parents=True, exist_ok=True)
        self._write(f"{self.STEP0}/{key}.json", dumps(record))

    def write_results(self, results: dict[str, Any]) -> None:
        """``results.json`` (strict JSON) and ``results.csv`` (:func:`csv_text`)."""
        self._write(self.RESULTS_JSON, dumps(results, indent=1))
        self._write(self.RESULTS_CSV, csv_text(results))

    def results(self) -> dict[str, Any] | None:
        return _read(self.path / self.RESULTS_JSON)

    def finished(self, exp: ExperimentConfig, eval_ids: list[str] | None = None) -> list[tuple[str, int]]:
        """The (loss, seed) of ``exp`` whose final scores are written."""
        return [(loss, seed) for loss, seed in exp.runs() if _scored(self.run(loss, seed).heldout(), None, eval_ids)]

    def _write(self, name: str, text: str) -> None:
        path = self.path / name
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _shared(config: DistillConfig) -> dict[str, Any]:
    """The DistillConfig fields every run of an experiment shares (all but loss and seed)."""
    return {k: v for k, v in config.to_dict().items() if k not in ("loss", "seed")}


def _scored(record: dict[str, Any] | None, step: int | None, eval_ids: list[str] | None) -> bool:
    """Whether a scores record is complete and current (its step, its held-out prompts)."""
    return (record is not None and record.get("format") == FORMAT and (step is None or record.get("step") == step)
            and (eval_ids is None or record.get("prompts") == eval_ids))


# ---------------------------------------------------------------------------- scoring one student


def score_student(model: Any, prep: Any, config: DistillConfig, *, step: int, checkpoint: str | None = None,
                  batch_size: int = 16, progress: bool = True, desc: str = "answers") -> dict[str, Any]:
    """Every score of :data:`~.scores.METRICS` for a student (a transformers causal LM) on each
    held-out prompt, and its greedy answers: the record ``heldout.json`` and ``step0/*.json`` hold.

    Returns
    -------
    dict
        ``{"format", "step", "checkpoint", "prompts": [ids], "metrics": {key: [one per prompt]},
        "counts": {"tokens", "pairs", "same": [...]}, "answers": [the student's],
        "references": [the teacher's], "seconds"}``; with your data's reference answers (``--data``
        records with ``answer`` / ``reference``) also ``ref_f1`` / ``ref_em`` (NaN for a prompt
        without one) and ``"data_references"``.
    """
    import contextlib

    import torch
    from tqdm.auto import tqdm

    from .loop import device_and_precision
    from .scores import answer_scores, greedy_answers, prompt_metrics, reference_scores
    from .student import AnswerLogits

    t0 = time.perf_counter()
    cpu, mixed = device_and_precision(config)
    device = torch.device("cpu" if cpu else "cuda")
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if mixed == "bf16" else contextlib.nullcontext
    model = model.to(device).eval()
    forward = prompt_metrics(AnswerLogits(model), prep, config, device, autocast)
    with tqdm(total=len(prep.eval), desc=desc, unit="prompt", disable=not progress) as bar, autocast():
        answers = greedy_answers(model, prep.student_tokenizer, [ex.student.context_ids for ex in prep.eval],
                                 config.max_new_tokens, batch_size=batch_size, device=device, progress=bar.update)
    references = [ex.answer for ex in prep.eval]
    counts = {k: forward.pop(k) for k in ("tokens", "pairs", "same")}
    data_refs = [getattr(ex.prompt, "reference", None) for ex in prep.eval]  # your data's own answers, if any
    scores = {**forward, **answer_scores(answers, references)}
    if any(r is not None for r in data_refs):
        scores.update(reference_scores(answers, data_refs))
    return {"format": FORMAT, "step": step, "checkpoint": checkpoint, "prompts": [ex.prompt.id for ex in prep.eval],
            "metrics": scores, "counts": counts, "answers": answers, "references": references,
            **({"data_references": data_refs} if any(r is not None for r in data_refs) else {}),
            "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------- the experiment


def run_experiment(config: DistillConfig, exp: ExperimentConfig, out: str | os.PathLike, *, preset: str | None = None,
                   prepared: Any = None, progress: bool = True, report: Callable[[str], None] | None = None,
                   on_step: Callable[[str, int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train and score every (loss, seed) of ``exp`` under ``out``, then write and return the
    results (:func:`summarise`). Continues whatever ``out`` holds (see the module's docstring).

    Parameters
    ----------
    config : DistillConfig
        Shared by every run; each run replaces ``loss`` and ``seed``.
    exp : ExperimentConfig
    out : path
        The experiment's folder (:class:`ExperimentDir`).
    preset : str, optional
        Recorded in the plan and in each run's ``config.json``.
    prepared : Prepared, optional
        :func:`~.prepare.prepare`'s output for ``config`` (tests, notebooks); prepared here otherwise.
    progress : bool
        Progress bars (training, generation).
    report : callable, optional
        Receives one line per run and per step-0 student (default: print to stderr).
    on_step : callable, optional
        ``on_step(loss, seed, metrics_line)`` after every training step (a seam for tests).

    Raises
    ------
    DistillError
        The plan in ``out`` differs; a loss needs one shared tokenizer and the two differ (before
        anything trains); a run fails (its message).
    KeyboardInterrupt
        Ctrl-C: a run stopped at its checkpoint, or scoring interrupted; what is finished stays.
    """
    from .loop import train
    from .prepare import check_shared_tokenizer, prepare
    from .student import build_student
    from ..zoo.hf import transformers_progress
    from ..zoo.loader import load

    say = report or (lambda line: print(line, file=sys.stderr, flush=True))
    folder = ExperimentDir(out)
    folder.check(config)
    base = config.replace(loss=exp.losses[0], seed=exp.seeds[0])
    prep = prepare(base, progress=progress) if prepared is None else dataclasses.replace(prepared, config=base)
    for loss in exp.losses:  # before anything is written
        check_shared_tokenizer(config.replace(loss=loss), prep.teacher_bytes, prep.student_bytes)
    folder.start(config, exp, preset, {"answers": prep.answers_fingerprint, "teacher_cache": prep.cache.fingerprint})
    eval_ids = [ex.prompt.id for ex in prep.eval]
    todo = exp.runs()
    for k, (loss, seed) in enumerate(todo, 1):
        cfg = config.replace(loss=loss, seed=seed)
        # the student before training: once per init (per seed for the small random student)
        key = step0_key(cfg)
        if not _scored(folder.step0(key), 0, eval_ids):
            rec = score_student(build_student(cfg, prep.student_tokenizer, prep.V_s, progress=progress), prep, cfg,
                                step=0, batch_size=exp.generate_batch_size, progress=progress,
                                desc=f"answers (step 0, {key})")
            folder.write_step0(key, rec)
            say(f"step 0 ({key}): scored the untrained student on {len(eval_ids)} held-out prompts in "
                f"{rec['seconds']:.1f} s: {_brief(rec)}")
        # the run: trained (or resumed), then its final checkpoint scored
        run, head = folder.run(loss, seed), f"[{k}/{len(todo)}] {loss} seed {seed}"
        if _scored(run.heldout(), cfg.max_steps, eval_ids) and run.status().get("state") == "finished":
            say(f"{head}: done already, kept ({run.path})")
            continue
        t0, what = time.perf_counter(), "trained"
        if run.status().get("state") != "finished":
            resume = run.is_run()
            hook = None if on_step is None else (lambda line, loss=loss, seed=seed: on_step(loss, seed, line))
            last = train(cfg, run, resume=resume, preset=preset, progress=progress, prepared=prep, on_step=hook)
            if last["state"] != "finished":  # Ctrl-C: the loop checkpointed and stopped
                raise KeyboardInterrupt
            what = (f"{'resumed and ' if resume else ''}trained {cfg.max_steps} steps in "
                    f"{time.perf_counter() - t0:.1f} s")
        else:
            what = "trained already"
        ckpt = run.latest_checkpoint()
        if ckpt is None or ckpt.name != f"step-{cfg.max_steps:06d}":
            raise DistillError(f"{run.path} is finished but holds no checkpoint of its last step ({cfg.max_steps}): "
                               f"delete the run's folder and continue the experiment (it is trained again)")
        with transformers_progress(False):
            loaded = load(ckpt, progress=False)
        rec = score_student(loaded.model, prep, cfg, step=cfg.max_steps, checkpoint=ckpt.name,
                            batch_size=exp.generate_batch_size, progress=progress, desc=f"answers ({loss} seed {seed})")
        run.write_heldout(rec)
        say(f"{head}: {what}; scored on {len(eval_ids)} held-out prompts in {rec['seconds']:.1f} s: {_brief(rec)} "
            f"({run.path})")
    results = summarise(folder, exp, eval_ids=eval_ids)
    folder.write_results(results)
    return results


def _brief(rec: dict[str, Any]) -> str:
    """A scores record in a few words: CE, ULD and F1 means over the prompts."""
    import numpy as np

    from .scores import METRICS

    parts = []
    for key in ("ce", "uld", "f1"):
        m, v = METRICS[key], np.nanmean(np.asarray(rec["metrics"][key], dtype=float))
        parts.append(f"{m.label} {v * m.scale:.{m.digits}f}{'%' if m.unit == '%' else ''}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------- the results


def summarise(folder: ExperimentDir | str | os.PathLike, exp: ExperimentConfig,
              eval_ids: list[str] | None = None) -> dict[str, Any]:
    """The results of an experiment's written scores: per loss and metric, the mean over seeds and
    prompts with its interval, the step-0 value and the change from it (paired, per seed), and
    the paired difference against the baseline (:mod:`.bootstrap`, the method named in the
    result); per metric a plain statement of which differences are inside the noise.

    Returns
    -------
    dict
        ``{"format", "experiment", "bootstrap", "metrics": {key: {label, unit, higher_is_better,
        description, n_prompts, statement}}, "rows": [{loss, metric, mean, low, high, per_seed,
        step0, step0_low, step0_high, change, change_low, change_high, vs, diff, diff_low,
        diff_high, inside_noise, n_seeds, n_prompts}], "runs": [...]}``; values unscaled
        (fractions for %); the baseline's own row has no ``diff``.

    Raises
    ------
    DistillError
        A run or a step-0 student of ``exp`` has no scores yet.
    """
    import numpy as np

    from .bootstrap import METHOD, Draws, finite_prompts, interval, paired
    from .scores import METRICS

    folder = folder if isinstance(folder, ExperimentDir) else ExperimentDir(folder)
    plan = folder.plan() or {}
    config = DistillConfig.from_dict({**plan.get("config", {}), "loss": exp.losses[0], "seed": exp.seeds[0]})
    final, start, runs = {}, {}, []
    for loss, seed in exp.runs():
        rec = folder.run(loss, seed).heldout()
        key = step0_key(config.replace(seed=seed))
        rec0 = folder.step0(key)
        if not _scored(rec, config.max_steps, eval_ids) or not _scored(rec0, 0, eval_ids):
            raise DistillError(f"{folder.path}: {run_name(loss, seed)} is not scored yet: run the experiment to the "
                               f"end")
        eval_ids = rec["prompts"]
        if rec.get("references") != rec0.get("references"):
            raise DistillError(f"{folder.path}: {run_name(loss, seed)} was scored against other teacher answers than "
                               f"the student before training ({key}): the data changed between runs. Start the "
                               f"experiment again in another --out")
        final[loss, seed], start[seed] = rec, rec0
        metrics = folder.run(loss, seed).metrics()
        runs.append({"loss": loss, "seed": seed, "run_dir": f"{ExperimentDir.RUNS}/{run_name(loss, seed)}",
                     "checkpoint": rec["checkpoint"], "step0": key,
                     "train_s": metrics[-1].get("elapsed_s") if metrics else None})
    S, rows, about = len(exp.seeds), [], {}
    for key, m in METRICS.items():
        if not all(key in r["metrics"] for r in [*final.values(), *start.values()]):
            continue  # a score these records do not have (the reference ones without --data references)
        X = {loss: np.array([final[loss, s]["metrics"][key] for s in exp.seeds], dtype=float) for loss in exp.losses}
        X0 = np.array([start[s]["metrics"][key] for s in exp.seeds], dtype=float)  # (S, N) step 0, per seed
        keep = finite_prompts(X0, *X.values())
        X, X0 = {loss: x[:, keep] for loss, x in X.items()}, X0[:, keep]
        N = int(keep.sum())
        draws = Draws.random(S, N, exp.resamples, exp.bootstrap_seed) if N else None
        base = X[exp.baseline]
        for loss in exp.losses:
            row: dict[str, Any] = {"loss": loss, "metric": key, "n_seeds": S, "n_prompts": N, "vs": exp.baseline}
            if draws is None:
                rows.append(row)
                continue
            mean, step0 = interval(X[loss], draws, exp.confidence), interval(X0, draws, exp.confidence)
            change = paired(X[loss], X0, draws, exp.confidence)
            row.update(mean=mean.mean, low=mean.low, high=mean.high, per_seed=X[loss].mean(axis=1).tolist(),
                       step0=step0.mean, step0_low=step0.low, step0_high=step0.high, change=change.mean,
                       change_low=change.low, change_high=change.high)
            if loss != exp.baseline:
                d = paired(X[loss], base, draws, exp.confidence)
                row.update(diff=d.mean, diff_low=d.low, diff_high=d.high, inside_noise=d.contains(0.0))
            rows.append(row)
        about[key] = {"label": m.label, "unit": m.unit, "higher_is_better": m.higher_is_better,
                      "description": m.description, "n_prompts": N,
                      "statement": _statement(m, [r for r in rows if r["metric"] == key], exp)}
    return {
        "format": FORMAT,
        "experiment": {"preset": plan.get("preset"), "losses": list(exp.losses), "seeds": list(exp.seeds),
                       "baseline": exp.baseline, "held_out_prompts": len(eval_ids or []), "prompt_ids": eval_ids,
                       "step0": "per seed" if step0_key(config) != "shared" else "shared",
                       "config": plan.get("config")},
        "bootstrap": {"method": METHOD, "interval": "percentile (numpy.quantile, linear)",
                      "confidence": exp.confidence, "resamples": exp.resamples, "rng_seed": exp.bootstrap_seed,
                      "units": ["seed", "prompt"]},
        "metrics": about,
        "rows": rows,
        "runs": runs,
    }


def number(value: float, digits: int, sign: bool = False) -> str:
    """``value`` with ``digits`` decimals, or in scientific notation when those would show only
    zeros (a small but nonzero difference).

    >>> number(0.12345, 3), number(-0.00004, 3, sign=True), number(0.0, 1)
    ('0.123', '-4.0e-05', '0.0')
    """
    if value != 0 and abs(value) < 0.5 * 10 ** -digits:
        return f"{value:{'+' if sign else ''}.1e}"
    return f"{value:{'+' if sign else ''}.{digits}f}"


def _statement(m: Any, rows: list[dict[str, Any]], exp: ExperimentConfig) -> str:
    """Which losses differ from the baseline on metric ``m`` beyond the noise, in words."""
    others = [r for r in rows if r["loss"] != exp.baseline and "diff" in r]
    head = (f"{m.label} ({'higher' if m.higher_is_better else 'lower'} is better), paired against {exp.baseline} "
            f"at {exp.confidence:.0%}")
    if not others:
        return f"{head}: nothing to compare" + (" (no prompt to measure)" if rows and not rows[0]["n_prompts"] else "")
    unit = {"%": " pp", "[0, 2]": ""}.get(m.unit, f" {m.unit}")

    def said(r: dict[str, Any]) -> str:
        f = lambda v: number(v * m.scale, m.digits, sign=True)  # noqa: E731
        verdict = "better" if (r["diff"] > 0) == m.higher_is_better else "worse"
        return f"{r['loss']} {f(r['diff'])}{unit} [{f(r['diff_low'])}, {f(r['diff_high'])}] ({verdict})"

    inside = [r["loss"] for r in others if r["inside_noise"]]
    outside = [said(r) for r in others if not r["inside_noise"]]
    note = "; one seed: the intervals carry the prompts' noise only" if len(exp.seeds) == 1 else ""
    return (f"{head}: inside the noise (the interval of the difference contains 0): {', '.join(inside) or 'none'}; "
            f"outside: {', '.join(outside) or 'none'}{note}")


#: The columns of results.csv, in order.
CSV_COLUMNS = ("loss", "metric", "unit", "mean", "low", "high", "step0", "step0_low", "step0_high", "change",
               "change_low", "change_high", "vs", "diff", "diff_low", "diff_high", "inside_noise", "n_seeds",
               "n_prompts", "confidence", "resamples", "rng_seed", "method")


def csv_text(results: dict[str, Any]) -> str:
    """``results.csv``: one row per (loss, metric) of :func:`summarise`'s rows, unscaled values
    (fractions for %), empty cells where undefined, the bootstrap's settings and method on every
    row."""
    b = results["bootstrap"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in results["rows"]:
        extra = {"unit": results["metrics"][r["metric"]]["unit"], "confidence": b["confidence"],
                 "resamples": b["resamples"], "rng_seed": b["rng_seed"], "method": "two-stage percentile bootstrap "
                 "(seeds, then prompts; paired differences)"}
        w.writerow(["" if (v := {**r, **extra}.get(c)) is None else
                    (repr(float(v)) if isinstance(v, float) else v) for c in CSV_COLUMNS])
    return buf.getvalue()
