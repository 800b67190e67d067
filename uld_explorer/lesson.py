"""The guided lesson, from KL to ULD in eight steps (the app's Learn page): one idea per step.

One place for the lesson's content. Each :class:`Step` holds its words, the synthetic pair it
starts from (:class:`~uld_explorer.synthetic.PlaygroundConfig` settings over :data:`BASE`), the
one or two settings the learner moves (:data:`CONTROLS`), the figure it draws, a
predict-then-reveal :class:`Question` whose answer is computed from the library on the
learner's own settings, and a :class:`Challenge` whose check reads the numbers. Every number a
step says comes from :func:`numbers` (the library's divergences, POT's exact plans, the gradient
lens), never from text written in advance. The page only draws (``app/pages/learn.py``); the
tests walk every step from here, each challenge failing on its start and passing on its
``solution``.

>>> [s.key for s in STEPS]
['kl', 'vocabularies', 'sort', 'pad', 'area', 'three-ways', 'identity', 'keep-ce']
>>> n = numbers(STEPS[6].start)
>>> round(n.uld, 9), n.kl > 0   # the student is the teacher: nothing to see yet
(0.0, False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Mapping

import numpy as np

from .divergences import uld_distance
from .lens import Lens, logit_gradients_from_probs
from .ot import rank_space_ot, value_space_ot
from .summary import DivergenceSummary, divergence_summary
from .synthetic import PlaygroundConfig, synthetic_tokens
from .text.vocab import match_strings

__all__ = ["BASE", "CONTROLS", "STEPS", "Challenge", "Control", "Numbers", "Question", "Step", "numbers", "settings_for",
           "step_of"]

#: The lesson's pair before any step changes it: one vocabulary of 8 tokens, the student equal to
#: the teacher (no shift, no noise, the same temperature). ``upto``: the ranks drawn of ULD's area.
BASE: dict[str, Any] = dict(V_t=8, V_s=8, teacher_temperature=1.0, student_temperature=1.0, shift=0, noise=0.0,
                            permute_student=False, seed=0, upto=8)


@dataclass(frozen=True)
class Control:
    """A setting the learner moves: its label, bounds and step (a toggle when ``lo`` is None)."""

    label: str
    lo: float | None = None
    hi: float | None = None
    step: float = 1
    help: str = ""


#: What a step may let the learner move (keys of :data:`BASE`).
CONTROLS: dict[str, Control] = {
    "V_s": Control("student vocabulary size V_s", 2, 16, 1, "the teacher keeps V_t = 8 tokens"),
    "student_temperature": Control("student temperature T_s (low = peaked)", 0.1, 5.0, 0.05),
    "shift": Control("shift (moves the student's preferences along the vocabulary)", -7, 7, 1),
    "noise": Control("noise on the student's scores", 0.0, 3.0, 0.05),
    "permute_student": Control("permute the student (shuffle its token identities)"),
    "upto": Control("ranks compared so far", 1, 8, 1, "ULD's sum up to this rank; the last rank gives ULD"),
}


@dataclass
class Numbers:
    """Every number a step shows, computed from the library for one setting of the pair.

    ``p`` (V_t,) and ``q`` (V_s,): the pair (:meth:`PlaygroundConfig.pair`); ``summary``: every
    measure of it (:func:`~uld_explorer.divergence_summary`); the rest are computed when read.
    """

    settings: dict[str, Any]
    p: np.ndarray
    q: np.ndarray
    summary: DivergenceSummary

    @property
    def teacher_tokens(self) -> list[str]:
        return synthetic_tokens(self.p.size)

    @property
    def student_tokens(self) -> list[str]:
        return synthetic_tokens(self.q.size)

    @property
    def n(self) -> int:
        """ULD's length: max(V_t, V_s)."""
        return max(self.p.size, self.q.size)

    @property
    def uld(self) -> float:
        return float(self.summary.uld)

    @property
    def kl(self) -> float | None:
        """Plain KL(p || q): None across two vocabularies."""
        return self.summary.kl

    @property
    def kl_shared(self) -> float | None:
        return self.summary.kl_shared

    @property
    def token_ot(self) -> float:
        """Exact OT between the tokens, cost 0 for the same string and 1 otherwise."""
        return float(self.summary.token_ot.value)

    @cached_property
    def sorted_pair(self) -> tuple[np.ndarray, np.ndarray]:
        """Both sorted, largest first, the shorter zero-padded to n."""
        ps, qs = np.zeros(self.n), np.zeros(self.n)
        ps[: self.p.size], qs[: self.q.size] = np.sort(self.p)[::-1], np.sort(self.q)[::-1]
        return ps, qs

    @property
    def padded_zeros(self) -> int:
        """Zeros appended to the shorter side."""
        return abs(self.p.size - self.q.size)

    @property
    def upto(self) -> int:
        return int(min(self.settings.get("upto", self.n), self.n))

    @property
    def partial_uld(self) -> float:
        """:math:`\\sum_{i \\le r} |p_{(i)} - q_{(i)}|` for r = ``upto``: the area drawn so far."""
        ps, qs = self.sorted_pair
        return float(np.abs(ps - qs)[: self.upto].sum())

    @cached_property
    def three_ways(self) -> dict[str, float]:
        """ULD three ways: the closed form, POT's exact value-space plan (n W1), 2 x rank-space OT."""
        return {"closed form": float(uld_distance(self.p, self.q)),
                "value-space OT × n": float(value_space_ot(self.p, self.q).value),
                "rank-space OT × 2": 2.0 * float(rank_space_ot(self.p, self.q).value)}

    @cached_property
    def lens(self) -> Lens:
        """Each loss's push on the student's logits (:func:`~uld_explorer.lens.logit_gradients_from_probs`)."""
        return logit_gradients_from_probs(self.p, self.q, match=match_strings(self.teacher_tokens, self.student_tokens))

    def push(self, loss: str, token: int) -> float:
        """The push of ``loss`` on the student's logit of ``token`` (minus its gradient)."""
        return float(self.lens.push(loss)[0][token])

    @property
    def target(self) -> int:
        """CE's target: the student's token for the teacher's most probable one."""
        return int(self.lens.target[0])


