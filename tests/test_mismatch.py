"""The tokenizer-mismatch page's data: token spans, groups, alignment effects (library only),
checked against independent re-statements and against the comparison tables they come from."""

from __future__ import annotations

import math

import numpy as np
import pytest

import uld_explorer as ux
from uld_explorer import charts, plots, tidy
from uld_explorer.compare import ComparisonConfig, compare_distributions
from uld_explorer.text import TokenizationReport, Tokenized, byte_offset_alignment, tokenization_report

TEXTS = {
    "accented": " naïve résumé, le café était très bon.",
    "cjk": "東京は日本の首都です。大阪は二番目に大きい都市です。",
    "emoji": " I love 🍕 and 🚀! Family: 👩‍👩‍👧‍👦 and 🏳️‍🌈.",
    "code": "    return a + b\n\nprint(add(2, 3))\n",
}


def toy_report() -> TokenizationReport:
    t = Tokenized("abcdef", (0, 1, 2, 3), ("ab", "c", "de", "f"), ((0, 2), (2, 3), (3, 5), (5, 6)), None)
    s = Tokenized("abcdef", (0, 1, 2, 3), ("a", "bc", "d", "ef"), ((0, 1), (1, 3), (3, 4), (4, 6)), None)
    return TokenizationReport(t, s, (0, 3, 6), byte_offset_alignment(t, s), 1.0)


def test_token_spans_frame_on_a_hand_worked_case():
    f = tidy.token_spans_frame(toy_report(), line_bytes=4)
    # both sides cut at 3: segments [0, 3) and [3, 6); no token has a twin (ab/a, c/bc, de/d, f/ef)
    assert f["agrees"].tolist() == [False] * 8
    assert f["segment"].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    # lines break at the common boundary 3 (line_bytes 4 < 6): x restarts there
    assert f["line"].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert f[f.side == "teacher"][["x0", "x1"]].values.tolist() == [[0, 2], [2, 3], [0, 2], [2, 3]]
    with pytest.raises(ValueError, match="line_bytes must be a positive"):
        tidy.token_spans_frame(toy_report(), line_bytes=0)


@pytest.fixture(scope="module")
def pair():
    return ux.load_model(ux.DEFAULT_TEACHER, progress=False), ux.load_model(ux.DEFAULT_STUDENT, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("key", list(TEXTS))
def test_token_spans_agree_exactly_where_the_other_side_has_the_same_bytes(pair, key):
    teacher, student = pair
    report = tokenization_report(teacher.tokenizer, student.tokenizer, TEXTS[key])
    f = tidy.token_spans_frame(report, line_bytes=24)
    n = len(TEXTS[key].encode("utf-8"))
    for side, tok in (("teacher", report.teacher), ("student", report.student)):
        part = f[f.side == side]
        assert len(part) == len(tok)
        # contiguous, every byte once
        assert part["start"].iloc[0] == 0 and part["end"].iloc[-1] == n
        assert (part["start"].values[1:] == part["end"].values[:-1]).all()
        other = report.student if side == "teacher" else report.teacher
        twins = set(other.byte_spans)
        assert part["agrees"].tolist() == [tuple(s) in twins for s in tok.byte_spans]
        # a line never starts inside a token and its offsets stay within the line
        assert (part["x0"] >= 0).all() and (part["x1"] > part["x0"]).all()
    # tokens of one segment lie between two consecutive common boundaries on both sides
    cb = report.common_boundaries
    for r in f.itertuples():
        assert cb[r.segment] <= r.start and r.end <= cb[r.segment + 1]
    # the alignment's groups are segments (those with a predicted token on both sides)
    seg_spans = {(cb[i], cb[i + 1]) for i in range(len(cb) - 1)}
    assert {g.byte_span for g in report.groups} <= seg_spans
    g = tidy.groups_frame(report)
    assert len(g) == len(report.groups)
    for row, grp in zip(g.itertuples(), report.groups):
        assert (row.start, row.end) == grp.byte_span and row.n_teacher == len(grp.teacher_tokens)
        assert row.teacher_tokens.replace(" | ", "") == report.teacher.text_bytes[row.start:row.end].decode(
            "utf-8", "backslashreplace") or row.n_teacher >= 1


@pytest.fixture(scope="module")
def tables(pair):
    teacher, student = pair
    text, prompt = TEXTS["accented"], "Words:"
    t_tok, t_dist = ux.compare.next_token_distributions(teacher, text, prompt=prompt)
    s_tok, s_dist = ux.compare.next_token_distributions(student, text, prompt=prompt)
    cfg = ComparisonConfig(costs=(), value_ot=False)
    return [compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist,
                                  config=cfg.replace(alignment=a, merge=m or "observed"))
            for a, m in tidy.ALIGNMENT_VARIANTS.values()], (t_tok, t_dist, s_tok, s_dist)


