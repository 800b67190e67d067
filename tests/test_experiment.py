"""`uld-explorer experiment`: the bootstrap against hand-computed cases, the answer scores against
hand-computed examples, and (slow: the real tokenizers and teacher cache, a small random student)
an experiment interrupted and resumed, its step-0 scores against the untrained student evaluated
directly, and the CLI end to end.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from uld_explorer.distill.bootstrap import Draws, finite_prompts, interval, paired
from uld_explorer.distill.experiment import CSV_COLUMNS, ExperimentConfig, ExperimentDir, run_experiment
from uld_explorer.distill.scores import (
    METRICS,
    REFERENCE,
    answer_tokens,
    exact_match,
    normalize_answer,
    rouge_l,
    token_f1,
)

#: The scores of an experiment on the project's prompts (no reference answers of your own: no ref_*).
SCORED = [k for k in METRICS if k not in REFERENCE]

# ------------------------------------------------------------------ the bootstrap

#: X[seed, prompt] of 2 seeds x 2 prompts, and the mean of each of the 16 equally likely replicates
#: (4 ordered seed draws x 4 ordered prompt draws), worked out by hand: seeds (0, 0) keep row [0, 1]
#: -> 0, .5, .5, 1; seeds (0, 1) or (1, 0) keep both rows -> 1, 1.75, 1.75, 2.5 each; seeds (1, 1)
#: keep [2, 4] -> 2, 3, 3, 4.
X = np.array([[0.0, 1.0], [2.0, 4.0]])
BY_HAND = sorted([0, .5, .5, 1] + [1, 1.75, 1.75, 2.5] * 2 + [2, 3, 3, 4])


def test_every_replicate_of_a_tiny_table_is_the_hand_computed_one():
    every = Draws.every(2, 2)
    assert every.resamples == 16
    assert sorted(every.means(X).tolist()) == BY_HAND
    assert np.mean(BY_HAND) == X.mean() == 1.75  # the bootstrap distribution is centred on the mean


def test_random_draws_follow_the_exact_distribution_and_give_its_percentiles():
    draws = Draws.random(2, 2, 40_000, seed=1)
    reps = draws.means(X)
    values, counts = np.unique(BY_HAND, return_counts=True)
    for v, c in zip(values, counts):  # each replicate value with its exact probability
        assert abs(np.mean(reps == v) - c / 16) < 0.01, v
    assert set(np.unique(reps)) <= set(values)
    # the 50% percentile interval: the exact distribution's quartiles, 1.0 and 2.5 (its cumulative
    # probabilities are 1/16 at 0, 3/16 at .5, 6/16 at 1, 10/16 at 1.75, 11/16 at 2, 13/16 at 2.5, ...)
    for i in (interval(X, draws, 0.5), interval(X, Draws.every(2, 2), 0.5)):
        assert (i.mean, i.low, i.high) == (1.75, 1.0, 2.5)
    assert (interval(X, draws, 0.95).low, interval(X, draws, 0.95).high) == (0.0, 4.0)
    assert interval(X, draws).contains(1.75) and not interval(X, draws, 0.5).contains(0.0)


def test_the_paired_difference_resamples_the_cell_differences_with_the_same_draws():
    # Y - X cell by cell; its 16 replicates by hand: seeds (0, 0) -> 1, 1, 1, 1; seeds (0, 1), (1, 0)
    # -> 1, 1.5, 1.5, 2 each; seeds (1, 1) -> 1, 2, 2, 3: seven 1s, four 1.5s, four 2s, one 3
    D = np.array([[1.0, 1.0], [1.0, 3.0]])
    Y = X + D
    every = Draws.every(2, 2)
    assert sorted((every.means(Y) - every.means(X)).tolist()) == [1.0] * 7 + [1.5] * 4 + [2.0] * 4 + [3.0]
    d = paired(Y, X, every, 0.5)  # quartiles of those 16: 1.0 and 2.0
    assert (d.mean, d.low, d.high) == (1.5, 1.0, 2.0)
    # a shift shared by every cell leaves no noise once paired, though each side alone is wide
    draws = Draws.random(2, 2, 2_000, seed=0)
    shifted = paired(X + 0.25, X, draws)
    assert (shifted.low, shifted.high) == pytest.approx((0.25, 0.25))
    alone = interval(X + 0.25, draws)
    assert alone.high - alone.low > 3.0 and not shifted.contains(0.0)


def test_undefined_prompts_are_left_out_for_every_table():
    a, b = np.array([[1.0, np.nan, 3.0]]), np.array([[1.0, 2.0, np.inf]])
    assert finite_prompts(a, b).tolist() == [True, False, False]
    with pytest.raises(ValueError, match="shape"):
        Draws.random(2, 3, 10, seed=0).means(X)


# ------------------------------------------------------------------ the answer scores


@pytest.mark.parametrize("prediction, reference, f1, em", [
    # SQuAD's normalisation: case, punctuation and articles go; tokens are whitespace-split
    ("The Sun.", "the sun", 1.0, 1.0),
    ("Denver Broncos", "The Denver Broncos!", 1.0, 1.0),
    # 2 common of 3 predicted, 4 reference tokens: P = 2/3, R = 1/2, F1 = 2PR/(P+R) = 4/7
    ("red green blue", "green red yellow black", 4 / 7, 0.0),
    # multisets: "a" is an article; "x x y" vs "x y y": common x, y = 2 of 3 each
    ("x x y", "x y y", 2 / 3, 0.0),
    ("", "", 1.0, 1.0),
    ("something", "", 0.0, 0.0),
    ("Москва — столица России.", "москва столица россии", 1.0, 1.0),  # Unicode punctuation and case
])
def test_token_f1_and_exact_match_by_hand(prediction, reference, f1, em):
    assert token_f1(prediction, reference) == pytest.approx(f1)
    assert exact_match(prediction, reference) == em


@pytest.mark.parametrize("prediction, reference, expected", [
    # LCS of (w x y z) and (w y z v) is w y z: P = R = 3/4
    ("w x y z", "w y z v", 0.75),
    # LCS of (p q r) and (r p q s t) is p q: P = 2/3, R = 2/5, F = 2PR / (P + R) = 1/2
    ("p q r", "r p q s t", 0.5),
    ("The cat, the hat.", "cat hat", 1.0),  # on the normalised tokens
    ("Привет мир", "Привет мир", 1.0),  # rouge-score's own tokenizer would give 0 here
    ("", "cat", 0.0),
])
def test_rouge_l_by_hand(prediction, reference, expected):
    assert rouge_l(prediction, reference) == pytest.approx(expected)


def test_normalisation_is_squads():
    assert normalize_answer("  An apple, a day; THE doctor's away ") == "apple day doctors away"
    assert answer_tokens("Hello, world!") == ["hello", "world"]


def test_experiment_config_says_what_is_wrong():
    with pytest.raises(ValueError, match="losses .* unknown: 'nope'"):
        ExperimentConfig(losses=("ce", "nope"))
    with pytest.raises(ValueError, match="baseline 'ce' is not among the losses"):
        ExperimentConfig(losses=("uld", "hybrid"))
    with pytest.raises(ValueError, match="must not repeat"):
        ExperimentConfig(seeds=(0, 0))
    assert ExperimentConfig(losses=["uld", "ce"], seeds=[3]).runs() == [("uld", 3), ("ce", 3)]


# ------------------------------------------------------------------ an experiment (slow)

#: Small: 2 steps, 4 held-out prompts (the preset's 96 prompts, so the teacher cache is the preset's).
TINY = dict(max_steps=2, eval_prompts=4, eval_every=100, checkpoint_every=100)


@pytest.fixture(autouse=True)
def one_thread(request):
    """The slow tests run torch on one thread: on two cores shared with other work, two threads
    of tiny ops (a 128-wide student, one token at a time) wait on each other (measured: 4x slower
    here); the CLI's subprocess gets ``OMP_NUM_THREADS=1`` for the same reason."""
    if request.node.get_closest_marker("slow") is None:
        yield
        return
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_a_folder_refuses_other_settings_other_data_and_damaged_results(tmp_path):
    """The plan recorded in a folder: the same settings continue (loss and seed are each run's
    own, a field added since the plan was written takes its default), another setting or other
    data (answers, teacher cache) is refused naming what changed; a results.json that is not what
    summarise writes is one error naming the file."""
    from uld_explorer.distill.config import preset
    from uld_explorer.distill.errors import DistillError
    from uld_explorer.distill.results import load_results

    folder = ExperimentDir(tmp_path / "exp")
    cfg, exp = preset("cpu-demo", max_steps=3), ExperimentConfig(losses=("ce",), seeds=(0,))
    data = {"answers": "a1", "teacher_cache": "c1"}
    folder.start(cfg, exp, "cpu-demo", data)
    folder.check(cfg)
    folder.check(cfg.replace(loss="uld", seed=4))
    with pytest.raises(DistillError, match="max_steps: 3 there, 5 now"):
        folder.check(cfg.replace(max_steps=5))
    plan = json.loads((folder.path / "experiment.json").read_text(encoding="utf-8"))
    del plan["config"]["train_last_layers"]  # written before the field existed
    (folder.path / "experiment.json").write_text(json.dumps(plan), encoding="utf-8")
    folder.check(cfg)
    folder.start(cfg, exp, "cpu-demo", data)
    with pytest.raises(DistillError, match="teacher_cache: c1 there, c2 now"):
        folder.start(cfg, exp, "cpu-demo", {**data, "teacher_cache": "c2"})
    assert json.loads((folder.path / "experiment.json").read_text(encoding="utf-8"))["data"] == data

    assert load_results(folder.path) is None
    good = {"format": 1, "experiment": {}, "bootstrap": {}, "metrics": {}, "runs": [],
            "rows": [{"loss": "ce", "metric": "f1", "n_seeds": 1, "n_prompts": 2, "vs": "ce"}]}
    for data, says in (("{", "not readable JSON"), ({**good, "format": 0}, "not a results file of this version"),
                       ({k: v for k, v in good.items() if k != "runs"}, "damaged .missing runs"),
                       ({**good, "rows": [{"loss": "ce"}]}, "damaged .incomplete rows"),
                       ({**good, "rows": [{**good["rows"][0], "metric": "bleu"}]}, "damaged .unknown metrics bleu")):
        (folder.path / "results.json").write_text(data if isinstance(data, str) else json.dumps(data),
                                                  encoding="utf-8")
        with pytest.raises(DistillError, match=says) as err:
            load_results(folder.path)
        assert f"uld-explorer experiment --out {folder.path}" in str(err.value)
    (folder.path / "results.json").write_text(json.dumps(good), encoding="utf-8")
    assert load_results(folder.path) == good


