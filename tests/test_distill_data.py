"""Your own data (issue 18 §1): a JSON-lines file of prompts and conversations trains a few steps
with the real teacher's answers (generated once, cached by the file's sha256); every bad file gets
one line and exit 2 before anything loads; a prompt beyond a model's context is named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from uld_explorer.cli import main

PROMPTS = [
    {"prompt": "What is the capital of Italy?", "answer": "Rome."},
    {"prompt": "Name a prime number larger than 10."},
    {"id": "chat-1", "messages": [{"role": "system", "content": "Answer in one word."},
                                  {"role": "user", "content": "What colour is the sky?"}]},
    {"prompt": "Translate 'good morning' into French."},
    {"prompt": "Write a Python expression that adds 2 and 3."},
    {"messages": [{"role": "user", "content": "How many legs does a spider have?"},
                  {"role": "assistant", "content": "Eight."}]},
]


def write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.slow
def test_your_jsonl_trains_a_few_steps_with_the_teachers_answers_cached(tmp_path, default_models):
    from uld_explorer.distill.data import answers_filename, answers_fingerprint, load_answers
    from uld_explorer.zoo.cache import cache_dir

    data = write(tmp_path / "mine.jsonl", PROMPTS)
    run = tmp_path / "run"
    cached = cache_dir() / "distill" / "answers" / answers_filename("Qwen2.5-Coder-0.5B-Instruct", 8, str(data))
    try:
        done = subprocess.run([sys.executable, "-m", "uld_explorer.cli", "distill", "--preset", "cpu-demo", "--data",
                               str(data), "--max-new-tokens", "8", "--eval-prompts", "2", "--batch-size", "2",
                               "--max-steps", "2", "--eval-every", "1", "--checkpoint-every", "2", "--run-dir",
                               str(run), "--no-progress"], capture_output=True, text=True, timeout=900,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.startswith("finished at step 2")
        record = json.loads((run / "config.json").read_text())
        assert record["config"]["data"] == str(data) and record["data"]["train"] + record["data"]["eval"] == 6
        header = json.loads(cached.read_text(encoding="utf-8").splitlines()[0])
        assert header["fingerprint"] == answers_fingerprint("Qwen2.5-Coder-0.5B-Instruct", 8, str(data))
        answers = load_answers("Qwen2.5-Coder-0.5B-Instruct", 8, data=str(data), progress=False)  # read, not generated
        assert set(answers) == {"line 1", "line 2", "chat-1", "line 4", "line 5", "line 6"}
        assert all(0 < len(a) for a in answers.values())
        metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert [m["step"] for m in metrics if "loss" in m][-1] == 2
    finally:
        cached.unlink(missing_ok=True)


@pytest.mark.parametrize("content, said", [
    (b"", "is empty"),
    (b'{"prompt": "caf\xe9"}\n', "line 1: is not UTF-8"),
    (b'{"prompt": "a"}\n{"prompt": "b"\n', "line 2: is not JSON"),
    (b'{"text": "a"}\n', "line 1: has neither 'prompt' nor 'messages'"),
    (b'{"prompt": "a"}\n{"prompt": "a"}\n', "line 2: repeats the prompt of line 1"),
    (b'{"id": "x", "prompt": "a"}\n{"id": "x", "prompt": "b"}\n', "line 2: repeats the id 'x' of line 1"),
])
def test_each_bad_data_file_gets_one_line_and_exit_2(tmp_path, capsys, content, said):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    assert main(["distill", "--data", str(path), "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("run directory:")]
    assert len(err) == 1 and err[0].startswith(f"error: {path}") and said in err[0], err
    assert not (tmp_path / "run").exists()  # nothing was created


def test_too_few_prompts_for_the_held_out_split_is_said(tmp_path, capsys):
    path = write(tmp_path / "two.jsonl", PROMPTS[:2])
    assert main(["distill", "--data", str(path), "--eval-prompts", "2", "--run-dir", str(tmp_path / "run"),
                 "--no-progress", "--max-new-tokens", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"error: only 2 prompts in {path} for 2 held-out ones plus training (at least 2): lower " \
                  f"--eval-prompts or give more prompts"


def test_a_prompt_beyond_the_context_is_named_before_anything_is_generated(tmp_path, capsys):
    """SmolLM2 reads 8,192 tokens: a 9,000-word prompt is refused by the audit's context check."""
    path = write(tmp_path / "long.jsonl", [{"prompt": "word " * 9000}, *PROMPTS])
    assert main(["distill", "--data", str(path), "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "error    context: student (SmolLM2-135M-Instruct): 1 of 7 examples need more than its context of 8,192" in err
    assert err.strip().splitlines()[-1].startswith("error: 1 error(s) in the setup of")


@pytest.mark.slow
def test_a_saved_hugging_face_dataset_trains_too(tmp_path, default_models):
    """The same prompts as a datasets.Dataset saved with save_to_disk (columns prompt, messages,
    answer, id; None where a row has none): read row by row, answered, trained for 2 steps."""
    import datasets

    from uld_explorer.distill.data import answers_filename
    from uld_explorer.distill.userdata import read_records
    from uld_explorer.zoo.cache import cache_dir

    cols = {k: [r.get(k) for r in PROMPTS] for k in ("id", "prompt", "answer", "messages")}
    folder = tmp_path / "ds"
    datasets.Dataset.from_dict(cols).save_to_disk(str(folder))
    recs = read_records(folder)
    assert [r.id for r in recs] == ["row 1", "row 2", "chat-1", "row 4", "row 5", "row 6"]
    assert (recs[0].answer, recs[2].messages[0]["role"], recs[5].answer) == ("Rome.", "system", "Eight.")
    cached = cache_dir() / "distill" / "answers" / answers_filename("Qwen2.5-Coder-0.5B-Instruct", 8, str(folder))
    try:
        done = subprocess.run([sys.executable, "-m", "uld_explorer.cli", "distill", "--preset", "cpu-demo", "--data",
                               str(folder), "--max-new-tokens", "8", "--eval-prompts", "2", "--batch-size", "2",
                               "--max-steps", "2", "--eval-every", "1", "--checkpoint-every", "2", "--run-dir",
                               str(tmp_path / "run"), "--no-progress"], capture_output=True, text=True, timeout=900,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.startswith("finished at step 2") and cached.is_file()
    finally:
        cached.unlink(missing_ok=True)


def test_a_folder_that_is_not_a_saved_dataset_is_one_line(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("hello")
    assert main(["distill", "--data", str(tmp_path / "notes"), "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: {tmp_path / 'notes'}: is a folder but not a dataset saved with save_to_disk")


def test_a_pair_that_does_not_fit_in_memory_is_refused_saying_what_would():
    """Sizes from the zoo's parameter counts against a given amount of available memory."""
    from uld_explorer.distill.config import preset
    from uld_explorer.distill.errors import DistillError
    from uld_explorer.distill.prepare import check_memory_for, model_bytes
    from uld_explorer.zoo import MODELS

    teacher = model_bytes("Qwen2.5-Coder-0.5B-Instruct")
    assert teacher == MODELS["Qwen2.5-Coder-0.5B-Instruct"].params * 4
    student = model_bytes("SmolLM2-135M-Instruct")
    whole = preset("cpu-pretrained", train_last_layers=0)
    check_memory_for(whole, available=64 * 2**30)  # fits
    tight = int(4 * student / 0.9) - 1  # the whole student's training does not fit; its top does
    with pytest.raises(DistillError, match=r"training the student SmolLM2-135M-Instruct needs about .* GiB .* "
                                           r"--train-last-layers 2 trains only the top layers"):
        check_memory_for(whole.replace(teacher="SmolLM2-135M-Instruct"), available=tight)
    check_memory_for(preset("cpu-pretrained").replace(teacher="SmolLM2-135M-Instruct"), available=tight)
    with pytest.raises(DistillError, match=r"the teacher Qwen2.5-Coder-0.5B-Instruct needs about .* pick a smaller"):
        check_memory_for(preset("cpu-demo"), available=teacher)
    # each process on this machine loads its own: twice the teacher; FSDP shards the student's training
    fits_once = int(1.2 * teacher / 0.9) + 1
    check_memory_for(preset("cpu-demo"), available=fits_once)
    with pytest.raises(DistillError, match=r"needs about .* for each of 2 processes .* use fewer processes"):
        check_memory_for(preset("cpu-demo"), available=fits_once, processes=2)
    small = whole.replace(teacher="SmolLM2-135M-Instruct")
    two = int(2 * 4 * student / 0.9) - 1  # DDP: two whole copies of weights, gradients and moments do not fit
    with pytest.raises(DistillError, match=r"moments\) in all for its 2 processes and"):
        check_memory_for(small, available=two, processes=2)
    check_memory_for(small.replace(fsdp=True), available=two, processes=2)  # each keeps half: (1 + 3/2) x 2 < 8
    assert model_bytes("no/such-folder") is None


@pytest.mark.slow
def test_your_reference_answers_are_an_experiment_score(tmp_path, default_models):
    """An experiment on your data: the held-out prompts that give a reference answer are scored
    against it (ref_f1, ref_em beside F1 against the teacher's answer); the others are left out of
    those two scores."""
    from uld_explorer.distill.data import answers_filename
    from uld_explorer.distill.scores import exact_match, token_f1
    from uld_explorer.zoo.cache import cache_dir

    data = write(tmp_path / "mine.jsonl", PROMPTS)
    cached = cache_dir() / "distill" / "answers" / answers_filename("Qwen2.5-Coder-0.5B-Instruct", 8, str(data))
    try:
        done = subprocess.run([sys.executable, "-m", "uld_explorer.cli", "experiment", "--out", str(tmp_path / "exp"),
                               "--preset", "cpu-demo", "--data", str(data), "--losses", "ce,ce+uld", "--seeds", "0",
                               "--max-steps", "2", "--eval-every", "2", "--eval-prompts", "3", "--batch-size", "2",
                               "--max-new-tokens", "8", "--resamples", "200", "--no-progress", "--json"],
                              capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        assert done.returncode == 0, done.stderr[-3000:]
        results = json.loads(done.stdout)
    finally:
        cached.unlink(missing_ok=True)
    assert results["metrics"]["ref_f1"]["n_prompts"] == 1 == results["metrics"]["ref_em"]["n_prompts"]
    held = json.loads((tmp_path / "exp" / "runs" / "ce-seed0" / "heldout.json").read_text())
    assert held["prompts"] == ["line 4", "line 5", "line 6"] and held["data_references"] == [None, None, "Eight."]
    answer = held["answers"][2]
    assert held["metrics"]["ref_f1"][2] == token_f1(answer, "Eight.") and held["metrics"]["ref_em"][2] == \
        exact_match(answer, "Eight.")
    assert held["metrics"]["ref_f1"][:2] == [None, None]  # NaN in strict JSON
