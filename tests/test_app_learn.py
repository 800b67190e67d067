"""The guided lesson (uld_explorer.lesson) and its Learn page.

Each step's numbers against an independent oracle (scipy's entropy, POT's solvers called on the
restated problems, the sorted-L1 formula, CE's gradient restated); every question's computed
answer; every challenge failing on its start and passing on its solution; every figure valid
Vega-Lite. Then the page under AppTest: Back / Next through all eight steps (header, figure,
numbers, predict-then-reveal, the challenge before and after "Show me a solution", the URL), and a
shared link restoring a step with its pair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import ot
import pytest
from scipy.stats import entropy

from apptest import open_page
from uld_explorer import charts
from uld_explorer.lesson import BASE, CONTROLS, STEPS, numbers, settings_for, step_of

PAGE = Path(__file__).resolve().parents[1] / "uld_explorer" / "app" / "pages" / "learn.py"
TIMEOUT = 90


# ---------------------------------------------------------------------------------- the lesson itself
@pytest.mark.parametrize("step", STEPS, ids=[s.key for s in STEPS])
def test_every_step_is_whole_and_its_challenge_fails_on_its_start_and_passes_on_its_solution(step):
    start = numbers(step.settings())
    assert step.text(start).strip() and step.metrics(start)
    assert 1 <= len(step.controls) <= 2 and set(step.controls) <= set(CONTROLS)
    charts.chart_lesson(step, start).to_dict()  # validated against Vega-Lite's schema
    assert step.question.answer(step.settings()) in step.question.options
    assert not step.challenge.check(start), step.challenge.now(start)
    solved = numbers(step.settings(**step.challenge.solution))
    assert step.challenge.check(solved), step.challenge.now(solved)
    assert set(step.challenge.solution) <= set(step.controls)  # reachable with the step's own controls
    for name in step.controls:  # ... and within their bounds
        value, c = step.settings(**step.challenge.solution)[name], CONTROLS[name]
        assert c.lo is None or c.lo <= value <= c.hi


def test_the_numbers_equal_independent_oracles():
    def sorted_l1(p, q):  # the paper's formula restated: sort, zero-pad, L1
        n = max(p.size, q.size)
        a, b = np.zeros(n), np.zeros(n)
        a[: p.size], b[: q.size] = np.sort(p)[::-1], np.sort(q)[::-1]
        return float(np.abs(a - b).sum())

    kl = numbers(step_of("kl").settings())
    assert kl.kl == pytest.approx(entropy(kl.p, kl.q), rel=1e-12)
    area = numbers(step_of("area").settings(upto=8))
    assert area.partial_uld == pytest.approx(area.uld, abs=1e-15) == pytest.approx(sorted_l1(area.p, area.q))
    assert numbers(step_of("area").settings(upto=2)).partial_uld < area.uld
    three = numbers(step_of("three-ways").settings())
    pp, qq = np.zeros(three.n), np.zeros(three.n)
    pp[: three.p.size], qq[: three.q.size] = three.p, three.q
    u = np.full(three.n, 1 / three.n)
    restated = {"value space": three.n * ot.emd2(u, u, np.abs(pp[:, None] - qq[None, :])),
                "rank space x 2": 2 * ot.emd2(*three.sorted_pair, 1 - np.eye(three.n))}
    for v in [*three.three_ways.values(), *restated.values()]:
        assert v == pytest.approx(sorted_l1(three.p, three.q), abs=1e-12)
    blind = numbers(step_of("identity").settings(**step_of("identity").challenge.solution))
    assert blind.uld == pytest.approx(0.0, abs=1e-15) and blind.kl == pytest.approx(entropy(blind.p, blind.q))
    ce = numbers(step_of("keep-ce").settings(permute_student=False, student_temperature=0.5))
    onehot = np.eye(ce.q.size)[ce.target]
    assert ce.target == int(np.argmax(ce.p))  # one vocabulary: the teacher's favourite, same string
    np.testing.assert_allclose(ce.lens.push("ce")[0], onehot - ce.q, atol=1e-12)  # -(softmax - e_y)


def test_the_answers_are_computed_on_the_learners_settings():
    kl, ce = step_of("kl"), step_of("keep-ce")
    assert kl.question.answer(kl.settings()) == "0"  # same temperature: back to the teacher
    assert kl.question.answer(kl.settings(student_temperature=2.0)) == "smaller, not 0"
    assert step_of("vocabularies").question.answer(step_of("vocabularies").settings(V_s=8)) == "yes"
    assert step_of("vocabularies").question.answer(step_of("vocabularies").settings()) == "no"
    assert step_of("pad").question.answer(step_of("pad").settings(V_s=8)) == "none"
    assert step_of("identity").question.answer(step_of("identity").settings(shift=3)) == "no"
    assert ce.question.answer(ce.settings()) == "neither (0)"  # a permuted student at T = 1: ULD is 0
    assert ce.question.answer(ce.settings(permute_student=False, student_temperature=0.5)) == "down"
    with pytest.raises(ValueError, match="unknown lesson setting"):
        numbers({"V_t": 8, "temperature": 1})
    assert settings_for(3, {"V_s": 2, "shift": 5}) == {**BASE, **step_of("sort").start, "shift": 5}  # V_s: not step 3's


# ---------------------------------------------------------------------------------- the page
def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def params(at) -> dict[str, str]:
    return {k: v if isinstance(v, str) else v[0] for k, v in at.query_params.items()}


@pytest.mark.slow
def test_back_and_next_walk_every_step_with_its_figure_numbers_question_and_challenge():
    at = open_page(PAGE, TIMEOUT)
    assert at.title[0].value == "Learn: from KL to ULD in eight steps"
    for i, step in enumerate(STEPS, 1):
        assert at.header[0].value == f"{i}. {step.title}"
        assert f"Step {i} of {len(STEPS)}" in at.get("progress")[0].proto.text
        assert len(at.get("vega_lite_chart")) == 1  # the step's one figure
        assert metrics(at) == step.metrics(numbers(step.settings()))
        assert params(at)["step"] == str(i)
        assert {k for k in params(at) if k != "step"} == {f"l_{n}" for n in step.controls}
        assert [x.value for x in at.info if x.value.startswith("Not yet")]  # the challenge, unsolved
        # predict, then reveal: the computed answer on the learner's settings
        at.radio(key=f"guess_{step.key}").set_value(step.question.options[-1]).run()
        at.button(key=f"reveal_{step.key}").click().run()
        answer = step.question.answer(step.settings())
        shown = " ".join(x.value for x in [*at.success, *at.warning])
        assert f"**{answer}**" in shown and ("Right" in shown) == (answer == step.question.options[-1])
        # the challenge: "Show me a solution" sets the step's controls; the check passes
        at.button(key=f"solve_{step.key}").click().run()
        solved = numbers(step.settings(**step.challenge.solution))
        assert [x.value for x in at.success if x.value.startswith("Solved")]
        assert metrics(at) == step.metrics(solved)
        if i < len(STEPS):
            at.button(key="next").click().run()
            assert not at.exception, [e.value for e in at.exception]
    assert at.button(key="next").disabled
    link = " ".join(m.value for m in at.markdown if "real?" in m.value)
    assert "(./real?prompt=" in link and "position=1" in link  # the same picture on the real pair
    at.button(key="back").click().run()
    assert at.header[0].value == f"7. {STEPS[6].title}" and at.session_state["l_permute_student"] is False
    at.selectbox(key="step_pick").set_value(2).run()  # jump: step 2 with its own starting pair
    assert at.header[0].value == f"2. {STEPS[1].title}" and at.session_state["l_V_s"] == 12


@pytest.mark.slow
def test_a_link_restores_a_step_with_the_learners_pair():
    at = open_page(PAGE, TIMEOUT, step="5", l_student_temperature="1.65", l_upto="8")
    assert at.header[0].value == f"5. {step_of('area').title}"
    assert [x.value for x in at.success if x.value.startswith("Solved")]
    assert metrics(at) == step_of("area").metrics(numbers(step_of("area").settings(student_temperature=1.65, upto=8)))
    fresh = open_page(PAGE, TIMEOUT, step="6")  # no settings in the link: the step's own start
    assert fresh.session_state["l_V_s"] == 6 and fresh.session_state["l_student_temperature"] == 1.5
    bad = open_page(PAGE, TIMEOUT, step="9", l_shift="99")
    assert bad.header[0].value == f"1. {STEPS[0].title}"
    notes = " ".join(c.value for c in bad.caption)
    assert "step='9' in the URL must be between 1 and 8" in notes and "l_shift=" in notes