def numbers(settings: Mapping[str, Any]) -> Numbers:
    """The pair of ``settings`` (keys of :data:`BASE`, missing ones from it) and its measures.

    Raises
    ------
    ValueError
        An unknown key, or a value :class:`~uld_explorer.synthetic.PlaygroundConfig` refuses.
    """
    unknown = sorted(set(settings) - set(BASE))
    if unknown:
        raise ValueError(f"unknown lesson setting(s) {', '.join(unknown)}; known: {', '.join(BASE)}")
    s = {**BASE, **settings}
    cfg = PlaygroundConfig(**{k: v for k, v in s.items() if k != "upto"}, top_k=50, sinkhorn_epsilon=None)
    p, q = cfg.pair()
    return Numbers(s, p, q, divergence_summary(p, q, top_k=cfg.top_k))


def _fmt(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.3f}"


@dataclass(frozen=True)
class Question:
    """Predict, then reveal: ``text`` asks, ``options`` are the guesses, ``answer(settings)``
    computes the right one for the learner's settings and ``why(settings)`` says the numbers."""

    text: str
    options: tuple[str, ...]
    answer: Callable[[dict[str, Any]], str]
    why: Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class Challenge:
    """A goal with a check: ``check(numbers)`` is True when met; ``now(numbers)`` says where the
    learner stands; ``solution`` is a setting that meets it (the tests check both ways)."""

    text: str
    check: Callable[[Numbers], bool]
    now: Callable[[Numbers], str]
    solution: dict[str, Any]


@dataclass(frozen=True)
class Step:
    """One idea: its words (``text(numbers)``: markdown with the numbers of the learner's pair),
    the pair it starts from (``start``, over :data:`BASE`), the settings the learner moves
    (``controls``, keys of :data:`CONTROLS`), the ``figure`` the page draws (``kl_terms``,
    ``distributions``, ``sorted``, ``area``, ``value_plan``, ``scale``, ``lens``), the numbers
    shown beside it (``metrics``), a :class:`Question` and a :class:`Challenge`."""

    key: str
    title: str
    text: Callable[[Numbers], str]
    start: dict[str, Any]
    controls: tuple[str, ...]
    figure: str
    metrics: Callable[[Numbers], dict[str, str]]
    question: Question
    challenge: Challenge
    link: dict[str, str] = field(default_factory=dict)

    def settings(self, **changes: Any) -> dict[str, Any]:
        """The step's start over :data:`BASE`, with ``changes``."""
        return {**BASE, **self.start, **changes}


