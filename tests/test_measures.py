"""The measure registry (uld_explorer.measures): its entries are complete and consistent, and a
measure added to it appears in the summary's rows, the table's columns (CSV, JSON), the CLI's
compare table and the Real distributions page with no other edit.

The toy measure is the gap between the two sides' top-1 probabilities of the base distributions,
checked against that formula restated here on the same vectors.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from apptest import open_page
from tiny_models import save_folder, tiny_student_parts, tiny_teacher
from tiny_tokenizers import TEXTS

import uld_explorer as ux
from uld_explorer import measures
from uld_explorer.cli import main
from uld_explorer.compare import ComparisonConfig, compare_text, next_token_distributions
from uld_explorer.measures import MEASURES, VIEWS, Measure, registered

PAGE = Path(__file__).resolve().parents[1] / "uld_explorer" / "app" / "pages" / "real.py"

TOY = Measure(
    key="top1_gap", label="top-1 probability gap", short="dTop1", scale="[0, 1]", unit="",
    formula=r"|\max_i p_i - \max_j q_j|", description="how much surer one side is of its favourite token",
    reference="this test", compute=lambda rows: np.abs(rows.p_base.max(-1) - rows.q_base.max(-1)),
)


def _top1_gap(p: np.ndarray, q: np.ndarray) -> float:
    """The toy measure's formula, restated: |max p - max q|."""
    return abs(float(np.max(p)) - float(np.max(q)))


# ------------------------------------------------------------------------------------ the registry


def test_every_measure_is_complete_and_consistent():
    assert len(MEASURES) >= 10 and list(MEASURES) == [m.key for m in MEASURES.values()]
    for key, m in MEASURES.items():
        assert key.isidentifier() and m.label and m.short and m.scale.startswith("[") and m.formula, key
        assert m.description and m.reference and set(m.views) <= set(VIEWS), key
        assert m.companion_of is None or m.companion_of in MEASURES, key
        assert m.panel is None or m.panel in measures.PANELS, key
        assert set(m.settings) <= set(ComparisonConfig.__dataclass_fields__), key
    # what the house promises: the one-vocabulary divergences are marked, ULD / 2 and token OT share a scale
    assert {k for k, m in MEASURES.items() if m.needs_shared_vocab} == {"kl", "reverse_kl", "js", "tv"}
    assert MEASURES["uld_half"].panel == MEASURES["token_ot_string"].panel == "unit"
    assert MEASURES["uld"].scale == "[0, 2]" and all(m.lower_is_better for m in MEASURES.values() if not m.companion_of)
    # every position measure is a column of the table by default, in the registry's order
    assert ComparisonConfig().measures == tuple(m.key for m in measures.for_positions())


def test_register_refuses_a_taken_key_and_registered_undoes_itself():
    with pytest.raises(ValueError, match="registered already"):
        measures.register(MEASURES["uld"])
    with pytest.raises(ValueError, match="must be an identifier"):
        Measure("not a key", "x", "x", "[0, 1]", "", "x", "x", "x", TOY.compute)
    with registered(TOY):
        assert list(MEASURES)[-1] == "top1_gap"
    assert "top1_gap" not in MEASURES
    with pytest.raises(ValueError, match="unknown measure 'nope'.*uld"):
        measures.measure("nope")
    with pytest.raises(ValueError, match="measures must be keys"):
        ComparisonConfig(measures=("uld", "nope"))


def test_a_measure_subset_shows_only_those_in_the_registry_order():
    p, q = ux.synthetic_pair(30, 20, seed=3)
    s = ux.divergence_summary(p, q, measures=["uld", "kl_shared"])
    assert [r["key"] for r in s.rows()] == ["kl_shared", "uld"]
    assert s.values["uld"] == pytest.approx(float(ux.uld_distance(p, q)), abs=1e-15)


# ------------------------------------------------------------------------------------ a toy measure


def test_a_toy_measure_appears_in_the_summary_rows():
    p, q = ux.synthetic_pair(12, 9, seed=5)
    with registered(TOY):
        rows = {r["key"]: r for r in ux.divergence_summary(p, q).rows()}
    assert rows["top1_gap"]["divergence"] == "top-1 probability gap" and rows["top1_gap"]["scale"] == "[0, 1]"
    assert rows["top1_gap"]["value"] == pytest.approx(_top1_gap(p, q), abs=1e-15)
    assert rows["top1_gap"]["note"] == TOY.description
    assert "top1_gap" not in {r["key"] for r in ux.divergence_summary(p, q).rows()}  # gone after the block


