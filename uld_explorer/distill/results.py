"""An experiment's results read back: the experiments under a folder, their results as frames for
tables and pictures, and what they say in words.

:func:`find_experiments` lists the experiment folders (an ``experiment.json`` each,
:class:`~.experiment.ExperimentDir`) under a runs folder; :func:`results_frame` turns a
``results.json`` (:func:`~.experiment.summarise`) into one long frame, one row per (loss, metric),
values in display units (``%`` for fractions, :data:`~.scores.METRICS`' ``scale``), with the
verdict of each paired difference (better, worse, or inside the noise); :func:`results_table` the
paper-like table (losses as rows, ``mean ± half-width`` per metric); :func:`read_results` the
reading, from the numbers only. The Experiments page, the notebooks and the CLI read them;
:func:`~uld_explorer.charts.chart_forest` and :func:`~uld_explorer.plots.plot_forest` draw the
differences. Importable without torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DistillError
from .experiment import FORMAT, ExperimentDir, number
from .scores import METRICS

__all__ = ["ExperimentInfo", "VERDICTS", "find_experiments", "load_results", "read_results", "results_frame",
           "results_table"]

#: What every results.json holds (:func:`~.experiment.summarise`), and every row of its ``rows``.
RESULTS_KEYS = ("format", "experiment", "bootstrap", "metrics", "rows", "runs")
ROW_KEYS = ("loss", "metric", "n_seeds", "n_prompts", "vs")

#: How a paired difference against the baseline reads (the forest plot's colours follow them).
VERDICTS = ("better", "worse", "inside the noise")


@dataclass(frozen=True)
class ExperimentInfo:
    """One experiment folder: its name and path, what it compares, and whether its results exist.

    ``runs_done`` / ``runs_planned``: runs with held-out scores / every (loss, seed) of its plan.
    """

    name: str
    path: Path
    preset: str | None
    losses: tuple[str, ...]
    seeds: tuple[int, ...]
    has_results: bool
    runs_done: int
    runs_planned: int
    created: float


def find_experiments(root: str | os.PathLike) -> list[ExperimentInfo]:
    """The experiment folders directly under ``root`` (and ``root`` itself if it is one), newest
    first; a folder whose plan cannot be read is left out."""
    from .errors import DistillError

    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if not (path / ExperimentDir.PLAN).is_file():
            continue
        folder = ExperimentDir(path)
        try:
            plan = folder.plan() or {}
        except DistillError:
            continue
        exp = plan.get("experiment") or {}
        losses, seeds = tuple(exp.get("losses", ())), tuple(exp.get("seeds", ()))
        done = sum(folder.run(loss, seed).heldout() is not None for loss in losses for seed in seeds)
        found.append(ExperimentInfo(path.name, path, plan.get("preset"), losses, seeds,
                                    (path / ExperimentDir.RESULTS_JSON).is_file(), done, len(losses) * len(seeds),
                                    float(plan.get("created") or 0.0)))
    return sorted(found, key=lambda e: e.created, reverse=True)


def load_results(folder: str | os.PathLike) -> dict[str, Any] | None:
    """An experiment folder's ``results.json``, checked: None when it has none yet.

    Raises
    ------
    DistillError
        The file is not JSON, is of another format (another version of the tool), lacks what
        :func:`~.experiment.summarise` writes, or names a metric this version does not know; the
        message names the file and how to write it again.
    """
    import json

    path = Path(folder) / ExperimentDir.RESULTS_JSON
    again = f"write it again with: uld-explorer experiment --out {Path(folder)} (finished runs are kept)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise DistillError(f"{path} is not readable JSON ({err}): {again}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise DistillError(f"{path} is not a results file of this version (format {found!r}, expected {FORMAT!r}): "
                           f"{again}")
    missing = [k for k in RESULTS_KEYS if k not in data]
    bad_rows = [i for i, r in enumerate(data.get("rows") or []) if not isinstance(r, dict)
                or any(k not in r for k in ROW_KEYS)]
    unknown = sorted({str(r["metric"]) for r in data.get("rows") or [] if isinstance(r, dict) and "metric" in r
                      and r["metric"] not in METRICS and r["metric"] not in (data.get("metrics") or {})})
    if missing or bad_rows or unknown or not isinstance(data["rows"], list):
        what = "; ".join(x for x in (missing and f"missing {', '.join(missing)}",
                                     bad_rows and f"incomplete rows {bad_rows[:5]}",
                                     unknown and f"unknown metrics {', '.join(unknown)}") if x)
        raise DistillError(f"{path} is damaged ({what or 'rows is not a list'}): {again}")
    return data


def _verdict(row: dict[str, Any], higher_is_better: bool) -> str | None:
    if "diff" not in row:
        return None
    if row.get("inside_noise"):
        return "inside the noise"
    return "better" if (row["diff"] > 0) == higher_is_better else "worse"


def results_frame(results: dict[str, Any]):
    """``results.json``'s rows as one long pandas frame, in display units.

    Returns
    -------
    DataFrame
        One row per (loss, metric): ``loss``, ``metric`` (the key), ``label``, ``unit``,
        ``higher_is_better``, ``mean``, ``low``, ``high`` (the mean over seeds and prompts and its
        interval), ``step0``, ``step0_low``, ``step0_high``, ``change``, ``change_low``,
        ``change_high`` (from step 0, paired), ``vs`` (the baseline), ``diff``, ``diff_low``,
        ``diff_high`` (paired against the baseline; NaN on the baseline's own row),
        ``verdict`` (:data:`VERDICTS`, None on the baseline's row), ``n_seeds``, ``n_prompts``.
        Fractions (``%`` metrics) are multiplied by 100.
    """
    import pandas as pd

    cols = ["loss", "metric", "label", "unit", "higher_is_better", "mean", "low", "high", "step0", "step0_low",
            "step0_high", "change", "change_low", "change_high", "vs", "diff", "diff_low", "diff_high", "verdict",
            "n_seeds", "n_prompts"]
    rows = []
    for r in results["rows"]:
        about = results["metrics"][r["metric"]]
        scale = METRICS[r["metric"]].scale if r["metric"] in METRICS else 1.0
        scaled = {k: (r[k] * scale if isinstance(r.get(k), (int, float)) else float("nan"))
                  for k in ("mean", "low", "high", "step0", "step0_low", "step0_high", "change", "change_low",
                            "change_high", "diff", "diff_low", "diff_high")}
        rows.append({"loss": r["loss"], "metric": r["metric"], "label": about["label"], "unit": about["unit"],
                     "higher_is_better": about["higher_is_better"], **scaled, "vs": r.get("vs"),
                     "verdict": _verdict(r, about["higher_is_better"]), "n_seeds": r.get("n_seeds"),
                     "n_prompts": r.get("n_prompts")})
    return pd.DataFrame(rows, columns=cols)


def _cell(mean: float, low: float, high: float, digits: int, difference: bool = False) -> str:
    """``mean ± half-width``; a difference: ``mean [low, high]`` (a percentile interval is not
    symmetric, and whether it holds 0 must read off the cell)."""
    if mean != mean:  # NaN: nothing measured
        return "-"
    if difference:
        return f"{number(mean, digits, True)} [{number(low, digits, True)}, {number(high, digits, True)}]"
    return f"{number(mean, digits)} ± {number((high - low) / 2, digits)}"


def results_table(results: dict[str, Any], *, differences: bool = False):
    """The paper-like table: losses as rows (and ``step 0`` first), metrics as columns, each cell
    ``mean ± half the interval's width`` in display units; ``differences=True``: the paired
    differences against the baseline instead, ``mean [low, high]``, ``*`` where the interval
    excludes 0."""
    import pandas as pd

    frame = results_frame(results)
    metrics = list(dict.fromkeys(frame["metric"]))
    titles = {m: f"{frame[frame.metric == m].label.iloc[0]} ({frame[frame.metric == m].unit.iloc[0]})"
              for m in metrics}
    digits = {m: METRICS[m].digits if m in METRICS else 3 for m in metrics}
    table: dict[str, dict[str, str]] = {}
    for r in frame.itertuples():
        if differences:
            if not isinstance(r.verdict, str):  # the baseline's own row
                continue
            star = "" if r.verdict == "inside the noise" else "*"
            table.setdefault(r.loss, {})[titles[r.metric]] = _cell(r.diff, r.diff_low, r.diff_high,
                                                                     digits[r.metric], True) + star
        else:
            if "step 0" not in table or titles[r.metric] not in table["step 0"]:
                table.setdefault("step 0", {})[titles[r.metric]] = _cell(r.step0, r.step0_low, r.step0_high,
                                                                         digits[r.metric])
            table.setdefault(r.loss, {})[titles[r.metric]] = _cell(r.mean, r.low, r.high, digits[r.metric])
    return pd.DataFrame.from_dict(table, orient="index", columns=[titles[m] for m in metrics])


def read_results(results: dict[str, Any]) -> list[str]:
    """What an experiment measured, in plain words (Markdown paragraphs), from its numbers only:
    the setting, then per metric which losses beat the baseline beyond the noise, which did worse,
    and which are inside the noise; "no difference" is said as such."""
    exp, boot = results["experiment"], results["bootstrap"]
    frame = results_frame(results)
    base = exp["baseline"]
    paras = [f"{len(exp['losses'])} losses × {len(exp['seeds'])} seeds of the `{exp.get('preset') or 'custom'}` "
             f"setting, measured on {exp['held_out_prompts']} held-out prompts (never trained on); intervals: "
             f"{boot['confidence']:.0%} {boot['method']} ({boot['resamples']:,} resamples). Each loss is compared "
             f"with `{base}` on the same seeds and prompts (a paired difference)."]
    for metric, part in frame.groupby("metric", sort=False):
        others = part[part.verdict.notna()]
        if not len(others):
            continue
        label, unit = part.label.iloc[0], part.unit.iloc[0]
        if not part[["mean", "low", "high", "step0"]].abs().to_numpy().any():
            paras.append(f"**{label}**: every student scores 0, before and after training: nothing to compare "
                         f"(no student's answer scores above 0 against the teacher's).")
            continue
        unit = " pp" if unit == "%" else ("" if unit.startswith("[") else f" {unit}")
        digits = METRICS[metric].digits if metric in METRICS else 3
        said = {v: [f"`{r.loss}` ({number(r.diff, digits, True)}{unit}, interval {number(r.diff_low, digits, True)} "
                    f"to {number(r.diff_high, digits, True)})" for r in others.itertuples() if r.verdict == v]
                for v in VERDICTS}
        better = "higher" if part.higher_is_better.iloc[0] else "lower"
        text = f"**{label}** ({better} is better): "
        parts = []
        if said["better"]:
            parts.append(f"better than `{base}` beyond the noise: {', '.join(said['better'])}")
        if said["worse"]:
            parts.append(f"worse than `{base}` beyond the noise: {', '.join(said['worse'])}")
        if said["inside the noise"]:
            parts.append(f"no difference from `{base}` that the noise allows us to see: "
                         f"{', '.join(said['inside the noise'])}")
        paras.append(text + "; ".join(parts) + ".")
    return paras
