"""The training losses on a batch: CE, ULD, CE + lambda ULD, KL, the hybrid; and the eval metrics.

Teacher first (``p``, from the :class:`~.teacher_cache.TeacherCache`), student second (``q``,
from the student's logits at the answer positions). The math is the library's:
:func:`~uld_explorer.uld_top_k` (ULD from the teacher's sorted top-k + tail, with its bound),
:func:`~uld_explorer.kl_divergence`, :func:`~uld_explorer.hybrid_uld`,
:func:`~uld_explorer.restrict_to_shared_vocab`, the alignments and
:func:`~uld_explorer.text.align.base_token` of :mod:`uld_explorer.text.align`.

The shift (which logit predicts which token), by the library's convention: with ``c`` context
tokens (BOS if any, the rendered prompt), the logits at input position ``c + j - 1`` predict
answer token ``j`` (``j = 0 .. T - 1``); the prompt's own positions are masked (never scored).
Losses are SUMS over a batch's rows; :func:`combine` divides by the global counts (so several
processes give exactly the one-process mean):

.. math::

    \\mathcal L = \\frac{1}{N_{tok}} \\sum \\mathrm{CE} + \\lambda \\frac{1}{N_{pair}} \\sum \\mathrm{ULD}

with ``N_tok`` the student's answer tokens and ``N_pair`` the aligned pairs (positional: the
i-th teacher token with the i-th student token, truncated to the shorter answer, as the paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..divergences import hybrid_uld, kl_divergence, uld_top_k
from ..text.align import ALIGNMENTS, base_token, byte_offset_alignment

__all__ = ["Batch", "make_batch", "loss_sums", "combine", "dense_teacher", "HYBRID_CHUNK"]

HYBRID_CHUNK = 64  # rows per dense (V_t-wide) teacher completion, bounds the hybrid's memory


@dataclass
class Batch:
    """One (local) batch. Shapes: B examples, L padded length, R student answer rows, P aligned pairs.

    input_ids, attention_mask : (B, L)
    positions : (R,) flat index into (B * L) of the positions predicting answer tokens
    labels : (R,) the student's answer token ids
    pair_s : (P,) student row (into R) of each pair's base token
    pair_t : (P,) teacher cache row of each pair's base token
    merged : bool, some group has several tokens (byte-offset alignment)
    others_s, others_t : (M,) rows of the non-base tokens of multi-token groups, and
    others_pair_s, others_pair_t : (M,) the pair each belongs to
    same_s, same_t : (A,) student and teacher rows of the answer tokens both tokenizers cut alike
        (one token each side over the same bytes: byte-offset groups of one token each); the
        eval metrics that compare token identities (top-1 agreement, KL on shared strings) use
        these, whatever the training alignment
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    positions: torch.Tensor
    labels: torch.Tensor
    pair_s: torch.Tensor
    pair_t: torch.Tensor
    merged: bool
    others_s: torch.Tensor
    others_pair_s: torch.Tensor
    others_t: torch.Tensor
    others_pair_t: torch.Tensor
    same_s: torch.Tensor
    same_t: torch.Tensor

    @property
    def n_tokens(self) -> int:
        return int(self.labels.numel())

    @property
    def n_pairs(self) -> int:
        return int(self.pair_s.numel())