@pytest.fixture(scope="module")
def tiny_pair():
    teacher = tiny_teacher()
    tok, model = tiny_student_parts()
    return teacher, ux.zoo.LoadedModel("tiny-gpt2-spm", tok, model)


def test_a_toy_measure_appears_in_the_table_csv_and_json(tiny_pair):
    teacher, student = tiny_pair
    text = TEXTS["english"]
    with registered(TOY):
        table = compare_text(teacher, student, text, alignment="byte-offset", merge="bayesian", top_k=20,
                             edit_top_k=5)
    assert "top1_gap" in table.measures and table.columns[-2:] == ["top1_gap", "notes"]
    t_tok, t_dist = next_token_distributions(teacher, text)
    s_tok, s_dist = next_token_distributions(student, text)
    for r in table:  # the base distribution of each row, taken here from the raw distributions
        jt = len(t_tok) if r.kind == "next" else r.teacher_tokens[-1]  # bayesian: the group's last token
        js = len(s_tok) if r.kind == "next" else r.student_tokens[-1]
        assert r.top1_gap == pytest.approx(_top1_gap(t_dist[jt], s_dist[js]), abs=1e-6), r.index
    csv = pd.read_csv(io.StringIO(table.to_dataframe().to_csv(index=False)))
    assert csv["top1_gap"].tolist() == pytest.approx([r.top1_gap for r in table], abs=1e-12)
    records = json.loads(json.dumps(table.as_dict(), allow_nan=False))
    assert [rec["top1_gap"] for rec in records["rows"]] == pytest.approx([r.top1_gap for r in table], abs=1e-12)
    assert "top1_gap" in records["measures"]


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory, tiny_pair):
    root = tmp_path_factory.mktemp("tiny_measure_models")
    return [save_folder(root, nm, lm.tokenizer, lm.model) for nm, lm in zip(("teacher", "student"), tiny_pair)]


def test_a_toy_measure_appears_in_the_cli_compare_table(tiny_dirs, capsys):
    t_dir, s_dir = tiny_dirs
    args = ["compare", "--teacher", t_dir, "--student", s_dir, "--text", TEXTS["english"], "--top-k", "20",
            "--edit-top-k", "5"]
    with registered(TOY):
        assert main(args) == 0
        out = capsys.readouterr().out
        assert main(args + ["--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert main(args + ["--measures", "uld", "top1_gap", "--json"]) == 0  # the flag's choices: the registry
        only = json.loads(capsys.readouterr().out)
    header = next(line for line in out.splitlines() if line.lstrip().startswith("#  predicts"))
    assert "dTop1" in header.split() and any(line.startswith("dTop1: top-1 probability gap") for line in out.splitlines())
    lib = compare_text(t_dir, s_dir, TEXTS["english"], top_k=20, edit_top_k=5)
    assert len(doc["rows"]) == len(lib) and all(0.0 <= r["top1_gap"] <= 1.0 for r in doc["rows"])
    assert [r["top1_gap"] for r in doc["rows"]] == pytest.approx(
        [abs(r.teacher_top1_prob - r.student_top1_prob) for r in lib], abs=1e-6)
    assert only["measures"] == ["uld", "top1_gap"] and "kl_shared" not in only["rows"][0]


def test_a_toy_measure_appears_on_the_real_page(tiny_dirs):
    """The Real distributions page on two local model folders: the toy measure is a column of the
    positions table, a metric card of the selected position and a series of the positions chart."""
    t_dir, s_dir = tiny_dirs
    other = "other: a Hugging Face id or a local folder"
    with registered(TOY):
        at = open_page(PAGE, 120, teacher=other, teacher_other=t_dir, student=other, student_other=s_dir,
                       text=TEXTS["english"], prompt="", position=1, max_tokens=64)
        assert not at.error, [e.value for e in at.error]
        table = at.dataframe[0].value
        assert "top1_gap" in table.columns
        lib = compare_text(t_dir, s_dir, TEXTS["english"], alignment=at.session_state["alignment"], top_k=500,
                           max_tokens=64, costs=("string",), value_ot=False)
        assert table["top1_gap"].tolist() == pytest.approx([r.top1_gap for r in lib], abs=1e-6)
        card = next(m for m in at.metric if m.label == TOY.title)
        assert card.value == f"{lib[1].top1_gap:.4f}"
        charts = [c for c in at.get("vega_lite_chart") if '"field": "panel"' in c.proto.spec]  # the positions chart
        assert len(charts) == 1 and TOY.title in charts[0].proto.spec
