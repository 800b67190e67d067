"""Interactive Altair (Vega-Lite) charts for the app, drawn from the tidy frames of :mod:`uld_explorer.tidy`.

The same frames feed the matplotlib figures of :mod:`uld_explorer.plots` (exports, notebooks), so
what a chart shows and what its exported figure shows are decided in one place. Hovering shows the
token string and its probability; the charts that select (positions, plan cells) carry a named
selection parameter the page reads back. Colours are the Okabe-Ito palette (colour-blind safe),
the same as the figures': the teacher blue, the student orange, differences vermillion.

Altair ships with Streamlit; this module imports it only when a chart is built (the library itself
does not need it).
"""

from __future__ import annotations

from typing import Any

from .plots import (
    DIFF_COLOR, PUSH_COLORS, STUDENT_COLOR, TEACHER_COLOR, metric_title, run_colors, run_labels,
)

__all__ = [
    "chart_alignment_effects", "chart_distributions", "chart_forest", "chart_kl_terms", "chart_lens", "chart_lesson",
    "chart_plan", "chart_positions", "chart_probe", "chart_run_curves", "chart_scale", "chart_sorted", "chart_token_spans",
    "chart_top_k", "select_position",
]

#: Name of the selection parameter of :func:`chart_positions` (the page reads ``selection[...]``).
POSITION_SELECTION = "position"
#: Linked views: the selection of a rank on :func:`chart_sorted` (field ``rank``) and of a token on
#: :func:`chart_distributions` (fields ``side``, ``index``).
RANK_SELECTION, TOKEN_SELECTION = "rank", "token"
LIT_COLOR = "#000000"
_SIDE_SCALE = {"domain": ["teacher", "student"], "range": [TEACHER_COLOR, STUDENT_COLOR]}


def _alt():
    import altair as alt

    return alt


def chart_top_k(frame: Any, title: str = "the most probable next tokens", *, selectable: bool = False,
                lit_rank: int | None = None) -> Any:
    """Teacher and student top-k bars side by side (a :func:`~uld_explorer.tidy.top_k_frame`),
    token strings on the axis, strings both vocabularies have drawn solid, the others hatched
    light; hover for the token and its probability. Linked views: ``selectable`` lets a click on a
    bar pick its rank (selection parameter :data:`RANK_SELECTION`, field ``rank``); ``lit_rank``
    outlines the two bars of that rank."""
    alt = _alt()
    data = frame.assign(token_shown=frame["token"].map(repr),
                        in_both=frame["shared"].map({True: "in both vocabularies", False: "this side only"})
                        .fillna("unknown"))
    present = [v for v in ("in both vocabularies", "this side only", "unknown") if v in set(data["in_both"])]
    opacity = {"in both vocabularies": 1.0, "this side only": 0.4, "unknown": 1.0}
    base = alt.Chart(data).encode(
        y=alt.Y("token_shown:N", sort=None, title=None, axis=alt.Axis(labelOverlap=False, labelLimit=140)),
        x=alt.X("prob:Q", title="probability", scale=alt.Scale(domain=[0, max(1e-9, float(data["prob"].max()))])),
        color=alt.Color("side:N", scale=alt.Scale(**_SIDE_SCALE), legend=None),
        opacity=alt.Opacity("in_both:N", scale=alt.Scale(domain=present, range=[opacity[v] for v in present]),
                            title="token string", legend=alt.Legend(orient="bottom")),
        tooltip=[alt.Tooltip("side:N"), alt.Tooltip("rank:Q"), alt.Tooltip("token_shown:N", title="token"),
                 alt.Tooltip("prob:Q", format=".4f"), alt.Tooltip("in_both:N", title="string")],
    )
    if lit_rank is not None:
        lit = f"datum.rank == {int(lit_rank)}"
        base = base.encode(stroke=alt.condition(lit, alt.value(LIT_COLOR), alt.value(None)),
                           strokeWidth=alt.condition(lit, alt.value(2), alt.value(0)))
    if selectable:
        base = base.add_params(alt.selection_point(name=RANK_SELECTION, fields=["rank"], on="click", clear=False))
    return base.mark_bar().properties(height=alt.Step(20), width=230).facet(
        column=alt.Column("side:N", sort=["teacher", "student"], title=None, header=alt.Header(labelFontSize=13))
    ).properties(title=title).resolve_scale(y="independent")