def _with(settings: dict[str, Any], **changes: Any) -> Numbers:
    return numbers({**settings, **changes})


# ---------------------------------------------------------------------------------------- the steps
def _kl_text(n: Numbers) -> str:
    terms = n.p * np.log(n.p / n.q)
    i = int(np.argmax(terms))
    return (f"Teacher $p$ and student $q$ share one vocabulary of {n.p.size} tokens. "
            r"$\mathrm{KL}(p\,\|\,q)=\sum_i p_i \log(p_i/q_i)$ compares each token with **the same token**: "
            f"each bar is one term $p_i\\log(p_i/q_i)$, and KL = {_fmt(n.kl)} nats is their sum. The largest term "
            f"here is {n.teacher_tokens[i]}'s ({terms[i]:.3f}): the teacher gives it {n.p[i]:.3f}, the student "
            f"{n.q[i]:.3f}. A term is negative where the student puts more on a token than the teacher.")


def _kl_answer(s: dict[str, Any]) -> str:
    now, back = numbers(s).kl, _with(s, shift=0).kl
    if back < 1e-12:
        return "0"
    return "smaller, not 0" if back < now - 1e-12 else "larger or the same"


def _vocab_text(n: Numbers) -> str:
    cov = n.summary.shared_coverage
    covered = (f" They cover {cov[0]:.0%} of the teacher's mass and {cov[1]:.0%} of the student's." if cov else "")
    return ("Now the student has its own vocabulary: tokens tok0 … tok" f"{n.q.size - 1}, the teacher tok0 … "
            f"tok{n.p.size - 1}. Plain KL needs $q_i$ for every token $i$ of the teacher and one list of tokens on "
            f"both sides: here it is **{_fmt(n.kl)}**. *KL on shared strings* keeps only the {n.summary.shared_strings} "
            f"strings both have, renormalises each side there and compares: {_fmt(n.kl_shared)} nats.{covered} What "
            "lies outside the shared strings is not compared at all.")


def _sort_text(n: Numbers) -> str:
    ps, qs = n.sorted_pair
    return ("ULD's first move: forget which token holds which probability. Sort each distribution, largest "
            f"first. The teacher's largest probability is {ps[0]:.3f}, the student's {qs[0]:.3f}. A student that "
            "prefers other tokens (the shift) but with the same confidence has **the same sorted curve** as the "
            f"teacher: here the two curves differ by ULD = {n.uld:.3f}.")


def _sorted_same(s: dict[str, Any]) -> bool:
    a, b = numbers(s), _with(s, permute_student=not s["permute_student"])
    return bool(np.allclose(a.sorted_pair[1], b.sorted_pair[1], rtol=0, atol=1e-15))


def _pad_text(n: Numbers) -> str:
    short = "student" if n.q.size < n.p.size else "teacher" if n.p.size < n.q.size else None
    pad = (f"The {short} has {min(n.p.size, n.q.size)} tokens, the other {n.n}: ULD appends "
           f"**{n.padded_zeros} zeros** to the {short}'s sorted list" if short else
           "Both have the same number of tokens: nothing to pad")
    return (f"{pad}, so that both lists have n = max(V_t, V_s) = {n.n} entries and can be compared rank by rank. "
            "A padded zero is a rank where one side has no token at all; its whole probability on the other side "
            f"counts in ULD, here {n.uld:.3f}.")


def _area_text(n: Numbers) -> str:
    ps, qs = n.sorted_pair
    r = n.upto
    return (r"$\mathrm{ULD}(p,q)=\sum_{i=1}^{n}|p_{(i)}-q_{(i)}|$: rank by rank, the gap between the two sorted "
            f"curves. Drawn up to rank {r} of {n.n}, the shaded area is {n.partial_uld:.4f}"
            + (f" (rank {r} adds |{ps[r - 1]:.3f} − {qs[r - 1]:.3f}| = {abs(ps[r - 1] - qs[r - 1]):.4f})" if r else "")
            + (f"; at the last rank it **is** ULD = {n.uld:.4f}." if r >= n.n else
               f"; the last rank gives ULD = {n.uld:.4f}."))


