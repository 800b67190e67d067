"""Distillation: train a student from a teacher under CE, ULD, CE + ULD, KL or the hybrid, and
watch it learn, live.

UI only: widgets, layout and words. A run is an ordinary ``uld-explorer distill`` process that
``uld_explorer.distill.launch`` starts, stops and resumes in the background (it survives a page
reload); everything shown is read back from the run directories by ``uld_explorer.distill.runs``
(``list_runs``, ``runs_frame``, ``metrics_frame``, ``probe_frame``) over
``uld_explorer.distill.rundir.RunDir`` (cached: a poll parses only new lines), read in words by
``uld_explorer.distill.reading.read_runs``, and drawn by ``uld_explorer.charts`` (on the page)
and ``uld_explorer.plots`` (exports). The loss menu is the loss registry
(``uld_explorer.distill.losses.LOSSES``). Runs started from the command line show up here too.
"""

from __future__ import annotations

import streamlit as st

from uld_explorer import charts, plots
from uld_explorer.app.common import export_figure, export_table, show_error, sync_url, url_notes, view_state
from uld_explorer.app.views import DISTILL
from uld_explorer.distill import launch, reading, runs
from uld_explorer.distill.config import PRESETS, DistillConfig, preset
from uld_explorer.distill.losses import LOSSES, PARTS
from uld_explorer.distill.rundir import RunDir
from uld_explorer.text import ALIGNMENTS

RUNS_DIR = runs.default_runs_dir()
POLL_S = 2.0  # the live parts re-read the run directories this often while a run is going
ACTIVE = ("running", "starting")
OVERLAID_BY_DEFAULT = 4  # the most recent runs overlaid when the URL names none
TRAIN_METRICS = list(PARTS)  # per step, the parts of each run's own loss
EVAL_METRICS = ["eval_ce", "eval_uld", "eval_top1", "seen_top1"]  # every run, on eval steps
#: The form's fields: widget key -> DistillConfig field.
FORM_FIELDS = {"new_loss": "loss", "new_max_steps": "max_steps", "new_eval_every": "eval_every", "new_seed": "seed",
               "new_uld_weight": "uld_weight", "new_teacher_temperature": "teacher_temperature",
               "new_student_temperature": "student_temperature", "new_alignment": "alignment"}

# The view in the URL: the selected run, the overlaid runs (comma-separated; "" = the most recent
# few) and the probe's step (-1 = the latest, followed live).
PARAMS = DISTILL
view_state(PARAMS)
ss = st.session_state


def form_from_preset(name: str, keep: tuple[str, ...] = ("new_loss",)) -> None:
    """Fill the form with preset ``name``'s values (but the fields in ``keep``: a preset does
    not choose the loss)."""
    cfg = preset(name)
    for key, field in FORM_FIELDS.items():
        if key not in keep or key not in ss:
            ss[key] = getattr(cfg, field)


if "new_preset" not in ss:
    ss.new_preset = "cpu-demo"
    form_from_preset("cpu-demo")
    ss.new_name = ""


def notice(kind: str, text: str) -> None:
    """A message for the next run of the page (callbacks cannot place one where it belongs)."""
    ss._notice = (kind, text)


def start_clicked() -> None:
    overrides = {field: ss[key] for key, field in FORM_FIELDS.items()}
    name = ss.new_name.strip() or runs.new_run_name(ss.new_loss, RUNS_DIR)
    try:
        run_dir, _ = launch.start_new_run(RUNS_DIR, name, ss.new_preset, **overrides)
    except (ValueError, TypeError, OSError) as err:
        notice("error", f"Could not start the run: {err}")
        return
    notice("success", f"Started **{run_dir.name}** ({ss.new_loss}, {ss.new_max_steps} steps) in the background: "
                      f"it loads for a few seconds, then its curves grow below. It keeps running if you close "
                      f"or reload this page.")
    ss.run = run_dir.name
    ss.overlay_pick = [*[n for n in ss.get("overlay_pick", []) if n != run_dir.name], run_dir.name]
    ss.overlay = ",".join(ss.overlay_pick)
    ss.probe_step = -1
    ss.new_name = ""


def stop_clicked(name: str) -> None:
    try:
        asked = launch.stop_run(RUNS_DIR / name)
    except (ValueError, OSError) as err:
        notice("error", f"Could not stop {name}: {err}")
        return
    if asked:
        notice("info", f"Asked **{name}** to stop: it finishes its step, saves a checkpoint and exits "
                       f"(state *stopped*; *Resume* continues it).")
    else:
        notice("warning", f"{name} is not running any more.")


