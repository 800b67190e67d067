"""``uld-explorer audit``: every planted fault is found (a missing BOS, BOS twice, a template applied
twice, a shift off by one, a prompt token scored, EOS on one side, a numeral split), a clean setup
gives none, the statistics agree with a brute-force re-count, the cache budget's bound holds on real
distributions, and a bad data file gets one line and exit 2.

Real tokenizers throughout (the zoo's two models' and the tokenizer-only entries Llama-2, Llama-3,
Qwen2, Phi-3); the model checks run the real default pair on two examples.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import uld_explorer as ux
from uld_explorer.audit import (
    AuditConfig,
    Finding,
    alignment_stats,
    audit_examples,
    class_coverage,
    group_shape,
    run_audit,
)
from uld_explorer.cli import main
from uld_explorer.distill.batch import make_batch
from uld_explorer.distill.userdata import DataError, Record, read_records
from uld_explorer.text import byte_offset_alignment, tokenize_with_offsets

ANSWERS = [
    "In 2024 we sold 12345 units, up from 987 in 2023.",
    "def f(x):\n    return x + 1\n",
    "Le café était très bon. 東京は日本の首都です。",
    "The capital of France is Paris.",
]


@pytest.fixture(scope="module")
def tok():
    names = ("Qwen2.5-Coder-0.5B-Instruct", "SmolLM2-135M-Instruct", "Llama-2", "Llama-3", "Qwen2", "Phi-3")
    return {n: ux.load_tokenizer(n, progress=False) for n in names}


def records(answers=ANSWERS, prompt="Answer briefly."):
    return [Record(f"r{i}", i + 1, ({"role": "user", "content": f"{prompt} ({i})"},), a) for i, a in enumerate(answers)]


def audit(tok, teacher, student, examples=None, recs=None, make_batch=None, **kw):
    cfg = AuditConfig(teacher=teacher, student=student, models=False, **kw)
    tt, st = tok[teacher], tok[student]
    if examples is None:
        examples = audit_examples(recs or records(), tt, st, cfg.chat_template)
    return run_audit(cfg, tokenizers=(tt, st), examples=examples, make_batch=make_batch)


def errors(report):
    return {f.check for f in report.findings if f.level == "error"}


def test_a_clean_setup_has_no_error_and_the_default_pair_says_what_it_is(tok):
    r = audit(tok, "Qwen2.5-Coder-0.5B-Instruct", "SmolLM2-135M-Instruct")
    assert errors(r) == set() and r.exit_code() == 0
    assert {"template", "bos", "eos", "shift", "alignment", "vocab"} <= r.checks("info") and "drift" in r.checks()
    d = r.to_dict()
    from uld_explorer.jsonsafe import dumps

    assert json.loads(dumps(d))["findings"][0]["level"] in ("warning", "info")  # strict JSON, as the CLI prints it
    assert d["summary"]["error"] == 0 and d["vocab"]["teacher_size"] == len(tok["Qwen2.5-Coder-0.5B-Instruct"])


def test_a_missing_bos_is_found(tok):
    """Llama-2's tokenizer adds BOS by default: a context built without it is an error; with it, none."""
    good = audit_examples(records(), tok["Qwen2.5-Coder-0.5B-Instruct"], tok["Llama-2"])
    assert all(ex.student.context_ids[0] == tok["Llama-2"].bos_token_id for ex in good)
    assert "bos" not in errors(audit(tok, "Qwen2.5-Coder-0.5B-Instruct", "Llama-2", examples=good))
    planted = [dataclasses.replace(ex, student=dataclasses.replace(ex.student, bos_id=None)) for ex in good]
    r = audit(tok, "Qwen2.5-Coder-0.5B-Instruct", "Llama-2", examples=planted)
    (f,) = [f for f in r.findings if f.check == "bos" and f.level == "error"]
    assert "student (Llama-2)" in f.message and f"{len(planted)} of {len(planted)}" in f.message and f.fix
    assert r.exit_code() == 1