def _area_answer(s: dict[str, Any]) -> str:
    hot, cold = _with(s, student_temperature=2.0).uld, _with(s, student_temperature=0.5).uld
    return "at T_s = 2" if hot > cold + 1e-12 else "at T_s = 0.5" if cold > hot + 1e-12 else "the same"


def _three_text(n: Numbers) -> str:
    return ("The same number three ways. **Closed form**: sort, pad, sum the gaps. **Exact optimal transport "
            "between the values**: put weight 1/n on each of the n padded probabilities of each side, move one "
            "set onto the other at cost |value − value|: POT's exact solver finds the plan drawn here, and n "
            "times its cost is ULD (in one dimension sorting is the optimal coupling). **Rank space**: exact OT "
            "between the two sorted vectors with cost 0 for the same rank and 1 otherwise moves ULD / 2. "
            f"All three give {n.uld:.6f} here.")


def _three_agree(s: dict[str, Any]) -> bool:
    vals = list(numbers(s).three_ways.values())
    return max(vals) - min(vals) < 1e-9


def _identity_text(n: Numbers) -> str:
    return ("ULD sorts, so it cannot see **which** token gets which probability. Shuffle the student's token "
            f"identities: KL = {_fmt(n.kl)} and the exact OT between tokens = {n.token_ot:.3f} see the student put "
            f"its probabilities on the wrong tokens; ULD / 2 = {n.uld / 2:.3f}. On one scale "
            r"$\tfrac12\mathrm{ULD}\le\mathrm{OT}_{0/1}\le 1$: ULD / 2 is the token OT you would get if token "
            "identities could be relabelled for free.")


def _identity_answer(s: dict[str, Any]) -> str:
    a, b = numbers(s).uld, _with(s, permute_student=not s["permute_student"]).uld
    return "no" if abs(a - b) < 1e-12 else "yes"


def _ce_text(n: Numbers) -> str:
    y = n.target
    tok = n.student_tokens[y] if y >= 0 else "none"
    return ("A student can be a perfect ULD student and still say the wrong token. The bars are what one step of "
            "each loss does to the student's logits (minus its gradient). ULD pushes the student's **shape** "
            f"towards the teacher's: here its push on {tok}, the teacher's favourite, is {n.push('uld', y):+.3f}. "
            f"Cross-entropy on the teacher's token always pushes {tok} up ({n.push('ce', y):+.3f}). That is why the "
            "paper trains with CE + λ·ULD: CE says *which* token, ULD teaches the shape of the rest.")


def _ce_answer(s: dict[str, Any]) -> str:
    n = numbers(s)
    u = n.push("uld", n.target)
    return "up" if u > 1e-9 else "down" if u < -1e-9 else "neither (0)"