def resume_clicked(name: str) -> None:
    up_to = ss[f"resume_to_{name}"]  # read now: a value typed just before the click counts
    try:
        launch.resume_run(RUNS_DIR / name, max_steps=int(up_to))
    except (ValueError, OSError) as err:
        notice("error", f"Could not resume {name}: {err}")
        return
    notice("success", f"Resuming **{name}** from its last checkpoint, up to step {int(up_to)}.")
    ss.overlay_pick = [*ss.get("overlay_pick", [])] + ([name] if name not in ss.get("overlay_pick", []) else [])
    ss.overlay = ",".join(ss.overlay_pick)


def overlay_changed() -> None:
    ss.overlay = ",".join(ss.overlay_pick)


def probe_changed(last: int) -> None:
    ss.probe_step = -1 if ss.probe_pick == last else int(ss.probe_pick)


def fmt(x: float | None, spec: str = ".3f") -> str:
    return "–" if x is None or x != x else format(x, spec)


# ---------------------------------------------------------------------------------- sidebar: a new run
with st.sidebar:
    st.header("New run")
    st.selectbox("preset", list(PRESETS), key="new_preset", on_change=lambda: form_from_preset(ss.new_preset),
                 help="; ".join(f"{k}: " + ", ".join(f"{a}={b}" for a, b in v.items()) for k, v in PRESETS.items()))
    with st.form("new_run", border=False):
        st.radio("loss", list(LOSSES), key="new_loss", captions=[loss.description for loss in LOSSES.values()],
                 help="; ".join(f"{k}: {loss.formula}" for k, loss in LOSSES.items()))
        c = st.columns(2)
        c[0].number_input("max steps", 1, 1_000_000, step=10, key="new_max_steps",
                          help=DistillConfig.help("max_steps"))
        c[1].number_input("eval every", 1, 1_000_000, step=5, key="new_eval_every",
                          help=DistillConfig.help("eval_every"))
        c = st.columns(2)
        c[0].number_input("seed", 0, 2**32 - 1, step=1, key="new_seed", help=DistillConfig.help("seed"))
        c[1].number_input("λ (uld_weight)", 0.0, 100.0, step=0.1, key="new_uld_weight", format="%.2f",
                          help=DistillConfig.help("uld_weight") + " (used by " + ", ".join(
                              k for k, loss in LOSSES.items() if "uld_weight" in loss.weights) + " only)")
        c = st.columns(2)
        c[0].number_input("teacher T", 0.05, 20.0, step=0.1, key="new_teacher_temperature", format="%.2f",
                          help=DistillConfig.help("teacher_temperature"))
        c[1].number_input("student T", 0.05, 20.0, step=0.1, key="new_student_temperature", format="%.2f",
                          help=DistillConfig.help("student_temperature"))
        st.radio("alignment", list(ALIGNMENTS), key="new_alignment", horizontal=True,
                 help="; ".join(f"{k}: {v.description}" for k, v in ALIGNMENTS.items()))
        st.text_input("run name", key="new_name", placeholder="automatic: <loss>-<date>-<time>",
                      help=f"One folder name ({runs.RUN_NAME_CHARS}); empty: {runs.new_run_name('uld', RUNS_DIR)} "
                           f"for a uld run started now.")
        st.form_submit_button("Start", type="primary", icon=":material/play_arrow:", on_click=start_clicked,
                              width="stretch", key="start")
    st.caption(f"Runs directory: `{RUNS_DIR.resolve()}` (`${runs.RUNS_ENV}`, else `./runs`). Each run is a "
               f"background `uld-explorer distill` process; its output goes to `log.txt` in its folder.")

# ---------------------------------------------------------------------------------- header
st.title("Distillation: watch a student learn from a teacher")
url_notes()
st.markdown(
    "Train a small student on the teacher's answers to the project's prompts with the loss of your choice, "
    "and follow it live. **CE** learns the teacher's text only; **ULD** (Boizard et al. 2024) matches the "
    "teacher's next-token distributions *sorted*, which needs no shared vocabulary but cannot tell which token "
    "is which; **CE + ULD** is the paper's loss. Every run is evaluated on held-out answers (and on answers it "
    "trains on) by the same measures: CE, ULD and **top-1 agreement**, how often the student's most probable "
    "token is the teacher's. Start a `uld` run and a `ce+uld` run with the same settings and overlay them."
)
if "_notice" in ss:
    kind, text = ss.pop("_notice")
    getattr(st, kind)(text)

def newest_first(found: list) -> list:
    """Runs by start time, newest first (list_runs orders by last write: two running runs would
    swap places at every step)."""
    return sorted(found, key=lambda r: r.created, reverse=True)


