"""The Experiments page (AppTest) on a real experiment trained and scored here (cpu-demo's small
student, 2 losses x 2 seeds x 2 steps, 4 held-out prompts): the tables and the reading equal the
library's on the same results.json, the forest plot and the curves are drawn, an experiment
without results says how to continue it, and a URL naming no experiment falls back with a note.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest import open_page

from uld_explorer.distill import results as experiments
from uld_explorer.distill.experiment import ExperimentConfig, ExperimentDir, run_experiment

PAGE = Path(__file__).resolve().parents[1] / "uld_explorer" / "app" / "pages" / "experiments.py"
TINY = dict(max_steps=2, eval_prompts=4, eval_every=1, checkpoint_every=100)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def experiment_root(tmp_path_factory, default_models):
    """A runs folder holding one finished experiment and one with a run still to do."""
    import torch

    from uld_explorer.distill.config import preset
    from uld_explorer.distill.prepare import prepare

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops on two shared cores: one thread is faster (test_experiment.py)
    try:
        config = preset("cpu-demo", **TINY)
        prep = prepare(config, progress=False)
        root = tmp_path_factory.mktemp("runs")
        run_experiment(config, ExperimentConfig(losses=("ce", "ce+uld"), seeds=(0, 1), resamples=500), root / "done",
                       preset="cpu-demo", prepared=prep, progress=False, report=lambda line: None)
        ExperimentDir(root / "pending").start(config, ExperimentConfig(losses=("ce", "uld"), seeds=(0,)), "cpu-demo")
    finally:
        torch.set_num_threads(threads)
    return root


def test_the_page_shows_the_library_results(experiment_root, monkeypatch):
    monkeypatch.setenv("ULD_EXPLORER_RUNS", str(experiment_root))
    at = open_page(PAGE, 120, experiment="done")
    assert not at.error, [e.value for e in at.error]
    results = ExperimentDir(experiment_root / "done").results()
    assert at.info[0].value == "\n\n".join(experiments.read_results(results))
    scores, diffs = at.dataframe[0].value, at.dataframe[1].value
    assert scores.equals(experiments.results_table(results))
    assert diffs.equals(experiments.results_table(results, differences=True))
    assert list(scores.index) == ["step 0", "ce", "ce+uld"] and list(diffs.index) == ["ce+uld"]
    specs = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert any('"verdict"' in s for s in specs)  # the forest plot
    assert any('"step"' in s for s in specs)  # the per-seed curves
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"PNG", "SVG", "CSV", "JSON"} <= set(labels)


def test_an_experiment_without_results_says_how_to_continue(experiment_root, monkeypatch):
    monkeypatch.setenv("ULD_EXPLORER_RUNS", str(experiment_root))
    at = open_page(PAGE, 120, experiment="pending")
    assert "0 of 2 runs scored" in at.warning[0].value and "uld-explorer experiment --out" in at.warning[0].value


def test_a_url_naming_no_experiment_falls_back_with_a_note(experiment_root, monkeypatch, tmp_path):
    monkeypatch.setenv("ULD_EXPLORER_RUNS", str(experiment_root))
    at = open_page(PAGE, 120, experiment="nope")
    assert at.session_state["experiment"] in ("done", "pending")
    assert any("'nope' is not in" in c.value for c in at.caption)
    monkeypatch.setenv("ULD_EXPLORER_RUNS", str(tmp_path))  # no experiment at all: how to start one
    empty = open_page(PAGE, 120)
    assert "uld-explorer experiment --preset" in empty.info[0].value


def test_the_results_frame_is_the_results_json_in_display_units(experiment_root):
    """results_frame: every row of results.json, fractions x 100, and each verdict what its
    interval says (contains 0: inside the noise; else better or worse by the metric's direction)."""
    results = ExperimentDir(experiment_root / "done").results()
    frame = experiments.results_frame(results)
    assert len(frame) == len(results["rows"])
    for row, r in zip(results["rows"], frame.itertuples()):
        scale = 100.0 if results["metrics"][row["metric"]]["unit"] == "%" else 1.0
        assert r.mean == pytest.approx(row["mean"] * scale) and r.low <= r.mean <= r.high
        if "diff" not in row:
            assert row["loss"] == results["experiment"]["baseline"] and not isinstance(r.verdict, str)
        elif r.diff_low <= 0 <= r.diff_high:
            assert r.verdict == "inside the noise"
        else:
            assert r.verdict == ("better" if (r.diff > 0) == r.higher_is_better else "worse")


def test_a_damaged_or_one_loss_results_file_gives_a_message_not_a_traceback(experiment_root, monkeypatch, tmp_path):
    """A results.json that is JSON but not what summarise writes: one error naming the file and
    the command that writes it again, no exception; one loss only: its table, no forest plot."""
    import json
    import shutil

    monkeypatch.setenv("ULD_EXPLORER_RUNS", str(tmp_path))
    done = experiment_root / "done"
    results = json.loads((done / "results.json").read_text(encoding="utf-8"))
    for name, data in (("damaged", {**results, "rows": [{"loss": "ce"}]}), ("old", {**results, "format": 0})):
        (tmp_path / name).mkdir()
        shutil.copy(done / "experiment.json", tmp_path / name / "experiment.json")
        (tmp_path / name / "results.json").write_text(json.dumps(data), encoding="utf-8")
        at = open_page(PAGE, 120, experiment=name)
        assert not at.exception, [e.value for e in at.exception]
        assert len(at.error) == 1 and "results.json" in at.error[0].value, [e.value for e in at.error]
        assert f"uld-explorer experiment --out {tmp_path / name}" in at.error[0].value
    one = {**results, "experiment": {**results["experiment"], "losses": ["ce"]},
           "rows": [r for r in results["rows"] if r["loss"] == "ce"]}
    (tmp_path / "one").mkdir()
    shutil.copy(done / "experiment.json", tmp_path / "one" / "experiment.json")
    (tmp_path / "one" / "results.json").write_text(json.dumps(one), encoding="utf-8")
    at = open_page(PAGE, 120, experiment="one")
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    assert list(at.dataframe[0].value.index) == ["step 0", "ce"]
    assert not any('"verdict"' in c.proto.spec for c in at.get("vega_lite_chart"))
    assert any("nothing to compare it with" in c.value for c in at.caption)
