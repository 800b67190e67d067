"""What a comparison will cost, before anything runs (uld_explorer.compare.cost), and the CLI
speaking before long work: the estimate's parts move with what drives them, and `compare` prints
the estimate and draws progress bars once the work is expected to be long."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from tiny_models import save_folder, tiny_student_parts, tiny_teacher
from tiny_tokenizers import TEXTS

import uld_explorer as ux
from uld_explorer.compare import ComparisonConfig, estimate_cost, memory_needed


@pytest.fixture(scope="module")
def pair():
    tok, model = tiny_student_parts()
    return tiny_teacher(), ux.zoo.LoadedModel("tiny-gpt2-spm", tok, model)


def test_the_estimate_follows_what_drives_it(pair):
    teacher, student = pair
    text = TEXTS["english"]
    base = estimate_cost(teacher, student, text, ComparisonConfig(costs=("string",)))
    n_t = len(teacher.tokenizer(text, add_special_tokens=False)["input_ids"])
    n_s = len(student.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert base.tokens == (n_t, n_s) and base.parts["edit_ot"] == 0.0
    V_t, V_s = teacher.model.get_output_embeddings().weight.shape[0], len(student.tokenizer)
    assert base.bytes == memory_needed(n_t, n_s, V_t, V_s, 32)
    edit = estimate_cost(teacher, student, text, ComparisonConfig(costs=("string", "edit"), edit_top_k=100))
    assert edit.parts["edit_ot"] > 0 and edit.seconds > base.seconds and edit.bytes > base.bytes
    cut = estimate_cost(teacher, student, text, ComparisonConfig(costs=("string",), max_tokens=4))
    assert cut.tokens == (4, 4) and cut.parts["forward_teacher"] < base.parts["forward_teacher"]
    # top-k keeps at most the vocabulary: a k beyond it costs what the whole vocabulary costs
    huge = estimate_cost(teacher, student, text, ComparisonConfig(costs=("edit",), edit_top_k=4999))
    whole = estimate_cost(teacher, student, text, ComparisonConfig(costs=("edit",), edit_top_k=max(V_t, V_s)))
    assert huge.parts["edit_ot"] == whole.parts["edit_ot"]
    assert "GiB" in edit.describe() and "teacher" in edit.describe()


def test_long_work_prints_its_estimate_and_progress(pair, tmp_path):
    dirs = [save_folder(tmp_path, n, lm.tokenizer, lm.model) for n, lm in zip(("t", "s"), pair)]
    args = [sys.executable, "-m", "uld_explorer.cli", "compare", "--teacher", dirs[0], "--student", dirs[1],
            "--text", TEXTS["english"], "--edit-top-k", "20", "--json"]
    quiet = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and "estimate:" not in quiet.stderr and "table rows" not in quiet.stderr
    loud = subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ULD_EXPLORER_SPEAK_AFTER_S": "0"})
    assert loud.returncode == 0, loud.stderr[-2000:]
    assert "estimate: about" in loud.stderr and "GiB beyond the models" in loud.stderr
    assert "table rows" in loud.stderr and f"teacher {dirs[0]}" in loud.stderr  # the bars, on stderr
    assert json.loads(loud.stdout)["rows"] == json.loads(quiet.stdout)["rows"]  # the same table
