"""The Distillation page (AppTest), on REAL runs: a runs directory ($ULD_EXPLORER_RUNS) holding two
runs trained here by the runner itself (ULD alone and CE + ULD, 4 steps, evaluated every 2), then
runs started, stopped and resumed from the page as background ``uld-explorer distill`` processes.
The page's table, charts, probe and lesson are checked against the library's readers on the same
directories; errors are messages; an empty directory says what to do."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from apptest import assert_clean, open_page
from streamlit.testing.v1 import AppTest

from uld_explorer.distill import reading, runs
from uld_explorer.distill.rundir import RunDir, pid_alive

PAGE = Path(__file__).resolve().parents[1] / "uld_explorer" / "app" / "pages" / "distill.py"
TIMEOUT = 120
RUN_WAIT_S = 300  # a background run: imports and data (~10 s), step 0's evaluation, a checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory) -> Path:
    """Two runs written by the runner (``train``, one prepared dataset): ``uld-4`` then
    ``ce-uld-4``, 4 steps evaluated at 0, 2 and 4 (4 held-out prompts and batches of 4 keep it to
    well under a minute on two CPU cores)."""
    from uld_explorer.distill.config import preset
    from uld_explorer.distill.loop import train
    from uld_explorer.distill.prepare import prepare

    root = tmp_path_factory.mktemp("runs")
    base = preset("cpu-demo", max_steps=4, eval_every=2, eval_prompts=4, batch_size=4)
    prepared = prepare(base, progress=False)
    for loss in ("uld", "ce+uld"):
        train(base.replace(loss=loss), root / f"{loss.replace('+', '-')}-4", preset="cpu-demo", progress=False,
                   prepared=prepared)
        time.sleep(0.05)  # distinct modification times: ce-uld-4 is the newest
    return root


def run(**query) -> AppTest:
    return open_page(PAGE, TIMEOUT, **query)


def charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


def chart_rows(chart):
    """The rows a Vega-Lite chart on the page embeds (its Arrow datasets), as one frame."""
    import pandas as pd
    import pyarrow as pa

    return pd.concat([pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets],
                     ignore_index=True)


def wait_for(check, what: str, timeout_s: float = RUN_WAIT_S, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last: {value!r}")
        time.sleep(interval_s)


def start_button(at: AppTest):
    return at.button(key="start")


# ---------------------------------------------------------------------------------- real runs
def test_real_runs_listed_charted_probed_and_read(real_runs, monkeypatch):
    monkeypatch.setenv(runs.RUNS_ENV, str(real_runs))
    at = run()
    assert at.title[0].value.startswith("Distillation")
    assert not at.error
    infos = runs.list_runs(real_runs)
    assert [r.name for r in infos] == ["ce-uld-4", "uld-4"]
    # the runs table: the library's numbers
    table = at.dataframe[0].value
    assert list(table["run"]) == ["ce-uld-4", "uld-4"] and list(table["loss"]) == ["ce+uld", "uld"]
    assert list(table["state"]) == ["finished", "finished"] and list(table["step"]) == ["4 / 4", "4 / 4"]
    expected = runs.runs_frame(infos)
    for col in ("loss_value", "eval_ce", "eval_uld", "eval_top1", "seen_top1"):
        assert table[col].tolist() == pytest.approx(expected[col].tolist()), col
    # both runs overlaid by default; the curves are their metrics.jsonl
    assert at.multiselect(key="overlay_pick").value == ["ce-uld-4", "uld-4"]
    train_chart, eval_chart, probe_chart = charts(at)
    dirs = [real_runs / "ce-uld-4", real_runs / "uld-4"]
    for chart, metrics in ((train_chart, ["ce", "uld"]), (eval_chart, ["eval_ce", "eval_uld", "eval_top1",
                                                                        "seen_top1"])):
        shown = chart_rows(chart).sort_values(["run", "metric", "step"]).reset_index(drop=True)
        lib = runs.metrics_frame(dirs, metrics).sort_values(["run", "metric", "step"]).reset_index(drop=True)
        assert shown[["run", "step", "metric"]].equals(lib[["run", "step", "metric"]])
        assert shown["value"].tolist() == pytest.approx(lib["value"].tolist())
    assert set(chart_rows(eval_chart)["step"]) == {0, 2, 4}
    assert set(chart_rows(train_chart).query("run == 'uld-4'")["metric"]) == {"uld"}  # its own loss only
    # the lesson: the library's reading of these runs
    lesson = at.info[0].value
    assert lesson == "\n\n".join(reading.read_runs(infos))
    assert "**ULD alone** (`uld-4`, step 4)" in lesson and "**CE + ULD** (`ce-uld-4`, step 4)" in lesson
    # the probe of the selected run (the newest), latest step first
    assert at.selectbox(key="run").value == "ce-uld-4"
    assert at.select_slider(key="probe_pick").options == ["0", "2", "4"]
    assert chart_rows(probe_chart)[["side", "rank", "token"]].equals(
        runs.probe_frame(real_runs / "ce-uld-4", 4)[["side", "rank", "token"]])


def test_probe_step_run_and_overlay_live_in_the_url(real_runs, monkeypatch):
    monkeypatch.setenv(runs.RUNS_ENV, str(real_runs))
    at = run()
    at.select_slider(key="probe_pick").set_value(0).run()
    assert_clean(at)
    assert at.session_state["probe_step"] == 0 and at.query_params["probe_step"] == "0"
    shown = chart_rows(charts(at)[2])
    assert shown["prob"].tolist() == pytest.approx(runs.probe_frame(real_runs / "ce-uld-4", 0)["prob"].tolist())
    assert any("at step 0" in c.value for c in at.caption)
    at.selectbox(key="run").set_value("uld-4").run()
    at.multiselect(key="overlay_pick").set_value(["uld-4"]).run()
    assert_clean(at)
    assert at.query_params["run"] == "uld-4" and at.query_params["overlay"] == "uld-4"
    assert set(chart_rows(charts(at)[0])["run"]) == {"uld-4"}
    assert "a CE + ULD run (loss `ce+uld`" in at.info[0].value  # the lesson says what to start
    # the probe slider back to the last step: it follows the run again (no step in the URL)
    at.select_slider(key="probe_pick").set_value(4).run()
    assert at.session_state["probe_step"] == -1 and "probe_step" not in at.query_params

    again = run(run="uld-4", overlay="uld-4", probe_step="2")
    assert again.selectbox(key="run").value == "uld-4"
    assert again.multiselect(key="overlay_pick").value == ["uld-4"]
    assert again.select_slider(key="probe_pick").value == 2
    # a URL naming runs that are not there falls back to the defaults, with a note saying so
    other = run(run="gone", overlay="gone,also-gone", probe_step="7")
    assert other.selectbox(key="run").value == "ce-uld-4"
    assert other.multiselect(key="overlay_pick").value == ["ce-uld-4", "uld-4"]
    assert other.select_slider(key="probe_pick").value == 4
    notes = [c.value for c in other.caption if c.value.startswith(":material/link_off:")]
    assert len(notes) == 2 and "run='gone'" in notes[0] and "overlay='gone,also-gone'" in notes[1], notes
    partly = run(overlay="uld-4,gone")
    assert partly.multiselect(key="overlay_pick").value == ["uld-4"]
    assert [c.value for c in partly.caption if "overlay='gone'" in c.value]


def test_exports_of_the_curves_and_the_probe(real_runs, monkeypatch):
    """The figures the export buttons draw (plots.plot_run_curves / plot_probe) from the frames the
    page shows, and the curves table as CSV with the settings on top."""
    from uld_explorer.app.common import figure_bytes
    from uld_explorer.plots import plot_probe, plot_run_curves

    monkeypatch.setenv(runs.RUNS_ENV, str(real_runs))
    at = run()
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels.count("PNG") == 3 and labels.count("SVG") == 3 and labels.count("CSV") == 2
    frame = runs.metrics_frame([real_runs / "ce-uld-4", real_runs / "uld-4"], ["eval_top1", "seen_top1"])
    assert figure_bytes(plot_run_curves(frame), "png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in figure_bytes(plot_probe(runs.probe_frame(real_runs / "uld-4")), "svg")[:400]


# ---------------------------------------------------------------------------------- no runs, bad input
def test_an_empty_runs_directory_says_what_to_do(runs_dir):
    at = run()
    assert not at.error and not at.dataframe
    (info,) = at.info
    assert f"No runs in `{runs_dir.resolve()}` yet" in info.value and "--loss uld" in info.value
    assert start_button(at)  # the form is there


def test_a_missing_runs_directory_is_the_same_as_an_empty_one(monkeypatch, tmp_path):
    monkeypatch.setenv(runs.RUNS_ENV, str(tmp_path / "not-yet"))
    at = run()
    assert not at.error and "No runs in" in at.info[0].value


def test_garbage_and_folders_it_did_not_create_are_messages_not_tracebacks(runs_dir):
    """The runs directory holds: a folder with a config.json that is not JSON, one whose config is
    not a run's, one with only a garbage metrics.jsonl, a stray file, and a finished run whose last
    metrics line was cut. The page opens without an exception, lists the real run with the skipped
    line said, and writes nothing anywhere."""
    from uld_explorer.distill.config import DistillConfig

    (runs_dir / "broken").mkdir()
    (runs_dir / "broken" / "config.json").write_text("{not json", encoding="utf-8")
    (runs_dir / "stranger").mkdir()
    (runs_dir / "stranger" / "config.json").write_text('{"hello": "world"}', encoding="utf-8")
    (runs_dir / "noise").mkdir()
    (runs_dir / "noise" / "metrics.jsonl").write_bytes(b"\x00\xff garbage\n")
    (runs_dir / "stray.txt").write_text("not a run", encoding="utf-8")
    cut = RunDir(runs_dir / "cut")
    cut.path.mkdir()
    cut.write_record({"config": DistillConfig(max_steps=3).to_dict(), "preset": "cpu-demo", "created": 1.0})
    for step in range(3):
        cut.append_metrics({"step": step, "loss": 2.0 - step})
    with open(cut.path / cut.METRICS, "a", encoding="utf-8") as f:
        f.write('{"step": 3, "lo')
    cut.write_status("failed", step=3, message="killed")
    before = {p: p.stat().st_mtime_ns for p in runs_dir.rglob("*")}
    at = run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert table["run"].tolist() == ["cut"] and table["step"].tolist() == ["2 / 3"]  # the others hold no run
    (err,) = at.error  # the selected (failed) run's message, with the line left out
    assert err.value.startswith("cut: killed; 1 line of metrics.jsonl skipped (not JSON; the last one cut short")
    assert {p: p.stat().st_mtime_ns for p in runs_dir.rglob("*")} == before


@pytest.mark.parametrize("name, says", [("uld-4", "a run named 'uld-4' already exists"),
                                        ("../escape", "is not one folder name")])
def test_a_taken_or_bad_name_is_an_error_and_starts_nothing(real_runs, monkeypatch, name, says):
    monkeypatch.setenv(runs.RUNS_ENV, str(real_runs))
    before = sorted(p.name for p in real_runs.iterdir())
    at = run()
    at.text_input(key="new_name").set_value(name)
    start_button(at).click().run()
    assert_clean(at)
    (err,) = at.error
    assert err.value.startswith("Could not start the run:") and says in err.value
    assert sorted(p.name for p in real_runs.iterdir()) == before
    assert not (real_runs / "uld-4" / RunDir.LAUNCH).exists()


# ---------------------------------------------------------------------------------- a run from the page
def test_start_stop_and_resume_a_run_from_the_page(runs_dir):
    at = run()
    at.radio(key="new_loss").set_value("uld")
    at.number_input(key="new_max_steps").set_value(30)
    at.number_input(key="new_eval_every").set_value(5)
    at.number_input(key="new_seed").set_value(3)
    at.text_input(key="new_name").set_value("from-page")
    start_button(at).click().run()
    assert_clean(at)
    assert not at.error and at.success[0].value.startswith("Started **from-page** (uld, 30 steps)")
    d = runs_dir / "from-page"
    launched = json.loads((d / RunDir.LAUNCH).read_text())
    assert launched["config"]["loss"] == "uld" and launched["config"]["seed"] == 3
    assert launched["config"]["max_steps"] == 30 and launched["config"]["eval_every"] == 5
    # listed at once (starting), selected and overlaid
    assert at.dataframe[0].value["run"].tolist() == ["from-page"]
    assert at.dataframe[0].value["state"].iloc[0] in ("starting", "running")
    assert at.selectbox(key="run").value == "from-page" and at.multiselect(key="overlay_pick").value == ["from-page"]

    # a live process that writes config.json and its first step (step 0: evaluation, then a batch)
    wait_for(lambda: runs.read_metrics(d), "the first metrics line")
    config = json.loads((d / "config.json").read_text())["config"]
    assert (config["loss"], config["max_steps"], config["eval_every"], config["seed"]) == ("uld", 30, 5, 3)
    status = RunDir(d).status()
    assert status["state"] == "running" and pid_alive(status["pid"]) and status["pid"] == launched["pid"]

    at.run()  # the page follows the directory
    assert_clean(at)
    assert at.dataframe[0].value["state"].iloc[0] == "running"
    assert len(charts(at)) == 3  # training curves, the evaluation at step 0, the probe
    stop = at.button(key="stop")
    assert not stop.disabled and at.button(key="resume").disabled  # its process is the one recorded
    assert runs.run_info(d).stoppable
    stop.click().run()
    assert_clean(at)
    assert at.info[0].value.startswith("Asked **from-page** to stop")
    wait_for(lambda: not pid_alive(status["pid"]), "the run's process to exit")
    info = runs.run_info(d)
    assert info.state == "stopped" and info.message.startswith("stopped at step")
    ckpt = RunDir(d).latest_checkpoint()
    assert ckpt is not None and (ckpt / "model.safetensors").is_file()
    at.run()
    assert at.dataframe[0].value["state"].iloc[0] == "stopped"
    assert at.button(key="stop").disabled and not at.button(key="resume").disabled

    # resume up to the checkpoint's step + 1: one more step, then the final evaluation
    done = int(ckpt.name.split("-")[1])
    at.number_input(key="resume_to_from-page").set_value(done + 1)
    at.button(key="resume").click().run()
    assert_clean(at)
    assert at.success[0].value.startswith(f"Resuming **from-page** from its last checkpoint, up to step {done + 1}")
    wait_for(lambda: runs.run_info(d).state == "finished", "the resumed run to finish")
    metrics = runs.read_metrics(d)
    assert [m["step"] for m in metrics] == list(range(done + 2)) and "eval_top1" in metrics[-1]
    assert RunDir(d).log_tail(200).count("run directory:") == 2  # both processes wrote to the run's log


def test_a_run_that_fails_while_starting_shows_its_error(runs_dir):
    """The form's values pass the checks, the run cannot start on this machine: the GPU preset
    without a GPU (skipped where CUDA is there), reported in the table and under the run."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the gpu preset would run")
    at = run()
    at.selectbox(key="new_preset").set_value("gpu").run()
    assert at.number_input(key="new_max_steps").value == 300  # the preset's values fill the form
    at.text_input(key="new_name").set_value("no-gpu")
    start_button(at).click().run()
    assert_clean(at)
    wait_for(lambda: runs.run_info(runs_dir / "no-gpu").state == "failed", "the run to fail")
    at.run()
    assert at.dataframe[0].value["state"].iloc[0] == "failed"
    (err,) = at.error
    assert err.value.startswith("no-gpu: ") and "no CUDA GPU is visible" in err.value
    assert "no CUDA GPU is visible" in at.code[0].value  # the log, in the expander