STEPS: tuple[Step, ...] = (
    Step(
        "kl", "KL on one vocabulary", _kl_text, dict(shift=1), ("student_temperature", "shift"), "kl_terms",
        lambda n: {"KL(p‖q)": _fmt(n.kl), "teacher's top": n.teacher_tokens[int(np.argmax(n.p))],
                   "student's top": n.student_tokens[int(np.argmax(n.q))]},
        Question("Set the shift back to 0 (the student's preferences line up with the teacher's). KL becomes …",
                 ("0", "smaller, not 0", "larger or the same"), _kl_answer,
                 lambda s: f"KL at shift 0: {_fmt(_with(s, shift=0).kl)} nats (now {_fmt(numbers(s).kl)}); "
                           + ("0 because the temperatures are equal too." if _with(s, shift=0).kl < 1e-12 else
                              "not 0: the temperatures differ, so the shapes still do.")),
        Challenge("The student's favourite token is wrong (its top token differs from the teacher's), yet KL is "
                  "below 0.6. KL punishes a confident mistake more than a hesitant one.",
                  lambda n: bool(np.argmax(n.p) != np.argmax(n.q)) and n.kl is not None and n.kl < 0.6,
                  lambda n: f"KL = {_fmt(n.kl)}; top tokens {n.teacher_tokens[int(np.argmax(n.p))]} (teacher) and "
                            f"{n.student_tokens[int(np.argmax(n.q))]} (student)",
                  dict(shift=1, student_temperature=2.0)),
    ),
    Step(
        "vocabularies", "Two vocabularies: KL is undefined", _vocab_text, dict(V_s=12), ("V_s",), "distributions",
        lambda n: {"plain KL(p‖q)": _fmt(n.kl), "KL, shared strings": _fmt(n.kl_shared),
                   "shared strings": str(n.summary.shared_strings)},
        Question("At the V_s you have set, is plain KL(p‖q) defined?", ("yes", "no"),
                 lambda s: "yes" if numbers(s).kl is not None else "no",
                 lambda s: (f"V_t = 8, V_s = {s['V_s']}: " + ("one vocabulary, KL = " + _fmt(numbers(s).kl)
                            if numbers(s).kl is not None else numbers(s).summary.kl_undefined_reason or ""))),
        Challenge("KL on shared strings is 0 while the shared strings hold less than 40 % of the teacher's mass: "
                  "most of what the teacher says is never compared.",
                  lambda n: (n.kl_shared is not None and n.kl_shared < 1e-9 and n.summary.shared_coverage is not None
                             and n.summary.shared_coverage[0] < 0.4),
                  lambda n: f"KL on shared strings = {_fmt(n.kl_shared)}, the teacher's mass on them "
                            + (f"{n.summary.shared_coverage[0]:.0%}" if n.summary.shared_coverage else "none"),
                  dict(V_s=6)),
    ),
    Step(
        "sort", "Sort: forget the token identities", _sort_text, dict(shift=2, student_temperature=1.5),
        ("shift", "student_temperature"), "sorted",
        lambda n: {"teacher's top p": f"{n.sorted_pair[0][0]:.3f}", "student's top q": f"{n.sorted_pair[1][0]:.3f}",
                   "ULD": f"{n.uld:.3f}"},
        Question("Shuffle the student's token identities (permute it). Does its sorted curve change?", ("yes", "no"),
                 lambda s: "no" if _sorted_same(s) else "yes",
                 lambda s: "The student's sorted values before and after the shuffle are "
                           + ("equal to 1e-15: a shuffle moves probabilities between tokens, sorting puts them back."
                              if _sorted_same(s) else "different.")),
        Challenge("Make the student's largest probability exceed the teacher's by at least 0.2.",
                  lambda n: n.sorted_pair[1][0] - n.sorted_pair[0][0] >= 0.2,
                  lambda n: f"student − teacher at rank 1: {n.sorted_pair[1][0] - n.sorted_pair[0][0]:+.3f}",
                  dict(shift=2, student_temperature=0.5)),
    ),
    Step(
        "pad", "Pad the shorter with zeros", _pad_text, dict(V_s=5), ("V_s", "student_temperature"), "sorted",
        lambda n: {"n": str(n.n), "zeros padded": str(n.padded_zeros), "ULD": f"{n.uld:.3f}"},
        Question("How many zeros does ULD append at the sizes you have set?",
                 ("none", "|V_t − V_s|", "max(V_t, V_s)"),
                 lambda s: "none" if numbers(s).padded_zeros == 0 else "|V_t − V_s|",
                 lambda s: f"V_t = 8, V_s = {s['V_s']}: {numbers(s).padded_zeros} zeros, so both lists have "
                           f"{numbers(s).n} entries."),
        Challenge("Pad at least 4 zeros and keep ULD below 0.35.",
                  lambda n: n.q.size <= n.p.size - 4 and n.uld < 0.35,
                  lambda n: f"{n.padded_zeros} zeros, ULD = {n.uld:.3f}",
                  dict(V_s=4, student_temperature=1.0)),
    ),
    Step(
        "area", "Compare rank by rank: the area is ULD", _area_text, dict(student_temperature=2.0, upto=3),
        ("student_temperature", "upto"), "area",
        lambda n: {f"area to rank {n.upto}": f"{n.partial_uld:.4f}", "ULD": f"{n.uld:.4f}"},
        Question("Is ULD larger with the student at T_s = 2 (flatter than the teacher) or at T_s = 0.5 (sharper)?",
                 ("at T_s = 2", "at T_s = 0.5", "the same"), _area_answer,
                 lambda s: f"ULD at T_s = 2: {_with(s, student_temperature=2.0).uld:.4f}; at T_s = 0.5: "
                           f"{_with(s, student_temperature=0.5).uld:.4f}."),
        Challenge("Find a student with ULD between 0.30 and 0.35, and draw the area to the last rank.",
                  lambda n: 0.30 <= n.uld <= 0.35 and n.upto >= n.n,
                  lambda n: f"ULD = {n.uld:.4f}, drawn to rank {n.upto} of {n.n}",
                  dict(student_temperature=1.65, upto=8)),
    ),
    Step(
        "three-ways", "The same number three ways (POT)", _three_text, dict(V_s=6, student_temperature=1.5),
        ("V_s", "student_temperature"), "value_plan",
        lambda n: {k: f"{v:.6f}" for k, v in n.three_ways.items()},
        Question("Will POT's exact solvers agree with the closed form to 1e-9?", ("yes", "no"),
                 lambda s: "yes" if _three_agree(s) else "no",
                 lambda s: "The three values: " + ", ".join(f"{v:.12f}" for v in numbers(s).three_ways.values())
                           + "."),
        Challenge("Make ULD larger than 1: more than half of the probability sits at the wrong ranks.",
                  lambda n: n.uld > 1.0,
                  lambda n: f"ULD = {n.uld:.4f}",
                  dict(V_s=6, student_temperature=0.1)),
    ),
    Step(
        "identity", "Identity blindness", _identity_text, dict(), ("permute_student", "shift"), "scale",
        lambda n: {"KL(p‖q)": _fmt(n.kl), "token OT": f"{n.token_ot:.3f}", "ULD / 2": f"{n.uld / 2:.3f}"},
        Question("Permute the student's tokens. Does ULD change?", ("yes", "no"), _identity_answer,
                 lambda s: f"ULD now {numbers(s).uld:.6f}, permuted the other way "
                           f"{_with(s, permute_student=not s['permute_student']).uld:.6f}."),
        Challenge("Make ULD / 2 below 0.05 while KL is above 1: a student ULD calls perfect, KL calls bad.",
                  lambda n: n.uld / 2 < 0.05 and n.kl is not None and n.kl > 1,
                  lambda n: f"ULD / 2 = {n.uld / 2:.3f}, KL = {_fmt(n.kl)}",
                  dict(permute_student=True, shift=1)),
    ),
    Step(
        "keep-ce", "Why the paper keeps cross-entropy", _ce_text, dict(permute_student=True),
        ("permute_student", "student_temperature"), "lens",
        lambda n: {"ULD": f"{n.uld:.3f}", f"ULD's push on {n.student_tokens[n.target]}": f"{n.push('uld', n.target):+.3f}",
                   f"CE's push on {n.student_tokens[n.target]}": f"{n.push('ce', n.target):+.3f}"},
        Question("Does ULD's gradient push the teacher's favourite token up, down, or neither?",
                 ("up", "down", "neither (0)"), _ce_answer,
                 lambda s: f"ULD's push on it: {numbers(s).push('uld', numbers(s).target):+.4f}; CE's: "
                           f"{numbers(s).push('ce', numbers(s).target):+.4f}."),
        Challenge("Find a student where ULD pushes the teacher's favourite token DOWN while CE pushes it up: the two "
                  "terms of the paper's loss pull apart.",
                  lambda n: n.push("uld", n.target) < -1e-6 and n.push("ce", n.target) > 1e-6,
                  lambda n: f"ULD's push {n.push('uld', n.target):+.3f}, CE's {n.push('ce', n.target):+.3f}",
                  dict(permute_student=False, student_temperature=0.5)),
        link={"label": "The same picture on the real teacher and student", "page": "real"},
    ),
)


def step_of(key: str) -> Step:
    """The step named ``key``."""
    for s in STEPS:
        if s.key == key:
            return s
    raise ValueError(f"unknown step {key!r}; steps: {', '.join(s.key for s in STEPS)}")


def settings_for(index: int, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Step ``index``'s (1-based) settings: its start, with the learner's values of its controls."""
    step = STEPS[index - 1]
    chosen = {k: v for k, v in (given or {}).items() if k in step.controls}
    return step.settings(**chosen)