@pytest.mark.slow
def test_alignment_effects_come_from_the_rows_that_hold_each_token(tables):
    (pos, obs, bay), (t_tok, t_dist, s_tok, s_dist) = tables
    f = tidy.alignment_effects_frame(pos, obs, bay)
    assert f["token"].tolist() == list(range(t_tok.first_predicted, len(t_tok)))
    for r in f.itertuples():
        j = r.token
        # positional: the j-th teacher token with the j-th student token, ULD re-stated from the paper
        if j < len(s_tok):
            p, q = t_dist[j].astype(np.float64), s_dist[j].astype(np.float64)
            p, q = p / p.sum(), q / q.sum()
            n = max(p.size, q.size)
            ps, qs = np.zeros(n), np.zeros(n)
            ps[: p.size], qs[: q.size] = np.sort(p)[::-1], np.sort(q)[::-1]
            assert r.uld_positional == pytest.approx(np.abs(ps - qs).sum(), abs=1e-5)
            assert r.student_positional == s_tok.strings[j]
            assert r.same_span == (t_tok.byte_spans[j] == s_tok.byte_spans[j])
        else:
            assert math.isnan(r.uld_positional) and r.student_positional is None
        # byte-offset: the group whose teacher tokens hold j, under each merge
        if not math.isnan(r.uld_observed):
            g = [row for row in obs if row.kind == "token" and j in row.teacher_tokens]
            assert len(g) == 1 and r.uld_observed == g[0].uld and r.group == g[0].index
            b = [row for row in bay if row.kind == "token" and j in row.teacher_tokens]
            assert r.uld_bayesian == b[0].uld
            assert r.shift == pytest.approx(r.uld_observed - r.uld_positional)
    # a one-token group is the same vector under both merges
    one = f[(f.group_teacher_tokens == 1) & (f.group_student_tokens == 1)]
    assert len(one) and np.allclose(one["uld_observed"], one["uld_bayesian"])
    s = tidy.alignment_effects_summary(f)
    assert s["uld_positional"] == pytest.approx(np.nanmean(f["uld_positional"]))
    paired = f[f["same_span"].notna()]
    assert s["misaligned"] == pytest.approx(1 - paired["same_span"].astype(bool).mean())
    assert s["misaligned"] == pytest.approx(ux.misalignment_rate(t_tok, s_tok))


@pytest.mark.slow
def test_alignment_effects_refuse_tables_in_the_wrong_order(tables):
    (pos, obs, bay), _ = tables
    with pytest.raises(ValueError, match="in that order"):
        tidy.alignment_effects_frame(obs, pos, bay)
    with pytest.raises(ValueError, match="in that order"):
        tidy.alignment_effects_frame(pos, bay, obs)


@pytest.mark.slow
def test_the_pictures_draw_what_the_frames_hold(tables, pair):
    (pos, obs, bay), _ = tables
    f = tidy.alignment_effects_frame(pos, obs, bay)
    fig = plots.plot_alignment_effects(f)
    top = fig.axes[0]
    ys = {line.get_label(): line.get_ydata() for line in top.get_lines()}
    np.testing.assert_allclose(ys["positional"], f["uld_positional"].astype(float), equal_nan=True)
    np.testing.assert_allclose(ys["byte-offset, bayesian"], f["uld_bayesian"].astype(float), equal_nan=True)
    spec = charts.chart_alignment_effects(f).to_dict()
    assert len(spec["vconcat"]) == 2
    report = tokenization_report(pair[0].tokenizer, pair[1].tokenizer, TEXTS["cjk"])
    spans = tidy.token_spans_frame(report, line_bytes=30)
    fig = plots.plot_token_spans(spans, max_lines=2)
    boxes = fig.axes[0].patches
    assert len(boxes) == int((spans["line"] < 2).sum())
    from matplotlib.colors import to_rgb

    from uld_explorer.plots import AGREE_COLOR, DIFFER_COLOR

    expect = [to_rgb(AGREE_COLOR if a else DIFFER_COLOR) for a in spans[spans["line"] < 2].sort_values(
        ["line", "side"], key=lambda c: c.map({"teacher": 0, "student": 1}) if c.name == "side" else c,
        kind="stable")["agrees"]]
    assert [tuple(round(c, 4) for c in b.get_facecolor()[:3]) for b in boxes] == [
        tuple(round(c, 4) for c in rgb) for rgb in expect]
    spec = charts.chart_token_spans(spans).to_dict()
    rows = spec["layer"][0]["encoding"]["y"]["sort"]
    assert rows == [f"{line + 1} {side}" for line in sorted(set(spans["line"])) for side in ("teacher", "student")]
    # a label is the token's text where it fits its box, else an ellipsis (the tooltip has the text)
    assert ((spans["label"] == spans["shown"]) | (spans["label"] == "…")).all()
    assert (spans["label"] == spans["shown"]).equals(spans["shown"].str.len() <= tidy.CHARS_PER_BYTE * spans["n_bytes"])
    assert [t.get_text() for t in fig.axes[0].texts if t.get_text() not in ("teacher", "student")] == list(
        spans[spans["line"] < 2].sort_values(["line", "side"], key=lambda c: c.map({"teacher": 0, "student": 1})
                                             if c.name == "side" else c, kind="stable")["label"])