def test_bos_twice_is_found_and_phi3s_template_bos_is_not_doubled(tok):
    """Phi-3's template writes '<s>' and its tokenizer adds BOS by default: the library prepends it
    once (regression), and a context holding it twice is an error."""
    exs = audit_examples(records(), tok["Phi-3"], tok["Llama-2"])
    bos = tok["Phi-3"].bos_token_id
    assert all(ex.teacher.context_ids[:2].count(bos) == 1 for ex in exs)
    assert "bos" not in errors(audit(tok, "Phi-3", "Llama-2", examples=exs))
    planted = [dataclasses.replace(ex, teacher=dataclasses.replace(ex.teacher, bos_id=bos)) for ex in exs]
    r = audit(tok, "Phi-3", "Llama-2", examples=planted)
    assert any(f.check == "bos" and f.level == "error" and "twice" in f.message for f in r.findings)


def test_a_template_applied_twice_is_found(tok):
    """A prompt that already holds the teacher's rendered chat markup gets the template again on top."""
    t = tok["Qwen2.5-Coder-0.5B-Instruct"]
    rendered = t.apply_chat_template([{"role": "user", "content": "Say 4."}], tokenize=False, add_generation_prompt=True)
    recs = records() + [Record("twice", 9, ({"role": "user", "content": rendered},), "4")]
    r = audit(tok, "Qwen2.5-Coder-0.5B-Instruct", "SmolLM2-135M-Instruct", recs=recs)
    hits = [f for f in r.findings if f.check == "template" and f.level == "error"]
    assert {h.message.split(":")[0] for h in hits} == {"teacher (Qwen2.5-Coder-0.5B-Instruct)",
                                                        "student (SmolLM2-135M-Instruct)"}
    assert all(h.examples == ("twice",) and "1 of 5" in h.message for h in hits) and r.exit_code() == 1


def shifted(by: int):
    def build(examples, rows, alignment, merge, pad_id):
        b = make_batch(examples, rows, alignment, merge, pad_id)
        b.positions = b.positions + by
        return b
    return build


@pytest.mark.parametrize("by, said", [(1, "token i (a shift off by 1)"), (-1, "token i+2 (a shift off by 1)")])
def test_a_shift_off_by_one_is_found(tok, by, said):
    """The runner's batch passes; the same batch with every scored position moved by one fails, and
    the message says which way."""
    assert "shift" not in errors(audit(tok, "Qwen2.5-Coder-0.5B-Instruct", "SmolLM2-135M-Instruct"))
    r = audit(tok, "Qwen2.5-Coder-0.5B-Instruct", "SmolLM2-135M-Instruct", make_batch=shifted(by))
    (f,) = [f for f in r.findings if f.check == "shift" and f.level == "error"]
    assert said in f.message and "input_ids[:, 1:]" in f.fix


def test_a_scored_prompt_token_is_found(tok):
    def with_prompt(examples, rows, alignment, merge, pad_id):
        b = make_batch(examples, rows, alignment, merge, pad_id)
        extra = torch.tensor([0])  # position 0 predicts the prompt's second token
        b.positions = torch.cat([extra, b.positions])
        b.labels = torch.cat([b.input_ids[0, 1:2], b.labels])
        return b

    r = audit(tok, "Qwen2.5-Coder-0.5B-Instruct", "SmolLM2-135M-Instruct", make_batch=with_prompt)
    (f,) = [f for f in r.findings if f.check == "mask"]
    assert f.level == "error" and "1 scored positions predict prompt tokens" in f.message


