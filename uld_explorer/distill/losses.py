"""The training losses: ONE registry (:data:`LOSSES`) of the parts each loss sums and how, and the
part sums on a batch (CE, ULD, KL, the hybrid) on the library's divergences.

A loss is a weighted sum of PARTS (:data:`PARTS`), each a mean over its own denominator: the
student's answer tokens for CE, the aligned (teacher, student) pairs for the others. The
runner (:func:`loss_sums` computes the parts a loss names, :func:`combine` weighs them), the
config's check and the CLI's ``--loss`` choices, the app's menu, the run curves
(:data:`~.runs.METRICS`) and the guide's loss table (docs/guide/distill.md) read the registry. Adding a loss is one :class:`Loss`
entry (plus a :class:`Part` and its sum function when the loss needs a new part) and its tests.

Teacher first (``p``, from the :class:`~.teacher_cache.TeacherCache`), student second (``q``,
from the student's logits at the answer positions). The math is the library's:
:func:`~uld_explorer.uld_top_k` (ULD from the teacher's sorted top-k + tail, with its bound),
:func:`~uld_explorer.hybrid_top_k` (GOLD's hybrid from the same cache, with its bound),
:func:`~uld_explorer.kl_divergence`, :func:`~uld_explorer.restrict_to_shared_vocab`. Part sums
are SUMS over a batch's rows; :func:`combine` divides by the GLOBAL counts (so several processes
give exactly the one-process mean). The paper's loss:

.. math::

    \\mathcal L = \\frac{1}{N_{tok}} \\sum \\mathrm{CE} + \\lambda \\frac{1}{N_{pair}} \\sum \\mathrm{ULD}

with ``N_tok`` the student's answer tokens and ``N_pair`` the aligned pairs (positional: the
i-th teacher token with the i-th student token, truncated to the shorter answer, as the paper).

Importable without torch (the CLI builds ``--help`` from :data:`LOSSES`): the sums import it
when they run.

References
----------
.. [1] N. Boizard, K. El Haddad, C. Hudelot, P. Colombo. "Towards Cross-Tokenizer Distillation:
   the Universal Logit Distillation Loss for LLMs". TMLR, 2024. arXiv:2402.12030.

Examples
--------
>>> LOSSES["ce+uld"].parts, LOSSES["ce+uld"].weights
(('ce', 'uld'), (1.0, 'uld_weight'))
>>> print(LOSSES["ce+uld"].formula)
CE + uld_weight * ULD; CE = mean over answer tokens of -log q(y); ULD = mean over aligned pairs of sum_i |p_(i) - q_(i)|
>>> [k for k, loss in LOSSES.items() if loss.shared_tokenizer]
['kl']
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, Callable, Sequence

__all__ = ["Part", "PARTS", "Loss", "LOSSES", "PartInputs", "denominator", "loss_sums", "combine", "dense_teacher",
           "shared_kl_sum", "pick_rows", "HYBRID_CHUNK"]

HYBRID_CHUNK = 512  # pairs per hybrid_top_k call: bounds its (chunk, V_s) temporaries
SHARED_KL_CHUNK = 64  # rows per shared_kl_sum chunk: bounds its (chunk, S) float64 string masses
#: What a part's mean divides by: the answer tokens or the aligned pairs (a batch's global counts).
DENOMINATORS = {"tokens": "answer tokens", "pairs": "aligned pairs"}


# ---------------------------------------------------------------------------- the registries


@dataclass(frozen=True)
class Part:
    """One summed term of a loss.

    Attributes
    ----------
    key : str
        Its name in the sums, ``metrics.jsonl`` and the charts (``ce``, ``uld``, ...).
    per : str
        Its denominator, a key of :data:`DENOMINATORS`: ``tokens`` (the student's answer
        tokens) or ``pairs`` (the aligned pairs).
    label, unit : str
        How a curve of it is titled (``"ULD"``, ``"[0, 2]"``).
    formula : str
        The term for one token or pair (plain text).
    fn : callable
        ``fn(x: PartInputs) -> {key: sum, ...}``: the SUM over the batch (a scalar tensor, on
        the logits' graph), plus :attr:`extras`.
    extras : tuple of str
        Further sums ``fn`` returns, with the same denominator (``uld_bound``, ``hybrid_bound``).
    min_top_k : int
        The fewest teacher probabilities per position the teacher cache must keep for it.
    """

    key: str
    per: str
    label: str
    unit: str
    formula: str
    fn: Callable[[PartInputs], dict[str, Any]]
    extras: tuple[str, ...] = ()
    min_top_k: int = 1

    def __post_init__(self) -> None:
        if self.per not in DENOMINATORS:
            raise ValueError(f"part {self.key!r}: per must be one of {', '.join(DENOMINATORS)} (got {self.per!r})")


@dataclass(frozen=True)
class Loss:
    """A training loss: a weighted sum of part means.

    .. math:: \\mathcal L = \\sum_j w_j \\frac{1}{N_j} \\sum \\mathrm{part}_j

    Attributes
    ----------
    key : str
        The stable identifier (``--loss``, ``config.json``, the app, run names).
    parts : tuple of str
        Keys of :data:`PARTS`, in the order of the formula.
    weights : tuple of (float or str)
        One per part: a number, or the name of the :class:`~.config.DistillConfig` field that
        holds it (``"uld_weight"``: the paper's lambda).
    description : str
        One line (the CLI's help, the app's menu).
    shared_tokenizer : bool
        Whether teacher and student must tokenize alike (token-by-token KL).
    """

    key: str
    parts: tuple[str, ...]
    weights: tuple[float | str, ...]
    description: str
    shared_tokenizer: bool = False

    def __post_init__(self) -> None:
        if not self.parts or len(self.parts) != len(self.weights):
            raise ValueError(f"loss {self.key!r}: one weight per part (parts {self.parts}, weights {self.weights})")

    def weight(self, i: int, config: Any) -> float:
        """The weight of part ``i`` under ``config``."""
        w = self.weights[i]
        return float(getattr(config, w)) if isinstance(w, str) else float(w)

    def total(self, means: dict[str, Any], config: Any) -> Any:
        """:math:`\\sum_j w_j \\, \\mathrm{mean}_j` from the part means (tensors or floats)."""
        out = None
        for i, part in enumerate(self.parts):
            term = means[part] if self.weights[i] == 1 else self.weight(i, config) * means[part]
            out = term if out is None else out + term
        return out

    @property
    def uses_teacher(self) -> bool:
        """Whether it compares with the teacher's distributions (a part over aligned pairs)."""
        return any(PARTS[p].per == "pairs" for p in self.parts)

    @property
    def min_top_k(self) -> int:
        """The fewest teacher probabilities per position its parts need in the teacher cache."""
        return max(PARTS[p].min_top_k for p in self.parts)

    @property
    def formula(self) -> str:
        """The loss in plain text, each part with its mean and its term."""
        head = " + ".join(PARTS[p].label if w == 1 else f"{w if isinstance(w, str) else format(w, 'g')} * "
                          f"{PARTS[p].label}" for p, w in zip(self.parts, self.weights))
        defs = "; ".join(f"{PARTS[p].label} = mean over {DENOMINATORS[PARTS[p].per]} of {PARTS[p].formula}"
                         for p in self.parts)
        return f"{head}; {defs}"


# ---------------------------------------------------------------------------- the part sums


@dataclass
class PartInputs:
    """What a part's sum reads: the student's float32 logits at the batch's answer rows, the
    batch (:class:`~.batch.Batch`), the teacher cache, the config and the string match (the
    hybrid). The per-pair rows are built once, on first use, for every part that needs them.

    Shapes: ``logits`` (R, V_s); :attr:`pairs` gives ``values`` (P, k), ``tail`` (P,) and
    ``q`` (P, V_s); :attr:`ids` (P, k).
    """

    logits: Any
    batch: Any
    cache: Any
    config: Any
    match: Any = None

    @cached_property
    def pairs(self) -> tuple[Any, Any, Any]:
        """``(values, tail, q)`` of the aligned pairs: the teacher's sorted top-k and tail mass,
        the student's softmax(z / T_s); for chain-rule merged groups (byte-offset alignment)
        each side's base row times the probabilities of the group's other actual tokens."""
        import torch

        z, batch, cache = self.logits, self.batch, self.cache
        dev = z.device
        T_s = float(self.config.student_temperature)
        values, tail = self.teacher
        # softmax(z / T_s) of the pairs' rows (float32 logits; the loop checks the loss is finite)
        q = torch.softmax(pick_rows(z, batch.pair_s.to(dev)) / T_s, -1)  # (P, V_s)
        if batch.merged:  # chain-rule merged groups: base row times the later (or earlier) actual tokens
            P = batch.n_pairs
            logq = torch.log_softmax(z / T_s, -1).gather(1, batch.labels.to(dev).unsqueeze(1)).squeeze(1)  # (R,)
            q = q * _group_scale(logq, batch.others_s, batch.others_pair_s, P).unsqueeze(1)
            st = _group_scale(cache.actual.double().log().to(dev), batch.others_t, batch.others_pair_t, P)
            values, tail = values * st.unsqueeze(1).float(), tail * st
        return values, tail, q

    @cached_property
    def teacher(self) -> tuple[Any, Any]:
        """``(values (P, k), tail (P,))``: the cache's rows of the aligned pairs' teacher positions."""
        dev = self.logits.device
        return (self.cache.values.index_select(0, self.batch.pair_t).to(dev),
                self.cache.tail.index_select(0, self.batch.pair_t).to(dev))

    @cached_property
    def ids(self) -> Any:
        """The teacher's token ids of the pairs' top-k values, (P, k)."""
        return self.cache.ids.index_select(0, self.batch.pair_t).to(self.logits.device)


def pick_rows(z: Any, rows: Any) -> Any:
    """``z[rows]`` (rows of a 2-D tensor ``z`` (N, V), ``rows`` (P,) int; a row possibly picked
    twice) whose backward adds the rows' gradients with ``index_add_``. Autograd's own backward
    of ``z[rows]`` is ``index_put_(accumulate=True)``, and ``index_select`` is slow forward: in
    torch 2.13 on CPU, for a batch's (P, 49,152) rows, ~2x and ~25x the time of this."""
    return _pick_rows_function().apply(z, rows)


@cache
def _pick_rows_function() -> Any:
    import torch  # here, not at the top: this module imports without torch

    class PickRows(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, z: Any, rows: Any) -> Any:
            ctx.save_for_backward(rows)
            ctx.shape = z.shape
            return z[rows]

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            (rows,) = ctx.saved_tensors
            return torch.zeros(ctx.shape, dtype=g.dtype, device=g.device).index_add_(0, rows, g), None

    return PickRows


def _group_scale(logp_actual: Any, others: Any, owner: Any, P: int) -> Any:
    """exp of the summed log-probabilities of each group's non-base actual tokens (the chain rule
    of :func:`~uld_explorer.text.align.merge_group`); 1 for single-token groups. Shape (P,)."""
    import torch

    s = torch.zeros(P, dtype=logp_actual.dtype, device=logp_actual.device)
    if others.numel():
        s = s.index_add(0, owner.to(s.device), logp_actual.index_select(0, others.to(logp_actual.device)))
    return s.exp()


def ce_sum(x: PartInputs) -> dict[str, Any]:
    """``ce``: cross-entropy of the student on the answer text itself, at T = 1, summed over the
    answer tokens."""
    import torch.nn.functional as F

    return {"ce": F.cross_entropy(x.logits, x.batch.labels.to(x.logits.device), reduction="sum")}


def uld_sum(x: PartInputs) -> dict[str, Any]:
    """``uld``: the ULD closed form from the teacher's top-k + tail (:func:`~uld_explorer.uld_top_k`),
    summed over the pairs; ``uld_bound``: the sum of its per-pair bounds min(Q, r). Without merged
    groups, straight from the pairs' logits (:func:`~uld_explorer.uld_top_k_from_logits`: the
    softmax fused with the sorted L1 on CPU; the same values)."""
    from ..divergences import uld_top_k, uld_top_k_from_logits

    T_s = float(x.config.student_temperature)
    if x.batch.merged:  # chain-rule groups: each side's base row scaled (PartInputs.pairs)
        values, tail, q = x.pairs
        r = uld_top_k(values, tail, q, student_temperature=T_s, subprobability=x.batch.merged)
    else:
        values, tail = x.teacher
        r = uld_top_k_from_logits(values, tail, x.logits, rows=x.batch.pair_s.to(x.logits.device), student_temperature=T_s)
    return {"uld": r.value.sum(), "uld_bound": r.bound.sum()}


def kl_sum(x: PartInputs) -> dict[str, Any]:
    """``kl``: forward KL(p || q) over the teacher's top-k ids plus one rest bucket on each side
    (a coarse-graining: at most the full KL), summed over the pairs."""
    import torch

    from ..divergences import kl_divergence

    values, tail, q = x.pairs
    qk = q.gather(1, x.ids)
    q_rest = (q.sum(-1) - qk.sum(-1)).clamp_min(0.0)
    pc = torch.cat([values, tail.to(values.dtype).unsqueeze(1)], 1)
    qc = torch.cat([qk, q_rest.unsqueeze(1)], 1)
    return {"kl": kl_divergence(pc, qc, validate=False).sum()}


def hybrid_sum(x: PartInputs) -> dict[str, Any]:
    """``hybrid``: TRL GOLD's hybrid ULD from the teacher's top-k + tail
    (:func:`~uld_explorer.hybrid_top_k`: the matched strings' JSD and the unmatched sorted L1,
    each the midpoint of its exact interval), summed over the pairs; ``hybrid_bound``: the sum of
    its per-pair bounds (the full-vocabulary :func:`~uld_explorer.hybrid_uld` lies within)."""
    import torch

    from ..divergences import hybrid_top_k

    if x.match is None:
        raise ValueError("the hybrid part needs the vocabularies' string match (loss_sums(..., match=...))")
    values, tail, q = x.pairs
    value = torch.zeros((), dtype=torch.float32, device=q.device)
    bound = torch.zeros((), dtype=torch.float64, device=q.device)
    # torch.split, not slices: its backward writes each chunk's gradient into ONE (P, V_s) buffer
    for v, i, t, qc in zip(*(y.split(HYBRID_CHUNK) for y in (values, x.ids, tail, q))):
        h = hybrid_top_k(v, i, t, qc, match=x.match, config=x.config.hybrid)
        value = value + h.value.sum()
        bound = bound + h.bound.sum().double()
    return {"hybrid": value, "hybrid_bound": bound}


#: The parts a loss can sum: key -> :class:`Part`.
PARTS: dict[str, Part] = {p.key: p for p in (
    Part("ce", "tokens", "CE", "nats / token", "-log q(y)", ce_sum),
    Part("uld", "pairs", "ULD", "[0, 2]", "sum_i |p_(i) - q_(i)|", uld_sum, extras=("uld_bound",), min_top_k=8),
    Part("kl", "pairs", "KL", "nats", "sum_i p_i log(p_i / q_i)", kl_sum),
    Part("hybrid", "pairs", "hybrid ULD", "mixed", "JSD_beta on tokens whose strings match + sorted L1 on the rest",
         hybrid_sum, extras=("hybrid_bound",), min_top_k=8),
)}

#: The training losses: key -> :class:`Loss`. ``p`` is the teacher, ``q`` the student, per aligned
#: answer position.
LOSSES: dict[str, Loss] = {loss.key: loss for loss in (
    Loss("ce", ("ce",), (1.0,), "cross-entropy of the student on the teacher-generated answer (the text only, no "
                                "teacher distributions)"),
    Loss("uld", ("uld",), (1.0,), "ULD closed form: sorted L1 between teacher and student distributions "
                                  "(Boizard et al. 2024)"),
    Loss("ce+uld", ("ce", "uld"), (1.0, "uld_weight"), "CE + lambda * ULD, the paper's loss (lambda = uld_weight, "
                                                       "1.5 in the paper)"),
    Loss("kl", ("kl",), (1.0,), "forward KL(p || q); needs one shared tokenizer (teacher and student vocabularies "
                                "identical)", shared_tokenizer=True),
    Loss("hybrid", ("hybrid",), (1.0,), "TRL GOLD's hybrid ULD: JSD on tokens whose strings match, sorted L1 on "
                                        "the rest (from the teacher's top-k + tail, with an exact bound)"),
)}


def denominator(key: str) -> str:
    """What the sum ``key`` (a part or one of its extras) is divided by: ``tokens`` or ``pairs``.

    >>> denominator("ce"), denominator("uld_bound")
    ('tokens', 'pairs')
    """
    for part in PARTS.values():
        if key == part.key or key in part.extras:
            return part.per
    raise ValueError(f"unknown loss part {key!r}; parts: {', '.join(PARTS)}")


def loss_sums(logits: Any, batch: Any, cache: Any, config: Any, match: Any = None,
              parts: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-part SUMS over the batch (:data:`PARTS`): ``ce`` over its answer tokens, ``uld`` /
    ``kl`` / ``hybrid`` over its aligned pairs, plus their extras (``uld_bound``: the sum of the
    per-pair bounds min(Q, r); ``hybrid_bound``: :func:`~uld_explorer.hybrid_top_k`'s).

    Parameters
    ----------
    logits : Tensor, shape (R, V_s)
        The student's logits at the batch's answer rows (differentiable).
    batch : Batch
        From :func:`~.batch.make_batch`.
    cache : TeacherCache
        The teacher's sorted top-k + tail rows (``batch.pair_t`` indexes them).
    config : DistillConfig
        ``loss``, ``student_temperature``, ``hybrid``.
    match : StringMatch, optional
        The vocabularies' shared strings (the hybrid).
    parts : sequence of str, optional
        Keys of :data:`PARTS`; default the parts of ``LOSSES[config.loss]``.

    Returns
    -------
    dict of str to Tensor
        Scalar sums, in :data:`PARTS`' order.
    """
    wanted = tuple(parts) if parts is not None else LOSSES[config.loss].parts
    unknown = [p for p in wanted if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown loss part(s) {', '.join(unknown)}; parts: {', '.join(PARTS)}")
    x = PartInputs(logits.float(), batch, cache, config, match)
    out: dict[str, Any] = {}
    for key, part in PARTS.items():
        if key in wanted:
            out.update(part.fn(x))
    return out


def combine(sums: dict[str, Any], n_tokens: int, n_pairs: int, config: Any) -> tuple[Any, dict[str, float]]:
    """The loss to minimise and its part means as floats.

    Each sum is divided by its GLOBAL count (:func:`denominator`: ``n_tokens`` answer tokens or
    ``n_pairs`` aligned pairs), then ``LOSSES[config.loss]`` weighs the means
    (:meth:`Loss.total`): for ``ce+uld``, ``ce / n_tokens + uld_weight * uld / n_pairs``.
    """
    count = {"tokens": n_tokens, "pairs": max(n_pairs, 1)}
    means = {k: v / count[denominator(k)] for k, v in sums.items()}
    loss = LOSSES[config.loss].total(means, config)
    return loss, {k: float(v.detach()) for k, v in means.items()}


def dense_teacher(values: Any, ids: Any, tail: Any, V_t: int) -> Any:
    """Full-vocabulary teacher rows from the cache: the top-k at their ids, the tail mass r spread
    evenly over the other ``V_t - k`` ids (``||p~ - p||_1 <= 2 r``). One completion of the cache
    among many (:func:`shared_kl_sum`'s; the hybrid part bounds them all, :func:`hybrid_sum`).

    Parameters
    ----------
    values, ids : Tensor, shape (P, k)
    tail : Tensor, shape (P,)
    V_t : int

    Returns
    -------
    Tensor, shape (P, V_t), float32
    """
    import torch

    P, k = values.shape
    fill = (tail / max(V_t - k, 1)).to(torch.float32)
    out = fill.unsqueeze(1).expand(P, V_t).clone()
    return out.scatter_(1, ids, values)


def shared_kl_sum(q: Any, values: Any, ids: Any, tail: Any, V_t: int, match: Any) -> Any:
    """Sum over rows of KL on the strings both vocabularies share, each side renormalised on them
    (:func:`~uld_explorer.restrict_to_shared_vocab`), the teacher being the cache's dense
    completion (:func:`dense_teacher`); rows where a side has no shared mass are skipped.

    Computed without the dense rows: the teacher's mass on string s is
    :math:`P_s = f\\,n_s + \\sum_{i \\in \\mathrm{top}k,\\ t_i = s} (p_i - f)` with f the tail fill and
    n_s the number of teacher ids spelling s; O(R (S + V_s)) instead of O(R V_t).

    Shapes: ``q`` (R, V_s), ``values`` and ``ids`` (R, k), ``tail`` (R,).
    """
    import torch

    from ..divergences import kl_divergence, string_mass

    S = match.S
    k = values.shape[1]
    tg = torch.as_tensor(match.teacher_group)
    count = torch.bincount(tg[tg >= 0], minlength=S).to(torch.float64)  # (S,) teacher ids per string
    total = torch.zeros((), dtype=torch.float64)
    for a in range(0, q.shape[0], SHARED_KL_CHUNK):
        b = min(a + SHARED_KL_CHUNK, q.shape[0])
        fill = tail[a:b].to(torch.float64) / max(V_t - k, 1)  # (r,)
        g = tg[ids[a:b]]  # (r, k) string of each kept teacher id, -1 if unshared
        P = fill[:, None] * count[None, :]  # (r, S)
        P.scatter_add_(1, g.clamp_min(0), torch.where(g >= 0, values[a:b].to(torch.float64) - fill[:, None], 0.0))
        Q = string_mass(q[a:b].to(torch.float64), match.student_group, S)  # (r, S)
        pm, qm = P.sum(-1), Q.sum(-1)
        ok = (pm > 0) & (qm > 0)
        if ok.any():
            total = total + kl_divergence(P[ok] / pm[ok, None], Q[ok] / qm[ok, None], validate=False).sum()
    return total