all_runs = newest_first(runs.list_runs(RUNS_DIR))
if not all_runs:
    st.info(
        f"No runs in `{RUNS_DIR.resolve()}` yet. Start one with the form on the left (the *cpu-demo* preset "
        f"trains a small student on this machine's CPU), or from a terminal, e.g. "
        f"`uld-explorer distill --preset cpu-demo --loss uld --runs-dir {RUNS_DIR}` and the same with "
        f"`--loss ce+uld`: they show up here as they run.",
        icon=":material/model_training:",
    )
    sync_url(PARAMS)
    st.stop()

names = [r.name for r in all_runs]
by_name = {r.name: r for r in all_runs}
snapshot = {r.name: r.state for r in all_runs}
polling = POLL_S if any(r.state in ACTIVE for r in all_runs) else None


# ---------------------------------------------------------------------------------- the runs table (live)
@st.fragment(run_every=polling)
def runs_table() -> None:
    now = newest_first(runs.list_runs(RUNS_DIR))
    if {r.name: r.state for r in now} != snapshot:
        st.rerun()  # a run appeared or changed state: the whole page follows (buttons, polling)
    table = runs.runs_frame(now)
    shown = table.assign(step=[f"{s} / {m}" for s, m in zip(table["step"], table["max_steps"])])
    st.dataframe(
        shown[["run", "loss", "state", "step", "loss_value", "eval_ce", "eval_uld", "eval_top1", "seen_top1"]],
        hide_index=True, width="stretch",
        column_config={
            "run": st.column_config.TextColumn("run", width="medium"),
            "step": st.column_config.TextColumn("step / max", help="optimizer steps done / the run's max_steps"),
            "loss_value": st.column_config.NumberColumn("last loss", format="%.3f",
                                                        help="the run's own training loss, last step"),
            "eval_ce": st.column_config.NumberColumn("held-out CE", format="%.3f"),
            "eval_uld": st.column_config.NumberColumn("held-out ULD", format="%.3f"),
            "eval_top1": st.column_config.NumberColumn("held-out top-1", format="percent",
                                                       help="student's top token = teacher's, held-out answers"),
            "seen_top1": st.column_config.NumberColumn("seen top-1", format="percent",
                                                       help="the same on answers it trains on"),
        },
    )


st.subheader("Runs")
runs_table()

# ---------------------------------------------------------------------------------- the selected run
if ss.run not in names:
    if ss.run:  # from the URL, or a run removed meanwhile: said, not silently replaced
        st.caption(f":material/link_off: run={ss.run[:40]!r} is not in `{RUNS_DIR}`: showing {names[0]}")
    ss.run = names[0]
c = st.columns([3, 1, 1, 1], vertical_alignment="bottom")
c[0].selectbox("run", names, key="run", format_func=lambda n: f"{n} ({by_name[n].loss})",
               help="The run the buttons act on and whose probe is shown below.")
sel = by_name[ss.run]
c[1].button("Stop", icon=":material/stop:", key="stop", on_click=stop_clicked, args=(sel.name,),
            disabled=sel.state not in ACTIVE or not sel.stoppable, width="stretch",
            help="SIGINT: the run finishes its step, saves a checkpoint and exits (state stopped). Only sent to the "
                 "process the run recorded (its pid, start time and command all match): never to a stale run's pid.")
c[2].number_input("continue up to step", 1, 1_000_000, value=max(sel.max_steps, 1), step=10,
                  key=f"resume_to_{sel.name}", help="A finished run continues only past its max steps.")
c[3].button("Resume", icon=":material/play_arrow:", key="resume", on_click=resume_clicked, args=(sel.name,),
            disabled=sel.state in ACTIVE, width="stretch",
            help="Continue from the last checkpoint (metrics after it are recomputed).")
if sel.message:
    show = {"failed": st.error, "stale": st.warning}.get(sel.state, st.caption)
    show(f"{sel.name}: {sel.message}")
with st.expander(f"log.txt of {sel.name}"):
    st.code(RunDir(sel.path).log_tail(40) or "(no log: a run started from a terminal prints there)", language=None)

# ---------------------------------------------------------------------------------- overlay
if "overlay_pick" not in ss:
    asked = [n for n in ss.overlay.split(",") if n]
    wanted = [n for n in asked if n in by_name]
    ss.overlay_pick = wanted or names[:OVERLAID_BY_DEFAULT]
    missing = [n for n in asked if n not in by_name]
    if missing:  # the URL's overlay names runs that are not here: said, not dropped silently
        st.caption(f":material/link_off: overlay={','.join(missing)[:60]!r} in the URL: not in `{RUNS_DIR}`, left "
                   f"out" + ("" if wanted else f"; overlaying the {len(ss.overlay_pick)} most recent runs"))