def test_eos_on_one_side_only_is_a_warning(tok):
    t, s = tok["Qwen2.5-Coder-0.5B-Instruct"], tok["SmolLM2-135M-Instruct"]
    exs = audit_examples(records(), t, s)
    eot = s.convert_tokens_to_ids("<|im_end|>")
    planted = [dataclasses.replace(ex, student=dataclasses.replace(ex.student, ids=ex.student.ids + (eot,)))
               for ex in exs]
    r = audit(tok, "Qwen2.5-Coder-0.5B-Instruct", "SmolLM2-135M-Instruct", examples=planted)
    (f,) = [f for f in r.findings if f.check == "eos"]
    assert f.level == "warning" and "teacher side in 0 and on the student side in 4 of 4" in f.message


def test_a_numeral_split_is_found_and_strict_fails_on_it(tok):
    """Qwen2 writes numbers digit by digit, Llama-3 in groups of three: a warning naming the numbers;
    the same tokenizer on both sides splits every class alike."""
    r = audit(tok, "Qwen2", "Llama-3")
    (f,) = [f for f in r.findings if f.check == "tokens:numbers"]
    assert f.level == "warning" and f.examples[0].startswith("'2024': teacher 2|0|2|4, student 202|4")
    assert r.exit_code() == 0 and r.exit_code(strict=True) == 1
    same = audit(tok, "Qwen2", "Qwen2")
    assert all(c.split_differently == 0 for c in same.classes.values())
    assert not [f for f in same.findings if f.level != "info"]


def test_class_coverage_agrees_with_a_brute_force_count(tok):
    """Re-count per fragment by hand: the tokens overlapping it on each side and whether the two
    cut it at the same bytes (inside and at its edges)."""
    import re

    t, s = tok["Qwen2"], tok["Llama-3"]
    pairs = [(tokenize_with_offsets(t, a), tokenize_with_offsets(s, a)) for a in ANSWERS]
    got = class_coverage(pairs)["numbers"]
    n = differ = toks = 0
    for tt, ss in pairs:
        for m in re.finditer(r"[0-9]+", tt.text):
            a = len(tt.text[: m.start()].encode())
            b = a + len(m.group().encode())
            cuts = lambda x: {e for _, e in x.byte_spans if a <= e <= b} | {st for st, _ in x.byte_spans if a <= st <= b}  # noqa: E731
            n += 1
            differ += cuts(tt) != cuts(ss)
            toks += sum(1 for st, e in tt.byte_spans if st < b and e > a)
    assert (got.occurrences, got.split_differently) == (n, differ) and got.teacher_tokens == pytest.approx(toks / n)


def test_alignment_statistics_match_the_groups(tok):
    t, s = tok["Qwen2.5-Coder-0.5B-Instruct"], tok["SmolLM2-135M-Instruct"]
    pairs = [(tokenize_with_offsets(t, a, prompt="Q: "), tokenize_with_offsets(s, a, prompt="Q: ")) for a in ANSWERS]
    st = alignment_stats(pairs)
    groups = [g for tt, ss in pairs for g in byte_offset_alignment(tt, ss)]
    assert st.n_groups == len(groups)
    assert st.groups["1:1"] == sum(len(g.teacher_tokens) == len(g.student_tokens) == 1 for g in groups)
    assert sum(st.teacher_tokens.values()) == sum(len(tt) for tt, _ in pairs)  # every answer token in one group
    assert [group_shape(1, 1), group_shape(1, 3), group_shape(2, 1), group_shape(2, 2)] == ["1:1", "1:n", "n:1", "n:m"]
    same = alignment_stats([(tt, tt) for tt, _ in pairs])
    assert same.groups["1:1"] == same.n_groups and set(same.max_drift) == {0} and same.same_bytes_share == 1.0


def test_findings_refuse_unknown_levels_and_checks():
    with pytest.raises(ValueError, match="level"):
        Finding("fatal", "bos", "x")
    with pytest.raises(ValueError, match="CHECKS"):
        Finding("error", "nope", "x")


