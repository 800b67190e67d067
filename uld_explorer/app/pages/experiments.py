"""Experiments: does ULD help? Losses x seeds, measured on held-out prompts, with intervals.

UI only: widgets, layout and words. An experiment is an ``uld-explorer experiment`` folder (its
runs, its step-0 scores, its ``results.json``) under the runs directory; everything shown is read
back by ``uld_explorer.distill.results`` (``find_experiments``, ``results_frame``,
``results_table``, ``read_results``) and ``uld_explorer.distill.runs`` (the runs' curves), and
drawn by ``uld_explorer.charts`` (on the page) and ``uld_explorer.plots`` (exports).
"""

from __future__ import annotations

import streamlit as st

from uld_explorer import charts, plots
from uld_explorer.app.common import export_figure, export_table, show_error, sync_url, url_notes, view_state
from uld_explorer.app.views import EXPERIMENTS
from uld_explorer.distill import results as experiments
from uld_explorer.distill import runs

RUNS_DIR = runs.default_runs_dir()
#: The held-out curves drawn per run (every run is evaluated on them, whatever it trains on).
CURVES = ["eval_ce", "eval_uld", "eval_top1"]
START = ("uld-explorer experiment --preset cpu-pretrained --losses ce,ce+uld --seeds 0,1,2 "
         f"--out {RUNS_DIR / 'does-uld-help'}")

PARAMS = EXPERIMENTS
view_state(PARAMS)
ss = st.session_state

st.title("Experiments: does ULD help? Losses × seeds, with intervals")
url_notes()
st.markdown(
    "The paper's claim is about small effects (about +2 F1 on QA with CE + 1.5·ULD against CE alone, "
    "smaller or negative on other tasks), so one run proves nothing. An experiment trains every loss "
    "with several seeds and measures each student **on prompts it never trained on**, before training and "
    "after: the teacher's answer under the student (CE), how often the student's top token is the "
    "teacher's, ULD and KL to the teacher, and the student's own greedy answer against the teacher's "
    "(token F1, exact match, ROUGE-L). Every number comes with a bootstrap interval over seeds and prompts, "
    "and each loss is compared with CE on the same seeds and prompts."
)

found = experiments.find_experiments(RUNS_DIR)
if not found:
    st.info(f"No experiment in `{RUNS_DIR.resolve()}` yet. Start one from a terminal, e.g. `{START}` "
            f"(resumable: run it again to continue), then come back.", icon=":material/science:")
    sync_url(PARAMS)
    st.stop()

names = [e.name for e in found]
by_name = {e.name: e for e in found}
if ss.experiment not in names:
    if ss.experiment:
        st.caption(f":material/link_off: experiment {ss.experiment!r} is not in {RUNS_DIR}: showing {names[0]}")
    ss.experiment = names[0]
st.selectbox("experiment", names, key="experiment",
             format_func=lambda n: (f"{n} ({by_name[n].preset or 'custom'}: {', '.join(by_name[n].losses)} × "
                                    f"{len(by_name[n].seeds)} seeds, {by_name[n].runs_done}/{by_name[n].runs_planned} "
                                    f"runs scored)"))
info = by_name[ss.experiment]

try:  # everything read off results.json, before anything is drawn
    results = experiments.load_results(info.path)
    if results is not None:
        frame = experiments.results_frame(results)
        reading = experiments.read_results(results)
        table, differences = experiments.results_table(results), experiments.results_table(results, differences=True)
except Exception as err:  # noqa: BLE001 - never a traceback on the page
    show_error(err, f"read {info.path}'s results")
    sync_url(PARAMS)
    st.stop()
if results is None:
    st.warning(f"{info.name} has {info.runs_done} of {info.runs_planned} runs scored and no results yet: continue it "
               f"with `uld-explorer experiment --out {info.path}` (finished runs are not redone).",
               icon=":material/hourglass:")
    sync_url(PARAMS)
    st.stop()

st.subheader("What it measured")
st.info("\n\n".join(reading), icon=":material/lightbulb:")

st.subheader("Held-out scores, mean ± half the interval")
st.dataframe(table, width="stretch")
st.caption("Rows: the student before training (step 0), then each loss after training; mean over seeds and "
           "prompts. % columns are fractions × 100; the exact bounds are in the export and in results.json.")
st.subheader(f"Paired difference against {results['experiment']['baseline']}")
st.dataframe(differences, width="stretch")
st.caption("Each loss minus the baseline on the same seeds and prompts, with its interval [low, high]; * marks an "
           "interval that excludes 0 (a difference the noise does not explain).")
compared = frame["verdict"].notna().any()
if compared:
    st.altair_chart(charts.chart_forest(frame), width="content")
else:
    st.caption("One loss only: nothing to compare it with (add a loss to the experiment for a forest plot).")
c = st.columns([1, 1, 4])
with c[0]:
    if compared:
        export_figure(lambda: plots.plot_forest(frame), f"forest_{info.name}", "forest")
with c[1]:
    export_table(frame, {**results["experiment"], "bootstrap": results["bootstrap"]}, f"results_{info.name}",
                 "results")

st.subheader("Per-seed held-out curves")
run_dirs = [info.path / r["run_dir"] for r in results["runs"]]
curves = runs.metrics_frame(run_dirs, CURVES)
if len(curves):
    st.altair_chart(charts.chart_run_curves(curves, CURVES), width="content")
    export_figure(lambda: plots.plot_run_curves(curves, CURVES), f"curves_{info.name}", "curves")
else:
    st.caption("The runs recorded no held-out curve (their eval_every is beyond their steps).")
st.caption(f"Bootstrap: {results['bootstrap']['method']}; {results['bootstrap']['resamples']:,} resamples, "
           f"rng seed {results['bootstrap']['rng_seed']}. Folder: `{info.path}`.")
sync_url(PARAMS)
