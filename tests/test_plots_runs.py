"""The pictures of distillation runs: plots.plot_run_curves / plot_probe (matplotlib: exports and
notebooks) and their interactive twins charts.chart_run_curves / chart_probe (the Distillation
page), drawn from the frames of uld_explorer.distill.runs (metrics_frame, probe_frame)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from uld_explorer import charts
from uld_explorer.distill import runs
from uld_explorer.distill.rundir import RunDir
from uld_explorer.plots import RUN_COLORS, plot_probe, plot_run_curves

STEPS = 30


@pytest.fixture
def frame(tmp_path) -> pd.DataFrame:
    """metrics_frame of three runs written in the runner's format: ULD alone, CE + ULD, CE alone
    (each logs its own loss parts every step; every run is evaluated every 10 steps)."""
    import json

    rng = np.random.default_rng(0)
    dirs = []
    for name, loss, parts in (("u", "uld", ["uld"]), ("cu", "ce+uld", ["ce", "uld"]), ("c", "ce", ["ce"])):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"config": {"loss": loss, "max_steps": STEPS}}))
        for s in range(STEPS + 1):
            line = {"step": s, "loss": 2 - s / 30, **{p: 2 - s / 30 + rng.normal(0, 0.01) for p in parts}}
            if s % 10 == 0:
                line.update(eval_ce=10 - s / 10, eval_uld=2 - s / 20, eval_top1=s / 100, seen_top1=s / 80)
            RunDir(d).append_metrics(line)
        dirs.append(d)
    return runs.metrics_frame(dirs)


def lines_of(ax) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    return {ln.get_label(): (ln.get_xdata(), ln.get_ydata(), ln.get_color()) for ln in ax.get_lines()}


def test_run_curves_one_panel_per_metric_one_colour_per_run(frame):
    metrics = ["ce", "uld", "eval_uld", "eval_top1", "seen_top1"]
    fig = plot_run_curves(frame, metrics)
    axes = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in axes] == [runs.METRICS[m][0] for m in metrics]
    assert len(fig.axes) == 6 and not fig.axes[5].get_visible()  # a 3 x 2 grid, the last cell empty
    colors = {"u (uld)": RUN_COLORS[0], "cu (ce+uld)": RUN_COLORS[1], "c (ce)": RUN_COLORS[2]}
    for ax, metric in zip(axes, metrics):
        drawn = lines_of(ax)
        owners = {"ce": {"cu (ce+uld)", "c (ce)"}, "uld": {"u (uld)", "cu (ce+uld)"}}.get(metric, set(colors))
        assert set(drawn) == owners, metric  # a run's training parts are those of its own loss
        for label, (x, y, color) in drawn.items():
            run = label.split()[0]
            want = frame[(frame["run"] == run) & (frame["metric"] == metric)].sort_values("step")
            np.testing.assert_array_equal(x, want["step"])
            np.testing.assert_allclose(y, want["value"])
            assert color == colors[label]
            assert (ax.get_lines()[0].get_marker() == "o") == metric.startswith(("eval_", "seen_"))
    for ax in axes[3:]:
        assert isinstance(ax.yaxis.get_major_formatter(), PercentFormatter)
        assert ax.get_ylim()[0] == 0
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == list(colors)  # the runs' order
    assert all(a.get_xlabel() == "step (optimizer updates)" for a in axes[-2:])


def test_run_curves_default_metrics_and_given_axes(frame):
    fig = plot_run_curves(frame[frame["metric"].isin(["eval_top1", "loss"])])
    assert [a.get_title() for a in fig.axes] == [runs.METRICS["loss"][0], runs.METRICS["eval_top1"][0]]  # METRICS' order
    one = Figure().subplots()
    assert plot_run_curves(frame, ["uld"], ax=one) is one.figure
    assert set(lines_of(one)) == {"u (uld)", "cu (ce+uld)"} and one.get_legend() is not None
    pair = Figure().subplots(1, 2)
    plot_run_curves(frame, ["ce", "eval_ce"], ax=pair)
    assert [a.get_title() for a in pair] == [runs.METRICS["ce"][0], runs.METRICS["eval_ce"][0]]
    with pytest.raises(ValueError, match="one Axes per metric"):
        plot_run_curves(frame, ["ce", "uld"], ax=one)
    with pytest.raises(ValueError, match="no metric to plot"):
        plot_run_curves(frame.iloc[:0])


def test_run_curves_say_when_a_metric_has_no_values_yet(frame):
    fig = plot_run_curves(frame, ["ce", "hybrid"])
    assert [t.get_text() for t in fig.axes[1].texts] == ["no values yet"]


def test_chart_run_curves_embeds_the_frame_with_the_same_colours(frame):
    metrics = ["ce", "uld", "eval_top1"]
    spec = charts.chart_run_curves(frame, metrics).to_dict()
    assert [p["title"] for p in spec["concat"]] == [runs.METRICS[m][0] for m in metrics]
    rows = pd.concat([pd.DataFrame(d) for d in spec["datasets"].values()], ignore_index=True)
    want = frame[frame["metric"].isin(metrics)]
    assert len(rows) == len(want) and set(rows["label"]) == {"u (uld)", "cu (ce+uld)", "c (ce)"}
    scale = spec["concat"][0]["layer"][0]["encoding"]["color"]["scale"]
    assert scale == {"domain": ["u (uld)", "cu (ce+uld)", "c (ce)"], "range": list(RUN_COLORS[:3])}
    top1 = spec["concat"][2]["layer"][0]["encoding"]["y"]
    assert top1["axis"]["format"] == ".0%" and top1["scale"]["zero"] is True
    assert charts.chart_run_curves(frame.iloc[:0], ["ce"]).to_dict()  # no values yet: still a chart


@pytest.fixture
def probe() -> pd.DataFrame:
    teacher = [("The", 0.94), ("France", 0.02), ("As", 0.018), (" Paris", 0.006)]
    student = [("\n", 1e-4), ("ADDR", 5e-5), ("東京", 4e-5), ("$x$", 3e-5)]
    rows = [(12, side, i + 1, t, p) for side, toks in (("teacher", teacher), ("student", student))
            for i, (t, p) in enumerate(toks)]
    return pd.DataFrame(rows, columns=["step", "side", "rank", "token", "prob"])


def test_plot_probe_bars_are_the_probabilities_on_one_axis(probe):
    fig = plot_probe(probe)
    ax_t, ax_s = fig.axes
    assert (ax_t.get_title(loc="left"), ax_s.get_title(loc="left")) == ("teacher", "student")
    assert fig.get_suptitle() == "the probe's next token, step 12"
    for ax, side in ((ax_t, "teacher"), (ax_s, "student")):
        want = probe[probe["side"] == side]
        np.testing.assert_allclose([b.get_width() for b in ax.patches], want["prob"])
        assert [t.get_text() for t in ax.get_yticklabels()][0] == repr(want["token"].iloc[0])
        assert ax.get_ylim()[0] > ax.get_ylim()[1]  # rank 1 on top
        assert ax.get_xlim() == pytest.approx((0, 0.94 * 1.25))  # one axis: the teacher's top sets it
    assert "'$x$'" in [t.get_text() for t in ax_s.get_yticklabels()]  # no mathtext
    pair = Figure().subplots(1, 2)
    assert plot_probe(probe, ax=pair, title="t").get_suptitle() == "t"
    with pytest.raises(ValueError, match="pair of Axes"):
        plot_probe(probe, ax=[pair[0]])
    with pytest.raises(ValueError, match="not recorded a probe yet"):
        plot_probe(probe.iloc[:0])


def test_chart_probe_sorts_by_rank_and_shares_the_probability_axis(probe):
    spec = charts.chart_probe(probe).to_dict()
    assert spec["title"] == "the probe's next token, step 12"
    enc = spec["spec"]["layer"][0]["encoding"]
    assert enc["y"]["sort"] == {"field": "rank", "op": "min", "order": "ascending"}
    assert enc["x"]["scale"]["domain"] == pytest.approx([0, 0.94 * 1.25])
    (rows,) = spec["datasets"].values()
    assert [r["token_shown"] for r in rows][:2] == ["'The'", "'France'"]