@pytest.fixture(scope="module")
def tiny_prep(default_models):
    from uld_explorer.distill.config import preset
    from uld_explorer.distill.prepare import prepare

    return prepare(preset("cpu-demo", **TINY), progress=False)


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_an_interrupted_experiment_resumes_without_redoing_finished_runs(tiny_prep, tmp_path):
    """Ctrl-C during the second run: the first run stays, the second resumes from its checkpoint;
    the finished run's files and the step-0 scores are not touched again (mtimes). The scores are
    checked against the loop's own held-out metrics: step 0 (the untrained student) and the final
    step (the checkpoint the experiment loads)."""
    from uld_explorer.distill.config import preset

    config = preset("cpu-demo", **TINY)
    exp = ExperimentConfig(losses=("ce", "ce+uld"), seeds=(0,), resamples=500)
    out, said = tmp_path / "exp", []

    def interrupt(loss, seed, line):  # Ctrl-C while ce+uld trains its step 1
        if loss == "ce+uld" and line["step"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, exp, out, preset="cpu-demo", prepared=tiny_prep, progress=False, report=said.append,
                       on_step=interrupt)
    folder = ExperimentDir(out)
    assert folder.finished(exp) == [("ce", 0)] and folder.results() is None
    assert folder.run("ce+uld", 0).status()["state"] == "stopped"
    kept = {**mtimes(folder.run("ce", 0).path), "step0": (out / "step0" / "seed-0.json").stat().st_mtime_ns}

    said.clear()
    results = run_experiment(config, exp, out, preset="cpu-demo", prepared=tiny_prep, progress=False,
                             report=said.append)
    assert {**mtimes(folder.run("ce", 0).path), "step0": (out / "step0" / "seed-0.json").stat().st_mtime_ns} == kept
    assert "done already" in said[0] and "resumed and trained" in said[1], said
    assert [d["step"] for d in folder.run("ce+uld", 0).metrics()] == [0, 1, 2]
    assert folder.results() == json.loads(json.dumps(results))
    assert {(r["loss"], r["metric"]) for r in results["rows"]} == {(k, m) for k in exp.losses for m in SCORED}

    # the scores, weighted back to the loop's means, are the loop's held-out metrics of the same students
    step0 = folder.step0("seed-0")
    for loss in exp.losses:
        run = folder.run(loss, 0)
        first, last = run.metrics()[0], run.metrics()[-1]
        for rec, line in ((step0, first), (run.heldout(), last)):
            m, n = rec["metrics"], rec["counts"]
            for key, count in (("ce", "tokens"), ("uld", "pairs"), ("top1", "same"), ("kl_shared", "same")):
                w = np.asarray(n[count], dtype=float)
                mean = np.dot(np.nan_to_num(np.asarray(m[key], dtype=float)), w) / w.sum()
                assert mean == pytest.approx(line[f"eval_{key}"], rel=1e-4), key