def make_batch(examples: Sequence[Any], cache_rows: Sequence[slice], alignment: str, merge: str, pad_id: int) -> Batch:
    """Pad the student's inputs (right) and index every answer row and aligned pair.

    ``cache_rows[i]`` are the teacher cache rows of ``examples[i]``. Student answer token ``j``
    of example ``b`` is predicted at input position ``c_b + j - 1`` (``c_b`` = its context length).
    """
    B = len(examples)
    seqs = [list(ex.student.model_input_ids) for ex in examples]
    L = max(map(len, seqs))
    input_ids = torch.full((B, L), pad_id, dtype=torch.long)
    mask = torch.zeros((B, L), dtype=torch.long)
    positions, labels = [], []
    pair_s, pair_t, o_s, o_ps, o_t, o_pt, same_s, same_t = [], [], [], [], [], [], [], []
    align = ALIGNMENTS[alignment].align
    merged = False
    for b, (ex, rows) in enumerate(zip(examples, cache_rows)):
        s = ex.student
        input_ids[b, : len(seqs[b])] = torch.tensor(seqs[b])
        mask[b, : len(seqs[b])] = 1
        c = len(s.context_ids)
        if c < 1:
            raise ValueError("the student reads nothing before the answer: its first token has no prediction")
        r0 = len(labels)  # this example's first student row
        for j, tid in enumerate(s.ids):
            positions.append(b * L + c + j - 1)
            labels.append(tid)
        if rows.stop - rows.start != len(ex.teacher.ids):
            raise ValueError(f"teacher cache rows {rows} do not match the teacher's {len(ex.teacher.ids)} answer tokens")
        for g in align(ex.teacher, ex.student):
            bt, bs = base_token(g.teacher_tokens, merge), base_token(g.student_tokens, merge)
            p = len(pair_s)
            pair_t.append(rows.start + bt)
            pair_s.append(r0 + bs)
            for j in g.teacher_tokens:
                if j != bt:
                    o_t.append(rows.start + j)
                    o_pt.append(p)
            for j in g.student_tokens:
                if j != bs:
                    o_s.append(r0 + j)
                    o_ps.append(p)
            merged |= len(g.teacher_tokens) > 1 or len(g.student_tokens) > 1
        for g in byte_offset_alignment(ex.teacher, ex.student):
            if len(g.teacher_tokens) == len(g.student_tokens) == 1:
                same_t.append(rows.start + g.teacher_tokens[0])
                same_s.append(r0 + g.student_tokens[0])
    t = lambda x: torch.tensor(x, dtype=torch.long)  # noqa: E731
    return Batch(input_ids, mask, t(positions), t(labels), t(pair_s), t(pair_t), merged, t(o_s), t(o_ps), t(o_t), t(o_pt),
                 t(same_s), t(same_t))


def dense_teacher(values: torch.Tensor, ids: torch.Tensor, tail: torch.Tensor, V_t: int) -> torch.Tensor:
    """Full-vocabulary teacher rows from the cache: the top-k at their ids, the tail mass r spread
    evenly over the other ``V_t - k`` ids (``||p~ - p||_1 <= 2 r``). Shape (P, V_t) float32."""
    P, k = values.shape
    fill = (tail / max(V_t - k, 1)).to(torch.float32)
    out = fill.unsqueeze(1).expand(P, V_t).clone()
    return out.scatter_(1, ids, values)


def _group_scale(logp_actual: torch.Tensor, others: torch.Tensor, owner: torch.Tensor, P: int) -> torch.Tensor:
    """exp of the summed log-probabilities of each group's non-base actual tokens (the chain rule
    of :func:`~uld_explorer.text.align.merge_group`); 1 for single-token groups. Shape (P,)."""
    s = torch.zeros(P, dtype=logp_actual.dtype, device=logp_actual.device)
    if others.numel():
        s = s.index_add(0, owner.to(s.device), logp_actual.index_select(0, others.to(logp_actual.device)))
    return s.exp()