def chart_lens(frame: Any, teacher: Any, title: str = "what each loss does to the student's logits") -> Any:
    """The gradient lens of one position: the teacher's top tokens (a
    :func:`~uld_explorer.tidy.top_k_frame`, its ``teacher`` rows) on the left, then one panel per
    loss with its push :math:`-\\partial L / \\partial z` on each of the student's top tokens (a
    :func:`~uld_explorer.tidy.lens_push_frame`), rank 1 on top: bars right (green) push a token up,
    left (vermillion) push it down. Each loss has its own x axis (sizes compare within a loss, the
    directions across). Hover for the numbers. The matplotlib twin is :func:`~uld_explorer.plots.plot_lens`."""
    alt = _alt()
    t = teacher[teacher["side"] == "teacher"] if "side" in teacher else teacher
    t = t.assign(token_shown=t["token"].map(lambda x: repr(str(x))))
    left = alt.Chart(t).mark_bar(color=TEACHER_COLOR).encode(
        y=alt.Y("token_shown:N", sort=alt.EncodingSortField("rank", order="ascending"), title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=140)),
        x=alt.X("prob:Q", title="probability"),
        tooltip=[alt.Tooltip("rank:Q"), alt.Tooltip("token_shown:N", title="token"), alt.Tooltip("prob:Q", format=".4f")],
    ).properties(height=alt.Step(20), width=150, title="teacher's top tokens")
    data = frame.assign(token_shown=frame["token"].map(lambda x: repr(str(x))),
                        role=frame["target"].map({True: "CE target", False: ""}))
    order = list(dict.fromkeys(data["label"]))
    present = [d for d in PUSH_COLORS if d in set(data["direction"])] or ["up"]
    right = alt.Chart(data).mark_bar().encode(
        y=alt.Y("token_shown:N", sort=alt.EncodingSortField("rank", order="ascending"), title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=140)),
        x=alt.X("push:Q", title="push (-gradient)"),
        color=alt.Color("direction:N", title="push", legend=alt.Legend(orient="bottom"),
                        scale=alt.Scale(domain=present, range=[PUSH_COLORS[d] for d in present])),
        tooltip=[alt.Tooltip("label:N", title="loss"), alt.Tooltip("rank:Q", title="student rank"),
                 alt.Tooltip("token_shown:N", title="token"), alt.Tooltip("prob:Q", title="student prob", format=".4f"),
                 alt.Tooltip("push:Q", format="+.4g"), alt.Tooltip("role:N", title="")],
    ).properties(height=alt.Step(20), width=120).facet(
        column=alt.Column("label:N", sort=order, title="student's top tokens: each loss's push",
                          header=alt.Header(labelFontSize=12)),
    ).resolve_scale(x="independent")
    return alt.hconcat(left, right).properties(title=title)


def chart_sorted(frame: Any, log_x: bool = False, title: str | None = None, *, selectable: bool = False,
                 selected: int | None = None) -> Any:
    """Both sorted curves (a :func:`~uld_explorer.tidy.sorted_frame`) as steps, the band between
    them shaded: its area is ULD (over the ranks shown).

    Altair embeds at most 5,000 rows (the curves take two per rank): for a real vocabulary pass
    ``sorted_frame(p, q, binned=True)`` (~1,900 rows for 151,936 ranks, the same area).

    Linked views: ``selectable`` adds a point per rank that a click selects (selection parameter
    :data:`RANK_SELECTION`, field ``rank``); ``selected`` marks that rank with a rule and its
    two points."""
    alt = _alt()
    if "width" in frame and len(frame):  # close the last step: its bin ends at rank + width
        import pandas as pd

        last = frame.iloc[[-1]]
        frame = pd.concat([frame, last.assign(rank=last["rank"] + last["width"])], ignore_index=True)
    long = frame.melt(id_vars=["rank"], value_vars=["teacher", "student"], var_name="side", value_name="prob")
    x = alt.X("rank:Q", title="rank i (largest probability first)",
              scale=alt.Scale(type="log" if log_x else "linear"))
    band = alt.Chart(frame).mark_area(interpolate="step-after", color=DIFF_COLOR, opacity=0.3).encode(
        x=x, y=alt.Y("low:Q", title="probability"), y2="high:Q",
        tooltip=[alt.Tooltip("rank:Q"), alt.Tooltip("teacher:Q", format=".4f"), alt.Tooltip("student:Q", format=".4f")],
    )
    lines = alt.Chart(long).mark_line(interpolate="step-after", strokeWidth=2.2).encode(
        x=x, y="prob:Q", color=alt.Color("side:N", scale=alt.Scale(**_SIDE_SCALE), title=None),
        strokeDash=alt.StrokeDash("side:N", scale=alt.Scale(domain=["teacher", "student"], range=[[1, 0], [6, 3]]),
                                  legend=None),
    )
    layers = [band, lines]
    if selectable or selected is not None:
        pick = alt.selection_point(name=RANK_SELECTION, fields=["rank"], on="click", clear=False,
                                   value=None if selected is None else [{"rank": float(selected)}])
        points = alt.Chart(long).mark_point(filled=True).encode(
            x=x, y="prob:Q", color=alt.Color("side:N", scale=alt.Scale(**_SIDE_SCALE), title=None),
            size=alt.condition(f"datum.rank == {float(selected) if selected is not None else -1}", alt.value(140),
                               alt.value(28)),
            tooltip=[alt.Tooltip("rank:Q"), alt.Tooltip("side:N"), alt.Tooltip("prob:Q", format=".4f")],
        ).add_params(pick)
        layers.append(points)
        if selected is not None:
            layers.append(alt.Chart(frame[frame["rank"] == float(selected)]).mark_rule(
                color=LIT_COLOR, strokeDash=[4, 3]).encode(x=x))
    return alt.layer(*layers).properties(title=title or "sorted: shaded area = ULD", height=260)