ss.overlay_pick = [n for n in ss.overlay_pick if n in by_name]
st.multiselect("runs to overlay", names, key="overlay_pick", on_change=overlay_changed,
               help="Their curves are drawn together, one colour per run.")
overlaid = [by_name[n] for n in ss.overlay_pick]  # in the overlay's order: colours stay with their runs


# ---------------------------------------------------------------------------------- curves, lesson, probe (live)
@st.fragment(run_every=polling)
def live() -> None:
    try:
        curves()
    except Exception as err:  # noqa: BLE001 - never a traceback on the page, at every poll too
        show_error(err, "read the runs' curves")


def curves() -> None:
    if not overlaid:
        st.info("Pick runs to overlay above.", icon=":material/arrow_upward:")
        return
    now = [runs.run_info(r.path) or r for r in overlaid]
    dirs = [r.path for r in now]
    train = runs.metrics_frame(dirs, TRAIN_METRICS)
    evals = runs.metrics_frame(dirs, EVAL_METRICS)
    st.subheader("Training loss, per step")
    train_metrics = [m for m in TRAIN_METRICS if m in ("ce", "uld") or m in set(train["metric"])]
    if len(train):
        st.altair_chart(charts.chart_run_curves(train, train_metrics), width="content")
        st.caption("Each run logs the parts of its own loss on its batch (a CE run has no ULD curve here, a ULD run "
                   "no CE curve); the held-out panels below measure every run on both.")
        export_figure(lambda: plots.plot_run_curves(train, train_metrics), "distill_training", "train_fig")
    else:
        st.caption("No step logged yet: the runs are loading (a few seconds), then step 0 is evaluated first.")
    st.subheader("Held-out and seen answers, per evaluation")
    if len(evals):
        st.altair_chart(charts.chart_run_curves(evals, EVAL_METRICS), width="content")
        st.caption("held-out: answers to prompts the student never trains on; seen: answers it trains on. Top-1 "
                   "agreement: the share of answer positions where the student's most probable token is the "
                   "teacher's (compared as strings).")
        c = st.columns([1, 1, 4])
        with c[0]:
            export_figure(lambda: plots.plot_run_curves(evals, EVAL_METRICS), "distill_eval", "eval_fig")
    else:
        st.caption("No evaluation yet (at step 0, then every *eval every* steps).")
        c = st.columns([1, 1, 4])
    with c[1]:  # every curve of the overlaid runs, training and evaluation
        both = runs.metrics_frame(dirs, [*TRAIN_METRICS, *EVAL_METRICS])
        export_table(both, {"runs_dir": str(RUNS_DIR.resolve()), "runs": [r.name for r in now],
                            "losses": [r.loss for r in now]}, "distill_curves", "curves")

    st.subheader("What the curves say")
    st.info("\n\n".join(reading.read_runs(newest_first(now))), icon=":material/lightbulb:")

    probe(runs.run_info(sel.path) or sel)
    sync_url(PARAMS)


def probe(run: runs.RunInfo) -> None:
    records = RunDir(run.path).probe()
    st.subheader(f"The probe: {run.name}'s next token vs the teacher's")
    if not records:
        st.caption(f"{run.name} has not recorded a probe yet (one per evaluation).")
        return
    steps = [int(p["step"]) for p in records]
    step = ss.probe_step if ss.probe_step in steps else steps[-1]
    if len(steps) > 1:
        ss.probe_pick = step
        st.select_slider("probe step", steps, key="probe_pick", on_change=probe_changed, args=(steps[-1],),
                         help="The recorded evaluation steps; the last one follows the run live.")
    frame = runs.probe_frame(run.path, step)
    prompt = next(p["prompt"] for p in records if int(p["step"]) == step)
    st.caption(f"After the prompt {prompt!r}, at step {step}: the {int(frame['rank'].max())} most probable next "
               f"tokens of each side, on one probability axis (selected run: {run.name}, {run.loss}).")
    st.altair_chart(charts.chart_probe(frame), width="content")
    c = st.columns([1, 1, 4])
    with c[0]:
        export_figure(lambda: plots.plot_probe(frame), f"probe_{run.name}_{step}", "probe_fig")
    with c[1]:
        export_table(frame, {"run": run.name, "loss": run.loss, "step": step, "prompt": prompt},
                     f"probe_{run.name}_{step}", "probe_table")


live()
sync_url(PARAMS)