def loss_sums(logits: torch.Tensor, batch: Batch, cache: Any, config: Any, match: Any = None,
              parts: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Per-part SUMS over the batch: ``ce`` over its answer tokens, ``uld`` / ``kl`` / ``hybrid``
    over its aligned pairs, plus ``uld_bound`` (sum of the per-pair bounds min(Q, r)).

    ``logits`` (R, V_s) are the student's at the answer rows (differentiable). ``parts`` defaults
    to what ``config.loss`` needs.
    """
    parts = tuple(parts) if parts is not None else {
        "ce": ("ce",), "uld": ("uld",), "ce+uld": ("ce", "uld"), "kl": ("kl",), "hybrid": ("hybrid",)}[config.loss]
    dev = logits.device
    z = logits.float()
    out: dict[str, torch.Tensor] = {}
    if "ce" in parts:  # the answer text itself, at T = 1
        out["ce"] = F.cross_entropy(z, batch.labels.to(dev), reduction="sum")
    need_pairs = [p for p in parts if p != "ce"]
    if not need_pairs:
        return out
    T_s = float(config.student_temperature)
    rows_t = batch.pair_t
    values = cache.values.index_select(0, rows_t).to(dev)  # (P, k)
    tail = cache.tail.index_select(0, rows_t).to(dev)  # (P,)
    # softmax(z / T_s) of the pairs' rows (float32 logits; the loop checks the loss is finite)
    # (row indexing: in torch 2.13 on CPU, index_select on rows this wide is ~25x slower than z[idx])
    q = torch.softmax(z[batch.pair_s.to(dev)] / T_s, -1)  # (P, V_s)
    P = batch.n_pairs
    if batch.merged:  # chain-rule merged groups: base row times the later (or earlier) actual tokens
        logq = torch.log_softmax(z / T_s, -1).gather(1, batch.labels.to(dev).unsqueeze(1)).squeeze(1)  # (R,)
        q = q * _group_scale(logq, batch.others_s, batch.others_pair_s, P).unsqueeze(1)
        st = _group_scale(cache.actual.double().log().to(dev), batch.others_t, batch.others_pair_t, P)
        values, tail = values * st.unsqueeze(1).float(), tail * st
    if "uld" in parts:
        r = uld_top_k(values, tail, q, student_temperature=T_s, subprobability=batch.merged)
        out["uld"] = r.value.sum()
        out["uld_bound"] = r.bound.sum()
    if "kl" in parts:  # the top-k ids plus one rest bucket on each side (a coarse-graining: <= full KL)
        ids = cache.ids.index_select(0, rows_t).to(dev)
        qk = q.gather(1, ids)
        q_rest = (q.sum(-1) - qk.sum(-1)).clamp_min(0.0)
        pc = torch.cat([values, tail.to(values.dtype).unsqueeze(1)], 1)
        qc = torch.cat([qk, q_rest.unsqueeze(1)], 1)
        out["kl"] = kl_divergence(pc, qc, validate=False).sum()
    if "hybrid" in parts:
        ids = cache.ids.index_select(0, rows_t).to(dev)
        total = torch.zeros((), dtype=torch.float32, device=dev)
        for a in range(0, P, HYBRID_CHUNK):
            b = min(a + HYBRID_CHUNK, P)
            p_dense = dense_teacher(values[a:b], ids[a:b], tail[a:b], cache.vocab_size)
            h = hybrid_uld(p_dense, q[a:b], match=match, config=config.hybrid, validate=False,
                           subprobability=batch.merged)
            total = total + h.value.sum()
        out["hybrid"] = total
    return out


def combine(sums: dict[str, torch.Tensor], n_tokens: int, n_pairs: int, config: Any) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss to minimise (means over the GLOBAL token / pair counts) and its parts as floats."""
    means = {k: v / (n_tokens if k == "ce" else max(n_pairs, 1)) for k, v in sums.items()}
    if config.loss == "ce+uld":
        loss = means["ce"] + float(config.uld_weight) * means["uld"]
    else:
        loss = means[config.loss]
    return loss, {k: float(v.detach()) for k, v in means.items()}


def shared_kl_sum(q: torch.Tensor, values: torch.Tensor, ids: torch.Tensor, tail: torch.Tensor, V_t: int,
                  match: Any) -> torch.Tensor:
    """Sum over rows of KL on the strings both vocabularies share, each side renormalised on them
    (:func:`~uld_explorer.restrict_to_shared_vocab`), the teacher being the cache's dense
    completion (:func:`dense_teacher`); rows where a side has no shared mass are skipped.

    Computed without the dense rows: the teacher's mass on string s is
    :math:`P_s = f\,n_s + \sum_{i \in \mathrm{top}k,\ t_i = s} (p_i - f)` with f the tail fill and
    n_s the number of teacher ids spelling s; O(R (S + V_s)) instead of O(R V_t).
    """
    from ..divergences import string_mass

    S = match.S
    k = values.shape[1]
    tg = torch.as_tensor(match.teacher_group)
    count = torch.bincount(tg[tg >= 0], minlength=S).to(torch.float64)  # (S,) teacher ids per string
    total = torch.zeros((), dtype=torch.float64)
    for a in range(0, q.shape[0], HYBRID_CHUNK):
        b = min(a + HYBRID_CHUNK, q.shape[0])
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