def chart_plan(frame: Any, title: str = "transport plan", mass_title: str = "mass", *,
               lit: tuple[int | None, int | None] | None = None) -> Any:
    """A transport plan heatmap (a :func:`~uld_explorer.tidy.plan_frame`): rows the teacher's tokens,
    columns the student's, marked cells (cost 0 / same string) outlined; hover for both tokens and
    the mass. Empty cells are white. Linked views: ``lit = (row, col)`` (drawing positions, None:
    none) frames that row and that column in black."""
    alt = _alt()
    rows = list(dict.fromkeys(frame.sort_values("row")["teacher"]))
    cols = list(dict.fromkeys(frame.sort_values("col")["student"]))
    data = frame.assign(teacher_shown=frame["teacher"].map(repr), student_shown=frame["student"].map(repr))
    y = alt.Y("row:O", title="teacher token", axis=alt.Axis(labelExpr=_label_expr(rows), labelOverlap=False))
    x = alt.X("col:O", title="student token",
              axis=alt.Axis(labelExpr=_label_expr(cols), labelAngle=-45, labelOverlap=False))
    top = max(1e-12, float(data["mass"].max()))
    step = max(8, min(24, 300 // max(1, len(cols))))  # ~300 px of cells at most: half a 1024-px page
    x = alt.X("col:O", title="student token",
              axis=alt.Axis(labelExpr=_label_expr(cols), labelAngle=-45, labelOverlap=step < 14, labelFontSize=10))
    y = alt.Y("row:O", title="teacher token",
              axis=alt.Axis(labelExpr=_label_expr(rows), labelOverlap=step < 14, labelFontSize=10))
    cells = alt.Chart(data).mark_rect().encode(
        x=x, y=y, color=alt.Color("mass:Q", scale=alt.Scale(domain=[0, top], range=["#ffffff", "#08306b"],
                                                            interpolate="rgb"), title=mass_title),
        opacity=alt.condition("datum.mass > 0", alt.value(1.0), alt.value(0.0)),
        tooltip=[alt.Tooltip("teacher_shown:N", title="teacher"), alt.Tooltip("student_shown:N", title="student"),
                 alt.Tooltip("mass:Q", format=".4f"), alt.Tooltip("marked:N", title="same string")],
    )
    marks = alt.Chart(data[data["marked"]]).mark_rect(fill=None, stroke=DIFF_COLOR, strokeWidth=1.5).encode(x=x, y=y)
    layers = [cells, marks]
    if lit is not None:
        import numpy as np

        row, col = lit
        mask = np.zeros(len(data), dtype=bool)
        if row is not None:
            mask |= data["row"].to_numpy() == row
        if col is not None:
            mask |= data["col"].to_numpy() == col
        band = data[mask]
        if len(band):
            layers.append(alt.Chart(band).mark_rect(fill=LIT_COLOR, fillOpacity=0.08, stroke=LIT_COLOR,
                                                    strokeWidth=0.6).encode(x=x, y=y))
    return alt.layer(*layers).properties(title=title, width=alt.Step(step), height=alt.Step(step))


def _label_expr(labels: list) -> str:
    """A Vega expression mapping an axis position to its (quoted) label."""
    import json

    return f"{json.dumps([repr(str(x)) for x in labels])}[datum.value]"


def chart_positions(frame: Any, selected: int | None = None, title: str | None = None) -> Any:
    """Every position's measures (a :func:`~uld_explorer.tidy.positions_frame`) over positions, one
    panel per scale group sharing the x axis (the registry's ``panel``: ULD/2 and token OT on
    their common [0, 1] scale, KL and the hybrid in nats, a new measure in a panel of its own),
    each measure in its registry colour. x is the position, labelled with the text it predicts.
    Click a position to select it (selection parameter :data:`POSITION_SELECTION`, field ``index``)."""
    from .measures import MEASURES, PANELS

    alt = _alt()
    pick = alt.selection_point(name=POSITION_SELECTION, fields=["index"], on="click", clear=False,
                               value=None if selected is None else [{"index": int(selected)}])
    data = frame if "panel" in frame else frame.assign(  # a frame from elsewhere: the registry's panels
        panel=[PANELS.get(MEASURES[m].panel, "other") if m in MEASURES else "other" for m in frame["measure"]])
    measures = list(dict.fromkeys(frame["measure"]))
    names = list(dict.fromkeys(frame["name"]))
    labels = list(dict.fromkeys(frame.sort_values("index")["position"]))
    step = max(8, min(44, 1000 // max(1, len(labels))))  # ~1,000 px wide; long texts: every label thinner
    x = alt.X("index:O", title="position (the text it predicts)",
              axis=alt.Axis(labelExpr=_label_expr_raw(labels), labelAngle=-50, labelLimit=110,
                            labelOverlap=len(labels) > 60))
    base = alt.Chart().encode(
        x=x, y=alt.Y("value:Q", title=None),
        color=alt.Color("name:N", title=None, legend=alt.Legend(orient="top"),
                        scale=alt.Scale(domain=names, range=[MEASURES[m].color if m in MEASURES else "#999999"
                                                             for m in measures])),
        shape=alt.Shape("name:N", title=None, scale=alt.Scale(domain=names), legend=None),
        tooltip=[alt.Tooltip("position:N"), alt.Tooltip("name:N", title="measure"),
                 alt.Tooltip("value:Q", format=".4f")],
    )
    lines = base.mark_line(strokeWidth=1.6, opacity=0.8)
    points = base.mark_point(filled=True).encode(
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.4)),
        size=alt.condition(pick, alt.value(150), alt.value(45)),
    ).add_params(pick)
    rule = alt.Chart().mark_rule(color="#444", strokeDash=[4, 3]).encode(x=x).transform_filter(pick)
    return alt.layer(lines, points, rule, data=data).properties(height=150, width=alt.Step(step)).facet(
        row=alt.Row("panel:N", title=None, sort=[*PANELS.values(), *sorted(set(data["panel"]) - set(PANELS.values()))],
                    header=alt.Header(labelAngle=0, labelAlign="left", labelAnchor="start", labelFontSize=12,
                                      labelOrient="top")),
    ).resolve_scale(y="independent").properties(title=title or "per position: click one to look inside")


def _by_index(index: Any, labels: list) -> list:
    """Labels as a list indexed by ``index`` (gaps empty), for :func:`_label_expr_raw`."""
    out = [""] * (max(index, default=-1) + 1)
    for i, label in zip(index, labels):
        out[int(i)] = label
    return out


def select_position(spec: dict, index: int | None) -> dict:
    """A :func:`chart_positions` spec (``chart.to_dict()``, built once per table) with position
    ``index`` selected: the selection's value is the only part of the spec that depends on it, so
    a page caches the spec and patches it instead of rebuilding the chart (~70 ms) per click."""
    params = [dict(p, value=None if index is None else [{"index": int(index)}]) if p.get("name") == POSITION_SELECTION
              else p for p in spec.get("params", [])]
    if not any(p.get("name") == POSITION_SELECTION for p in params):
        raise ValueError(f"not a chart_positions spec: no top-level selection parameter {POSITION_SELECTION!r}")
    return {**spec, "params": params}


def _label_expr_raw(labels: list) -> str:
    import json

    return f"{json.dumps([str(x) for x in labels])}[datum.value]"


def chart_distributions(p: Any, q: Any, teacher_tokens: Any, student_tokens: Any, *, selectable: bool = False,
                        lit: tuple[int | None, int | None] | None = None) -> Any:
    """Teacher and student probabilities as bars over their OWN vocabulary index (the synthetic
    playground): the same x is the same token id on both sides, which is how KL compares them.

    Linked views: ``selectable`` lets a click select a bar (selection parameter
    :data:`TOKEN_SELECTION`, fields ``side`` and ``index``); ``lit = (teacher index, student
    index)`` draws those two bars outlined and the others faded (None: nothing on that side)."""
    import pandas as pd

    alt = _alt()
    from .distributions import as_float64

    rows = [{"side": side, "index": i, "token": str(toks[i]), "prob": float(v)}
            for side, x, toks in (("teacher", as_float64(p), teacher_tokens), ("student", as_float64(q), student_tokens))
            for i, v in enumerate(x)]
    n = max(len(teacher_tokens), len(student_tokens))
    step = max(2, min(16, 330 // max(1, n)))
    data = pd.DataFrame(rows)
    enc: dict[str, Any] = {}
    if lit is not None:
        data["lit"] = [(r["side"] == "teacher" and r["index"] == lit[0]) or (r["side"] == "student" and r["index"] == lit[1])
                       for r in rows]
        enc.update(opacity=alt.condition("datum.lit", alt.value(1.0), alt.value(0.3)),
                   stroke=alt.condition("datum.lit", alt.value(LIT_COLOR), alt.value(None)),
                   strokeWidth=alt.condition("datum.lit", alt.value(2), alt.value(0)))
    chart = alt.Chart(data).mark_bar().encode(
        x=alt.X("index:O", title="token index in its own vocabulary",
                axis=alt.Axis(labelOverlap=True, labelAngle=0, labelFontSize=10)),
        y=alt.Y("prob:Q", title="probability"),
        color=alt.Color("side:N", scale=alt.Scale(**_SIDE_SCALE), legend=None),
        tooltip=[alt.Tooltip("side:N"), alt.Tooltip("token:N"), alt.Tooltip("prob:Q", format=".4f")], **enc,
    )
    if selectable:
        chart = chart.add_params(alt.selection_point(name=TOKEN_SELECTION, fields=["side", "index"], on="click",
                                                     clear=False))
    return chart.properties(height=110, width=alt.Step(step)).facet(
        row=alt.Row("side:N", sort=["teacher", "student"], title=None))


def chart_kl_terms(frame: Any, title: str | None = None) -> Any:
    """KL's terms :math:`p_i \\log(p_i / q_i)`, one bar per token (a
    :func:`~uld_explorer.tidy.kl_terms_frame`): vermillion where the student is below the teacher
    (the term adds to KL), blue where it is above (the term subtracts); their sum is KL. Hover for
    both probabilities."""
    alt = _alt()
    kl = float(frame["term"].sum())
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("token:N", sort=None, title="token (one vocabulary)", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("term:Q", title="p_i log(p_i / q_i)"),
        color=alt.Color("sign:N", title=None,  # legend on the right: below, it would eat the fixed height
                        scale=alt.Scale(domain=["student below the teacher", "student above the teacher"],
                                        range=[DIFF_COLOR, TEACHER_COLOR])),
        tooltip=[alt.Tooltip("token:N"), alt.Tooltip("teacher:Q", title="p_i", format=".4f"),
                 alt.Tooltip("student:Q", title="q_i", format=".4f"), alt.Tooltip("term:Q", format="+.4f")],
    ).properties(title=title or f"KL's terms: their sum is KL = {kl:.4f}", height=260)


def chart_lesson(step: Any, numbers: Any) -> Any:
    """The figure of a lesson step (:class:`~uld_explorer.lesson.Step`'s ``figure``) for the
    learner's pair (:class:`~uld_explorer.lesson.Numbers`): every step's one chart, built here so
    the Learn page and the tests draw the same thing."""
    from . import tidy

    n = numbers
    t_tok, s_tok = n.teacher_tokens, n.student_tokens
    kind = step.figure
    if kind == "kl_terms":
        return chart_kl_terms(tidy.kl_terms_frame(n.p, n.q, t_tok))
    if kind == "distributions":
        return chart_distributions(n.p, n.q, t_tok, s_tok)
    if kind == "sorted":
        return chart_sorted(tidy.sorted_frame(n.p, n.q), title=f"sorted, padded to n = {n.n}: shaded area = ULD "
                                                                f"= {n.uld:.4f}")
    if kind == "area":
        frame = tidy.sorted_frame(n.p, n.q)
        shown = frame.assign(low=frame["low"].where(frame["rank"] <= n.upto, frame["high"]))
        return chart_sorted(shown, title=f"the area up to rank {n.upto}: {n.partial_uld:.4f} (ULD = {n.uld:.4f})")
    if kind == "value_plan":
        result = n.summary.value_ot
        layout = tidy.value_plan_layout(result, n.p, n.q, t_tok, s_tok, order="rank")
        return chart_plan(tidy.plan_frame(result.plan, layout), mass_title="matched",
                          title=f"POT's value-space plan, ranks in order (n · W1 = {result.value:.4f})")
    if kind == "scale":
        return chart_scale({"ULD / 2 (identity blind)": n.uld / 2, "token-space OT (sees identities)": n.token_ot})
    if kind == "lens":
        from .lens import lens_frame

        table = lens_frame(n.lens, top_n=min(8, n.q.size), student_tokens=s_tok)
        pushes = tidy.lens_push_frame(table)
        return chart_lens(pushes[pushes["loss"].isin(("ce", "uld"))],  # the two terms of the paper's loss
                          tidy.top_k_frame(n.p, n.q, t_tok, s_tok, k=min(8, n.p.size)), title="CE and ULD's pushes")
    raise ValueError(f"unknown lesson figure {kind!r}")


def chart_scale(values: dict[str, float], domain: tuple[float, float] = (0.0, 1.0), title: str = "one scale, [0, 1]") -> Any:
    """Numbers that share a scale as bars on ONE axis (e.g. ULD/2 next to token-space OT, both in
    [0, 1]): the first bar vermillion, the second blue, the others grey."""
    import pandas as pd

    alt = _alt()
    data = pd.DataFrame({"measure": list(values), "value": [float(v) for v in values.values()]})
    palette = [DIFF_COLOR, TEACHER_COLOR] + ["#999999"] * max(0, len(values) - 2)
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("value:Q", scale=alt.Scale(domain=list(domain)), title=title),
        y=alt.Y("measure:N", title=None, sort=list(values), axis=alt.Axis(labelLimit=260)),
        color=alt.Color("measure:N", legend=None, scale=alt.Scale(domain=list(values), range=palette[: len(values)])),
        tooltip=["measure", alt.Tooltip("value:Q", format=".4f")],
    ).properties(height=alt.Step(26))


def chart_token_spans(frame: Any, title: str = "the text under both tokenizers") -> Any:
    """Both tokenizations as byte spans (a :func:`~uld_explorer.tidy.token_spans_frame`), teacher
    above student, one pair of rows per line, as wide as its container: a box per token as wide as
    its bytes, green where the other side has a token with the same bytes, purple where the sides
    cut the text differently. Hover a box for the token, its id, its bytes and its segment
    (byte-offset group)."""
    from .plots import AGREE_COLOR, DIFFER_COLOR

    alt = _alt()
    data = frame.assign(cut=frame["agrees"].map({True: "same bytes on both sides", False: "cut differently"}),
                        row=[f"{line + 1} {side}" for line, side in zip(frame["line"], frame["side"])],
                        mid=(frame["x0"] + frame["x1"]) / 2)
    rows = [f"{line + 1} {side}" for line in sorted(set(frame["line"])) for side in ("teacher", "student")]
    width = max(8, int(data["x1"].max()) if len(data) else 8)
    x = alt.X("x0:Q", title="byte offset within the line", scale=alt.Scale(domain=[0, width], nice=False))
    y = alt.Y("row:N", sort=rows, title=None, axis=alt.Axis(labelFontSize=11, labelExpr="split(datum.value, ' ')[1]"))
    tooltip = [alt.Tooltip("side:N"), alt.Tooltip("token:Q", title="token j"), alt.Tooltip("id:Q"),
               alt.Tooltip("shown:N", title="text"), alt.Tooltip("start:Q", title="first byte"),
               alt.Tooltip("end:Q", title="end byte"), alt.Tooltip("segment:Q"), alt.Tooltip("cut:N")]
    boxes = alt.Chart(data).mark_rect(stroke="#333", strokeWidth=0.8, opacity=0.55).encode(
        x=x, x2="x1:Q", y=y,
        color=alt.Color("cut:N", title=None, legend=alt.Legend(orient="top"),
                        scale=alt.Scale(domain=["same bytes on both sides", "cut differently"],
                                        range=[AGREE_COLOR, DIFFER_COLOR])),
        tooltip=tooltip,
    )
    labels = alt.Chart(data).mark_text(fontSize=11).encode(x="mid:Q", y=y, text="label:N", tooltip=tooltip)
    lines = alt.Chart(data[data["side"] == "student"].drop_duplicates("line")).mark_rule(
        color="#999", strokeDash=[2, 2]).encode(y=alt.Y("row:N", sort=rows, bandPosition=1))
    return alt.layer(boxes, labels, lines).properties(width="container", height=alt.Step(24), title=title)


#: The columns of :func:`~uld_explorer.tidy.alignment_effects_frame` the charts draw, with their names.
ALIGNMENT_MEASURES = {"uld_positional": "positional", "uld_observed": "byte-offset, observed",
                      "uld_bayesian": "byte-offset, bayesian"}


def chart_alignment_effects(frame: Any, title: str | None = None) -> Any:
    """ULD per teacher token under the three ways of aligning (top, [0, 2]) and each side's mass
    on the shared strings (bottom, [0, 1]), from :func:`~uld_explorer.tidy.alignment_effects_frame`.
    Grey columns: the positional pair covers different bytes. Hover for the token, the student
    token it is paired with, its group and the values."""
    alt = _alt()
    data = frame.assign(position=[f"{j} {s!r}" for j, s in zip(frame["token"], frame["label"])],
                        misaligned=frame["same_span"].map(lambda v: v is False))
    labels = list(data["position"])
    x = alt.X("token:O", title="teacher token (the text it predicts)",
              axis=alt.Axis(labelExpr=_label_expr_raw(_by_index(frame["token"], labels)), labelAngle=-50,
                            labelLimit=110, labelOverlap=len(labels) > 60))
    step = max(8, min(40, 1000 // max(1, len(labels))))
    shade = alt.Chart(data).transform_filter("datum.misaligned").mark_rect(color="#999", opacity=0.18).encode(
        x=x, tooltip=[alt.Tooltip("position:N"), alt.Tooltip("student_positional:N", title="paired positionally with")])
    long = data.melt(id_vars=["token", "position", "student_positional", "group_label"],
                     value_vars=list(ALIGNMENT_MEASURES), var_name="measure", value_name="uld")
    long["alignment"] = long["measure"].map(ALIGNMENT_MEASURES)
    uld = alt.Chart(long).mark_line(point=True, strokeWidth=1.4).encode(
        x=x, y=alt.Y("uld:Q", title="ULD, in [0, 2]", scale=alt.Scale(domain=[0, 2])),
        color=alt.Color("alignment:N", title=None, legend=alt.Legend(orient="top"),
                        scale=alt.Scale(domain=list(ALIGNMENT_MEASURES.values()), range=["#000000", TEACHER_COLOR,
                                                                                          STUDENT_COLOR])),
        tooltip=[alt.Tooltip("position:N"), alt.Tooltip("alignment:N"), alt.Tooltip("uld:Q", format=".4f"),
                 alt.Tooltip("student_positional:N", title="paired positionally with"),
                 alt.Tooltip("group_label:N", title="byte-offset group")],
    )
    mass = data.melt(id_vars=["token", "position"], value_vars=["teacher_shared_mass", "student_shared_mass"],
                     var_name="side", value_name="mass")
    mass["side"] = mass["side"].str.replace("_shared_mass", "")
    shared = alt.Chart(mass).mark_line(point=True, strokeWidth=1.2).encode(
        x=x, y=alt.Y("mass:Q", title="mass on shared strings", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("side:N", scale=alt.Scale(**_SIDE_SCALE), legend=alt.Legend(orient="top", title=None)),
        strokeDash=alt.StrokeDash("side:N", legend=None, scale=alt.Scale(domain=["teacher", "student"],
                                                                         range=[[1, 0], [5, 3]])),
        tooltip=[alt.Tooltip("position:N"), alt.Tooltip("side:N"), alt.Tooltip("mass:Q", format=".4f")],
    )
    top = alt.layer(shade, uld).properties(height=190, width=alt.Step(step))
    bottom = alt.layer(shade, shared).properties(height=120, width=alt.Step(step))
    return alt.vconcat(top, bottom).resolve_scale(color="independent").properties(
        title=title or "ULD per teacher token under each alignment (grey: the positional pair covers other bytes)")


def chart_run_curves(frame: Any, metrics: Any = None, title: str | None = None, width: int = 380,
                     height: int = 170, columns: int = 2) -> Any:
    """Distillation curves (a :func:`~uld_explorer.distill.runs.metrics_frame`), one panel per
    metric (its own y axis, titled with its label and unit), one colour per run
    (:data:`~uld_explorer.plots.RUN_COLORS` in the order the runs come, legend
    ``"<run> (<loss>)"``), a point per recorded step; hover a point for the run, its loss, the step
    and the value. Top-1 agreements are drawn in percent. The matplotlib twin is
    :func:`~uld_explorer.plots.plot_run_curves`."""
    alt = _alt()
    from .distill.runs import METRICS

    if metrics is None:
        present = set(frame["metric"])
        metrics = [m for m in METRICS if m in present]
    labels = run_labels(frame)
    colors = run_colors(list(labels))
    data = frame[frame["metric"].isin(list(metrics))].assign(label=frame["run"].map(labels))
    color = alt.Color("label:N", title=None, legend=alt.Legend(orient="top", labelLimit=400),
                      scale=alt.Scale(domain=list(labels.values()) or [""], range=list(colors.values()) or ["#999"]))
    panels = []
    for metric in metrics:
        name, unit = metric_title(metric)
        top1 = metric.endswith("top1")
        sparse = metric.startswith(("eval_", "seen_"))
        y = alt.Y("value:Q", title="agreement" if top1 else (unit or None),
                  axis=alt.Axis(format=".0%") if top1 else alt.Axis(),
                  scale=alt.Scale(zero=top1))
        base = alt.Chart(data[data["metric"] == metric]).encode(
            x=alt.X("step:Q", title="step", axis=alt.Axis(tickMinStep=1, format="d"),
                    scale=alt.Scale(domainMin=0)), y=y, color=color,
            tooltip=[alt.Tooltip("run:N"), alt.Tooltip("loss_name:N", title="loss"), alt.Tooltip("step:Q"),
                     alt.Tooltip("value:Q", title=name, format=".1%" if top1 else ".4f")],
        )
        line = base.mark_line(strokeWidth=1.8, opacity=0.9)
        points = base.mark_point(filled=True, size=40 if sparse else 14, opacity=1.0)
        panels.append((line + points).properties(title=name, width=width, height=height))
    return alt.concat(*panels, columns=columns).resolve_scale(color="shared").properties(
        title=title or "")


def chart_probe(frame: Any, title: str | None = None, width: int = 230) -> Any:
    """The probe prompt's most probable next tokens (a
    :func:`~uld_explorer.distill.runs.probe_frame`): teacher and student bars side by side, rank 1
    on top, on ONE probability axis (a student that has not learnt yet shows near-empty bars);
    hover for the token and its probability. The matplotlib twin is
    :func:`~uld_explorer.plots.plot_probe`."""
    alt = _alt()
    data = frame.assign(token_shown=frame["token"].map(lambda t: repr(str(t))))
    top = max(1e-9, float(data["prob"].max()) if len(data) else 1.0)
    step = int(data["step"].iloc[0]) if len(data) else 0
    base = alt.Chart().encode(
        y=alt.Y("token_shown:N", sort=alt.EncodingSortField("rank", op="min", order="ascending"), title=None,
                axis=alt.Axis(labelOverlap=False, labelLimit=160)),
        x=alt.X("prob:Q", title="probability", scale=alt.Scale(domain=[0, top * 1.25])),
        color=alt.Color("side:N", scale=alt.Scale(**_SIDE_SCALE), legend=None),
        tooltip=[alt.Tooltip("side:N"), alt.Tooltip("rank:Q"), alt.Tooltip("token_shown:N", title="token"),
                 alt.Tooltip("prob:Q", format=".4g")],
    )
    labels = base.mark_text(align="left", dx=3, fontSize=10, color="#444").encode(text=alt.Text("prob:Q", format=".3g"))
    return alt.layer(base.mark_bar(), labels, data=data).properties(height=alt.Step(20), width=width).facet(
        column=alt.Column("side:N", sort=["teacher", "student"], title=None, header=alt.Header(labelFontSize=13))
    ).resolve_scale(y="independent").properties(title=title or f"the probe's next token, step {step}")


def chart_forest(frame: Any, title: str | None = None, width: int = 230) -> Any:
    """An experiment's forest plot (a :func:`~uld_explorer.distill.results.results_frame`): per
    metric a panel, per loss its paired difference against the baseline (a point) and its interval
    (a bar), the zero line dotted; coloured by verdict (better, worse, inside the noise: the
    colours of :data:`~uld_explorer.plots.VERDICT_COLORS`). Hover for the numbers. The
    matplotlib twin is :func:`~uld_explorer.plots.plot_forest`."""
    from .plots import VERDICT_COLORS

    alt = _alt()
    data = frame[frame["verdict"].notna()].assign(
        panel=[f"{label} ({'pp' if unit == '%' else unit})" for label, unit in
               zip(frame.loc[frame["verdict"].notna(), "label"], frame.loc[frame["verdict"].notna(), "unit"])])
    color = alt.Color("verdict:N", title=None, legend=alt.Legend(orient="top"),
                      scale=alt.Scale(domain=list(VERDICT_COLORS), range=list(VERDICT_COLORS.values())))
    y = alt.Y("loss:N", title=None, sort=list(dict.fromkeys(data["loss"])))
    tooltip = [alt.Tooltip("loss:N"), alt.Tooltip("label:N", title="metric"), alt.Tooltip("vs:N", title="minus"),
               alt.Tooltip("diff:Q", format=".4g"), alt.Tooltip("diff_low:Q", title="low", format=".4g"),
               alt.Tooltip("diff_high:Q", title="high", format=".4g"), alt.Tooltip("verdict:N")]
    bars = alt.Chart().mark_rule(strokeWidth=3).encode(x=alt.X("diff_low:Q", title="difference"), x2="diff_high:Q",
                                                       y=y, color=color, tooltip=tooltip)
    points = alt.Chart().mark_point(filled=True, size=70).encode(x="diff:Q", y=y, color=color, tooltip=tooltip)
    zero = alt.Chart().mark_rule(color="#444", strokeDash=[3, 3]).encode(x=alt.datum(0))
    return alt.layer(bars, points, zero, data=data).properties(width=width, height=alt.Step(26)).facet(
        facet=alt.Facet("panel:N", title=None, sort=list(dict.fromkeys(data["panel"]))), columns=3,
    ).resolve_scale(x="independent").properties(
        title=title or f"paired difference against {data['vs'].iloc[0] if len(data) else 'the baseline'}, "
                       f"with its interval")