@pytest.mark.slow
def test_step0_scores_are_those_of_the_untrained_student_evaluated_directly(tiny_prep, tmp_path):
    """The step-0 record equals :func:`prompt_metrics` and :func:`greedy_answers` on a freshly built
    student of the same seed, and :func:`evaluate` on it gives the record's weighted means."""
    from uld_explorer.distill.config import preset
    from uld_explorer.distill.evaluate import evaluate
    from uld_explorer.distill.experiment import score_student
    from uld_explorer.distill.scores import greedy_answers, prompt_metrics
    from uld_explorer.distill.student import AnswerLogits, build_student

    import contextlib
    import dataclasses

    cfg = preset("cpu-demo", **TINY, seed=1)
    prep = dataclasses.replace(tiny_prep, config=cfg)
    rec = score_student(build_student(cfg, prep.student_tokenizer, prep.V_s), prep, cfg, step=0, progress=False)
    fresh = build_student(cfg, prep.student_tokenizer, prep.V_s).eval()
    direct = prompt_metrics(AnswerLogits(fresh), prep, cfg)
    for key in ("ce", "uld", "top1", "kl_shared"):
        np.testing.assert_allclose(rec["metrics"][key], direct[key], rtol=1e-6)
    answers = greedy_answers(fresh, prep.student_tokenizer, [ex.student.context_ids for ex in prep.eval],
                             cfg.max_new_tokens)
    assert rec["answers"] == answers and rec["references"] == [ex.answer for ex in prep.eval]
    assert rec["metrics"]["f1"] == [token_f1(a, r) for a, r in zip(answers, rec["references"])]
    ev = evaluate(AnswerLogits(fresh), prep, "cpu", contextlib.nullcontext)
    w = np.asarray(rec["counts"]["tokens"], dtype=float)
    assert np.dot(rec["metrics"]["ce"], w) / w.sum() == pytest.approx(ev["eval_ce"], rel=1e-5)
    assert ev["eval_ce"] > 10.0  # a uniform-ish student over 49,152 tokens