@pytest.mark.slow
def test_the_model_checks_on_the_real_pair_hold_the_certified_bound(default_models):
    """Two examples through both real models: mass kept grows with K, every bound is at most the tail
    mass, and on a real pair of distributions the cache's ULD estimate is within the certified bound
    of the exact ULD (uld_top_k against uld_distance)."""
    from uld_explorer.audit import cache_budget
    from uld_explorer.compare.forward import next_token_distributions

    t, s = ux.load_model(ux.DEFAULT_TEACHER, progress=False), ux.load_model(ux.DEFAULT_STUDENT, progress=False)
    exs = audit_examples(records(ANSWERS[:2]), t.tokenizer, s.tokenizer)
    b = cache_budget(t, s, exs, ks=(16, 256))
    kept = [r.kept_mean for r in b.rows]
    assert kept == sorted(kept) and all(r.bound_mean <= r.tail_mean + 1e-12 for r in b.rows)
    assert b.positions == sum(len(ex.teacher) for ex in exs) and 0 < b.uld_mean < 2
    _, p = next_token_distributions(t, exs[0].answer, prompt=exs[0].teacher.prompt)
    _, q = next_token_distributions(s, exs[0].answer, prompt=exs[0].student.prompt)
    p, q = torch.from_numpy(p[0]).double(), torch.from_numpy(q[0]).double()
    top = torch.topk(p, 16).values
    est = ux.uld_top_k(top, p.sum() - top.sum(), q)
    assert abs(float(est.value) - float(ux.uld_distance(p, q))) <= float(est.bound) + 1e-9


def test_bad_data_files_get_one_line_each(tmp_path):
    cases = {
        "empty.jsonl": (b"\n\n", "is empty"),
        "latin1.jsonl": ('{"prompt": "café"}\n'.encode("latin-1"), "line 1: is not UTF-8"),
        "notjson.jsonl": (b'{"prompt": "a"}\n{"prompt": \n', "line 2: is not JSON"),
        "list.jsonl": (b'["a"]\n', "line 1: is a JSON list, not an object"),
        "fields.jsonl": (b'{"question": "a"}\n', "line 1: has neither 'prompt' nor 'messages' (fields: question)"),
        "role.jsonl": (b'{"messages": [{"role": "bot", "content": "a"}]}\n', "messages[0] has role 'bot'"),
        "dup.jsonl": (b'{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": "a"}\n', "line 3: repeats the prompt of line 1"),
        "blank.jsonl": (b'{"prompt": "  "}\n', "'prompt' is empty"),
    }
    for name, (data, said) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=said.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            read_records(tmp_path / name)
    with pytest.raises(DataError, match="no such file"):
        read_records(tmp_path / "missing.jsonl")
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": "q1", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": '
                    '"2+2?"}, {"role": "assistant", "content": "4"}]}\n', encoding="utf-8")
    (r,) = read_records(good)
    assert (r.id, r.text, r.answer, len(r.messages)) == ("q1", "2+2?", "4", 2)


def test_the_cli_exits_1_on_a_planted_fault_2_on_bad_data_and_prints_json(tmp_path, capsys, tok):
    t = tok["Qwen2.5-Coder-0.5B-Instruct"]
    rendered = t.apply_chat_template([{"role": "user", "content": "Say 4."}], tokenize=False, add_generation_prompt=True)
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(d) for d in [{"prompt": "Say 4.", "answer": "4"},
                                                     {"prompt": rendered, "answer": "4"}]) + "\n", encoding="utf-8")
    assert main(["audit", "--data", str(data), "--no-models", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith("FAIL: 2 error(s)") and "error    template: teacher" in out
    assert main(["audit", "--data", str(data), "--no-models", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 1 and {f["check"] for f in doc["findings"] if f["level"] == "error"} == {"template"}
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a"}\nnot json\n', encoding="utf-8")
    assert main(["audit", "--data", str(tmp_path / "bad.jsonl"), "--no-models"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "bad.jsonl line 2: is not JSON" in err[0]