@pytest.mark.slow
@pytest.mark.usefixtures("default_models")
def test_the_cli_end_to_end(tmp_path):
    """2 losses x 2 seeds x 2 steps x 4 held-out prompts: exit 0, strict JSON on stdout and in
    results.json, results.csv with a row per (loss, metric); the same folder again without flags:
    nothing is redone and the table is printed."""
    out = tmp_path / "exp"
    args = ["--preset", "cpu-demo", "--losses", "ce,ce+uld", "--seeds", "0,1", "--max-steps", "2", "--eval-prompts",
            "4", "--eval-every", "100", "--checkpoint-every", "100", "--resamples", "1000", "--out", str(out),
            "--no-progress"]

    def strict(text: str):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "uld_explorer.cli", "experiment", *args, "--json"], capture_output=True,
                       text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = strict(r.stdout)
    assert strict((out / "results.json").read_text()) == doc
    assert doc["bootstrap"]["resamples"] == 1000 and "seeds, then prompts" in doc["bootstrap"]["method"]
    assert doc["experiment"]["losses"] == ["ce", "ce+uld"] and doc["experiment"]["held_out_prompts"] == 4
    assert sum("trained 2 steps" in line for line in r.stderr.splitlines()) == 4, r.stderr[-3000:]
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].split(",") == list(CSV_COLUMNS) and len(rows) == 1 + 2 * len(SCORED)
    for row in doc["rows"]:
        assert row["low"] <= row["mean"] <= row["high"] and math.isfinite(row["step0"])
        assert ("diff" in row) == (row["loss"] != "ce")
    assert set(doc["metrics"]) == set(SCORED) and all(m["statement"] for m in doc["metrics"].values())

    again = subprocess.run([sys.executable, "-m", "uld_explorer.cli", "experiment", "--out", str(out), "--no-progress"],
                           capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert sum("done already" in line for line in again.stderr.splitlines()) == 4
    assert "paired difference against ce" in again.stdout and "ce+uld" in again.stdout
