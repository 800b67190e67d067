"""(prompt +) text -> teacher and student distributions -> the aligned per-position table.

The pipeline of ULD Explorer for real models, teacher first, student second::

    prompt + text ──► tokenize with byte offsets, ONE forward pass per model   forward.next_token_distributions
         ──► align (positional | byte-offset), merge groups (observed | bayesian)   text.align
         ──► the next-token row after the text (both sides read the same text)
         ──► rows validated ONCE, then every divergence on the whole batch or per row:
             ULD, value-space OT (= ULD), hybrid ULD, KL on shared strings, token-space OT
         ──► ComparisonTable                                                   table

Which vector each number is computed on
---------------------------------------
A row of a byte-offset group of several tokens has two vectors per side: the MERGED vector
(:func:`~uld_explorer.text.merge_group`, a sub-probability vector, as TRL GOLD's loss sees it)
and the BASE distribution it scales (the group's first token's distribution for
``merge="observed"``, its last token's for ``"bayesian"``; the merged vector renormalized).

- on the merged vectors: ``uld`` (:func:`~uld_explorer.uld_distance`, ``subprobability``),
  ``value_ot`` (:func:`~uld_explorer.value_space_w1`), ``hybrid``
  (:func:`~uld_explorer.hybrid_uld`), ``teacher_prob`` / ``student_prob`` (the group's
  sequence probability);
- on the base distributions (OT needs equal masses; KL and a top-1 need a distribution):
  ``kl_shared`` (:func:`~uld_explorer.restrict_to_shared_vocab` then
  :func:`~uld_explorer.kl_divergence`), the top-1s, ``token_ot_string`` / ``token_ot_edit``
  (:func:`~uld_explorer.token_space_ot_top_k`).

Single-token rows (positional alignment, one-token groups, the next-token row) have one vector.
Every divergence comes from the library; this module only assembles rows.

References
----------
.. [1] Boizard et al. 2024, TMLR, arXiv:2402.12030 (ULD, positional alignment).
.. [2] Hugging Face TRL, ``GOLDTrainer`` (byte-offset alignment, observed / bayesian merges,
   hybrid ULD).
"""

from __future__ import annotations

import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..checks import check_text
from ..distributions import check_distribution
from ..divergences import hybrid_uld, kl_divergence, restrict_to_shared_vocab, uld_distance
from ..ot import token_space_ot_top_k, value_space_w1
from ..text import (
    ALIGNMENTS,
    StringMatch,
    Tokenized,
    base_token,
    match_strings,
    merge_group,
    vocab_bytes,
)
from ..text.spelling import readable
from .config import ComparisonConfig
from .forward import as_model, available_memory_bytes, model_name, next_token_distributions, vocab_size_of
from .table import NEXT_TOKEN_LABEL, ComparisonTable, PositionRow

__all__ = ["check_memory", "compare_distributions", "compare_text", "memory_needed", "shared_strings_of"]


# --------------------------------------------------------------------------------------------
# vocabulary strings and their matching, built once per tokenizer / model pair
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedStrings:
    """Both vocabularies as exact keys and as readable strings (object arrays, one per id), and
    their matching. Keys (:func:`~uld_explorer.vocab_bytes`) decide what is the same token on both
    sides (the shared strings of KL and the hybrid, cost 0 of the string-cost token OT); strings
    are shown (top-1s) and compared by the edit-distance cost."""

    teacher_keys: np.ndarray  # object (V_t,) of bytes
    student_keys: np.ndarray  # object (V_s,) of bytes
    teacher_strings: np.ndarray  # object (V_t,) of str
    student_strings: np.ndarray  # object (V_s,) of str
    match: StringMatch


_KEYS: "weakref.WeakKeyDictionary[Any, dict[int, tuple[np.ndarray, np.ndarray]]]" = weakref.WeakKeyDictionary()
_SHARED: "weakref.WeakKeyDictionary[Any, dict[tuple, tuple[Any, SharedStrings]]]" = weakref.WeakKeyDictionary()


def _vocab_cached(tokenizer: Any, V: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        per_tok = _KEYS.setdefault(tokenizer, {})
    except TypeError:  # not weak-referenceable: no cache
        per_tok = {}
    if V not in per_tok:
        keys = vocab_bytes(tokenizer, V)
        per_tok[V] = (np.array(keys, dtype=object), np.array([readable(k) for k in keys], dtype=object))
    return per_tok[V]


def shared_strings_of(teacher_tokenizer: Any, student_tokenizer: Any, V_t: int, V_s: int) -> SharedStrings:
    """The vocab keys and strings of a tokenizer pair and their :class:`~uld_explorer.StringMatch`,
    cached for as long as both tokenizers live (building them takes ~1 s for 152k ids)."""
    key = (id(student_tokenizer), int(V_t), int(V_s))
    try:
        per_teacher = _SHARED.setdefault(teacher_tokenizer, {})
    except TypeError:
        per_teacher = {}
    hit = per_teacher.get(key)
    if hit is not None and hit[0]() is student_tokenizer:
        return hit[1]
    tk, ts = _vocab_cached(teacher_tokenizer, V_t)
    sk, ss = _vocab_cached(student_tokenizer, V_s)
    shared = SharedStrings(tk, sk, ts, ss, match_strings(tk.tolist(), sk.tolist()))
    try:
        per_teacher[key] = (weakref.ref(student_tokenizer), shared)
    except TypeError:
        pass
    return shared


# --------------------------------------------------------------------------------------------
# rows
# --------------------------------------------------------------------------------------------


def _take_rows(dist: np.ndarray, index: list[int]) -> np.ndarray:
    """``dist[index]``: a view when the rows are consecutive (no copy of (R, V)), else a copy."""
    if index and index == list(range(index[0], index[0] + len(index))):
        return dist[index[0] : index[0] + len(index)]
    return dist[index]


def _side_rows(
    dist: np.ndarray, tok: Tokenized, groups: Sequence[tuple[int, ...] | None], merge: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Merged vectors (R, V), their masses (R,), base distributions (R, V) and base token indices
    of one side for a chunk of rows; ``None`` in ``groups`` is the next-token row (``dist[T]``).
    Without a multi-token group the merged vectors ARE the base rows (the same array)."""
    base = [len(tok) if g is None else base_token(g, merge) for g in groups]
    B = _take_rows(dist, base)
    if all(g is None or len(g) == 1 for g in groups):
        return B, np.ones(len(groups)), B, base
    merged, mass = np.array(B), np.ones(len(groups))
    for i, g in enumerate(groups):
        if g is not None and len(g) > 1:
            merged[i], mass[i] = merge_group(dist, tok.ids, g, merge)
    return merged, mass, B, base


def _config(config: ComparisonConfig | None, settings: dict[str, Any]) -> ComparisonConfig:
    if config is not None and not isinstance(config, ComparisonConfig):
        raise TypeError(f"config must be a ComparisonConfig (got {type(config).__name__})")
    config = ComparisonConfig() if config is None else config
    return config.replace(**settings) if settings else config


def _ot_note(uld_half: float, ot: float, t_cut: float, s_cut: float, duplicates: bool, k: int) -> str:
    why = []
    if t_cut > 0 and s_cut > 0:
        why.append(f"the top-{k} rest buckets (mass {t_cut:.3g} / {s_cut:.3g}) move to each other for free")
    if duplicates:
        why.append("several kept ids of one side share a string and pool their mass")
    reason = "; ".join(why) if why else "float rounding"
    return f"token_ot_string {ot:.4g} < ULD/2 {uld_half:.4g}: {reason} (ULD/2 bounds the full 0/1 token OT only without either)"


def _table_notes(teacher_tok: Tokenized, student_tok: Tokenized, with_next: bool, text: str | None,
                 cfg: ComparisonConfig) -> list[str]:
    notes = []
    cut = [] if text is None else [
        f"{nm} {len(tok)} tokens ({len(tok.text)} of {len(text)} characters)"
        for nm, tok in (("teacher", teacher_tok), ("student", student_tok)) if tok.text != text
    ]
    if cut:
        limit = f"max_tokens={cfg.max_tokens} or the model's context" if cfg.max_tokens else "the model's context"
        notes.append(f"the text was cut to fit {limit}: compared {', '.join(cut)}; raise max_tokens "
                     f"(--max-tokens) to compare more, at ~0.8 MB per token for the default pair")
    if not with_next:
        notes.append(
            f"no next-token row: the two sides were cut at different points of the text (teacher "
            f"{len(teacher_tok.text_bytes)} bytes, student {len(student_tok.text_bytes)} bytes)"
        )
    for nm, tok in (("teacher", teacher_tok), ("student", student_tok)):
        if tok.first_predicted:
            notes.append(
                f"the {nm} reads nothing before the text (no BOS, no prompt), so nothing predicts the "
                f"text's first token: it has no row; give a prompt to score it"
            )
    return notes


class _Done:
    """A finished job with a future's ``result()`` (no pool: run in place)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


def _chunk_values(
    cfg: ComparisonConfig,
    shared: SharedStrings,
    sides: tuple[tuple[np.ndarray, Tokenized, list], tuple[np.ndarray, Tokenized, list]],
    pool: ThreadPoolExecutor | None,
    kept: Sequence[PositionRow] | None = None,
) -> list[dict[str, Any]]:
    """Every number of one chunk of rows: validated once, then batched (ULD, hybrid, KL) and per
    row (value-space OT, token-space OT, top-1s) in threads. ``sides`` holds (dist, tok, groups)
    of the teacher and the student; a group ``None`` is the next-token row. ``kept``: the same
    rows of a reusable table (:func:`_reusable`), whose ULD, hybrid, KL and value OT are taken."""
    (t_dist, t_tok, t_groups), (s_dist, s_tok, s_groups) = sides
    P, mass_t, Bt, base_t = _side_rows(t_dist, t_tok, t_groups, cfg.merge)
    Q, mass_s, Bs, base_s = _side_rows(s_dist, s_tok, s_groups, cfg.merge)
    merged = P is not Bt or Q is not Bs
    # validate every row ONCE; the divergences below take the checked rows as they are
    check_distribution(P, "teacher rows", subprobability=merged)
    check_distribution(Q, "student rows", subprobability=merged)
    if merged:
        check_distribution(Bt, "teacher base rows")
        check_distribution(Bs, "student base rows")
    # the two full-vocabulary sorts (ULD, the hybrid's unmatched part) dominate: run them on row
    # halves in the pool's threads (NumPy's sort releases the GIL) while KL is computed here
    n = P.shape[0]
    if kept is not None:  # the same distributions: only the token-space OT depends on what changed
        return _rows(cfg, shared, (P, Q, Bt, Bs), (mass_t, mass_s, base_t, base_s), (t_tok, t_groups, s_tok, s_groups),
                     pool, lambda i: _kept_values(kept[i]))
    halves = [slice(0, (n + 1) // 2), slice((n + 1) // 2, n)] if pool is not None and n > 1 else [slice(0, n)]

    def uld_part(h: slice) -> np.ndarray:
        return np.asarray(uld_distance(P[h], Q[h], validate=False), dtype=np.float64)

    def hybrid_part(h: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = hybrid_uld(P[h], Q[h], match=shared.match, config=cfg.hybrid, validate=False)
        return tuple(np.asarray(x, dtype=np.float64).reshape(-1) for x in (r.value, r.matched, r.unmatched))

    run = (lambda f, h: pool.submit(f, h)) if len(halves) > 1 else (lambda f, h: _Done(f(h)))
    uld_jobs = [run(uld_part, h) for h in halves]
    hybrid_jobs = [run(hybrid_part, h) for h in halves]
    sv = restrict_to_shared_vocab(Bt, Bs, match=shared.match, on_empty="nan", validate=False)
    kl = np.asarray(kl_divergence(sv.p, sv.q, validate=False), dtype=np.float64)  # (C,), NaN if no mass
    uld = np.concatenate([j.result() for j in uld_jobs])  # (C,)
    parts = [j.result() for j in hybrid_jobs]
    hyb_value, hyb_matched, hyb_unmatched = (np.concatenate([p[k] for p in parts]) for k in range(3))

    def heavy(i: int) -> dict[str, Any]:
        return {
            "value_ot": value_space_w1(P[i], Q[i], validate=False) if cfg.value_ot else None,
            "uld": float(uld[i]), "kl": float(kl[i]),
            "cov_t": min(float(sv.teacher_mass[i]), 1.0), "cov_s": min(float(sv.student_mass[i]), 1.0),
            "hybrid": float(hyb_value[i]), "hybrid_matched": float(hyb_matched[i]),
            "hybrid_unmatched": float(hyb_unmatched[i]),
        }

    return _rows(cfg, shared, (P, Q, Bt, Bs), (mass_t, mass_s, base_t, base_s), (t_tok, t_groups, s_tok, s_groups),
                 pool, heavy)


def _kept_values(row: PositionRow) -> dict[str, Any]:
    """What a reusable table's row already holds (:func:`_reusable`): everything but token OT."""
    return {"value_ot": row.value_ot, "uld": row.uld, "kl": row.kl_shared, "cov_t": row.kl_teacher_coverage,
            "cov_s": row.kl_student_coverage, "hybrid": row.hybrid, "hybrid_matched": row.hybrid_matched,
            "hybrid_unmatched": row.hybrid_unmatched}


def _rows(cfg: ComparisonConfig, shared: SharedStrings, vectors: tuple, side_info: tuple, tokens_groups: tuple,
          pool: ThreadPoolExecutor | None, heavy: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
    """One chunk's per-row values: ``heavy(i)`` (ULD, hybrid, KL, value OT: computed or kept), the
    token-space OT of each requested cost, the top-1s and the own-token probabilities."""
    P, Q, Bt, Bs = vectors
    mass_t, mass_s, base_t, base_s = side_info
    t_tok, t_groups, s_tok, s_groups = tokens_groups
    ks = {"string": cfg.top_k, "edit": cfg.edit_top_k}
    # the 0/1 cost compares exact keys (bytes); the edit distance compares readable strings
    tokens = {"string": (shared.teacher_keys, shared.student_keys),
              "edit": (shared.teacher_strings, shared.student_strings)}

    def token_ot(i: int, cost: str) -> tuple[float, float, float, bool]:
        """(value, teacher / student truncated mass, a kept key repeats): never the (k+1)^2 plan,
        which would hold 4 MB per row until the table is built."""
        r = token_space_ot_top_k(Bt[i], Bs[i], *tokens[cost], k=ks[cost], cost=cost, validate=False, plan=False)
        # a repeated (non-empty: b'' marks ids without text) key pools its ids' mass
        kt = [x for x in (tokens[cost][0][j] for j in r.teacher_index) if x]
        kq = [x for x in (tokens[cost][1][j] for j in r.student_index) if x]
        repeats = len(set(kt)) < len(kt) or len(set(kq)) < len(kq)
        return r.value, r.teacher_truncated_mass, r.student_truncated_mass, repeats

    def row_job(i: int) -> dict[str, Any]:
        # NumPy's sorts and POT's simplex release the GIL: rows run in threads
        top_t, top_s = int(np.argmax(Bt[i])), int(np.argmax(Bs[i]))
        return {
            **heavy(i),
            "ots": {cost: token_ot(i, cost) for cost in cfg.costs},
            "top_t": top_t, "top_s": top_s,
            "top_t_prob": float(Bt[i, top_t]), "top_s_prob": float(Bs[i, top_s]),
            # own token(s): the merged vector at the base token's actual id = the group's probability
            "own_t": None if t_groups[i] is None else float(P[i, t_tok.ids[base_t[i]]]),
            "own_s": None if s_groups[i] is None else float(Q[i, s_tok.ids[base_s[i]]]),
            "mass_t": float(mass_t[i]), "mass_s": float(mass_s[i]),
        }

    n = P.shape[0]
    return list(pool.map(row_job, range(n))) if pool is not None else [row_job(i) for i in range(n)]


def _reusable(reuse: Any, cfg: ComparisonConfig, teacher: Any, student: Any, teacher_tok: Tokenized,
              student_tok: Tokenized, V_t: int, V_s: int, n_rows: int) -> tuple[PositionRow, ...] | None:
    """The rows of ``reuse`` when it is a table of the same comparison up to ``top_k``,
    ``edit_top_k`` and ``costs`` (same models, tokens, vocabulary sizes, alignment, merge,
    temperatures, hybrid, value_ot), else None."""
    if not isinstance(reuse, ComparisonTable) or len(reuse.rows) != n_rows:
        return None
    same = (reuse.config.replace(top_k=cfg.top_k, edit_top_k=cfg.edit_top_k, costs=cfg.costs) == cfg
            and (reuse.teacher_name, reuse.student_name) == (model_name(teacher), model_name(student))
            and (reuse.teacher, reuse.student) == (teacher_tok, student_tok) and (reuse.V_t, reuse.V_s) == (V_t, V_s))
    return reuse.rows if same else None


def _row_notes(res: dict[str, Any], cfg: ComparisonConfig, shared: SharedStrings, multi: bool, is_next: bool) -> list[str]:
    notes = []
    if is_next:
        notes.append("both models' distribution after the whole input: the prediction of what follows "
                     "the text (no actual token)")
    if multi:
        where = "first" if cfg.merge == "observed" else "last"
        notes.append(
            f"merged group ({cfg.merge}): uld, value_ot and hybrid compare the chain-rule vectors "
            f"(mass {res['mass_t']:.3g} / {res['mass_s']:.3g}); kl_shared, the top-1s and token OT the "
            f"group's {where} token's distributions"
        )
    if not np.isfinite(res["kl"]):
        if res["cov_t"] <= 0 or res["cov_s"] <= 0:
            who = "teacher" if res["cov_t"] <= 0 else "student"
            notes.append(f"kl_shared undefined: the {who} puts no mass on the {shared.match.S:,} shared strings here")
        elif res["kl"] == np.inf:
            notes.append("kl_shared infinite: the student gives 0 to a shared string the teacher does not")
    string_ot = res["ots"].get("string")
    if string_ot is not None and res["mass_t"] == res["mass_s"] == 1.0 and string_ot[0] < res["uld"] / 2 - 1e-9:
        notes.append(_ot_note(res["uld"] / 2, *string_ot, cfg.top_k))
    return notes


def compare_distributions(
    teacher: Any,
    student: Any,
    teacher_tok: Tokenized,
    teacher_dist: np.ndarray,
    student_tok: Tokenized,
    student_dist: np.ndarray,
    config: ComparisonConfig | None = None,
    *,
    text: str | None = None,
    reuse: ComparisonTable | None = None,
    **settings: Any,
) -> ComparisonTable:
    """The per-position table from precomputed distributions (see :func:`compare_text`).

    Use it to switch the alignment, the merge or the top-k without running the models again.
    The temperatures are recorded only (``*_dist`` already carry them).

    Parameters
    ----------
    teacher, student : objects with ``.tokenizer`` (and ``.name``)
    teacher_tok, student_tok : Tokenized
    teacher_dist : ndarray, shape (T_t + 1, V_t);  student_dist : ndarray, shape (T_s + 1, V_s)
        From :func:`~uld_explorer.compare.next_token_distributions` (row j predicts token j, the
        last row the token after the text).
    config : ComparisonConfig, optional
    text : str, optional
        The whole text the two sides were asked to read: when a side covers less (cut to
        ``max_tokens`` or the model's context), the table's first note says so.
    reuse : ComparisonTable, optional
        A table of the SAME distributions that differs from this one only in ``top_k``,
        ``edit_top_k`` or ``costs``: its rows' ULD, hybrid, KL (with coverages) and value-space
        OT are taken over and only the token-space OT is computed (changing top-k then costs
        ~0.3 s instead of ~1.5 s for 122 rows). A table that differs in anything else (models,
        tokens, alignment, merge, temperatures, hybrid, value_ot) is ignored.
    **settings
        Any field of :class:`~uld_explorer.compare.ComparisonConfig`, overriding ``config``.

    Returns
    -------
    ComparisonTable
    """
    cfg = _config(config, settings)
    for nm, tok, dist in (("teacher", teacher_tok, teacher_dist), ("student", student_tok, student_dist)):
        if not isinstance(dist, np.ndarray) or dist.ndim != 2 or dist.shape[0] != len(tok) + 1:
            raise ValueError(
                f"{nm}_dist must be an array of shape (T + 1, V) with T = {len(tok)} tokens: a row per "
                f"token and one for the token after the text, as next_token_distributions returns "
                f"(got {getattr(dist, 'shape', type(dist).__name__)})"
            )
    if teacher_tok.prompt != student_tok.prompt:
        raise ValueError("teacher and student read different prompts: tokenize both with the same prompt")
    t0 = time.perf_counter()
    V_t, V_s = teacher_dist.shape[1], student_dist.shape[1]
    shared = shared_strings_of(teacher.tokenizer, student.tokenizer, V_t, V_s)
    t_vocab = time.perf_counter() - t0

    t0 = time.perf_counter()
    pairs = ALIGNMENTS[cfg.alignment].align(teacher_tok, student_tok)
    with_next = teacher_tok.text == student_tok.text  # both read the same input: the next row aligns
    groups_t = [g.teacher_tokens for g in pairs] + ([None] if with_next else [])
    groups_s = [g.student_tokens for g in pairs] + ([None] if with_next else [])
    R = len(groups_t)
    kept = _reusable(reuse, cfg, teacher, student, teacher_tok, student_tok, V_t, V_s, R)
    threads = max(1, torch.get_num_threads())
    pool = ThreadPoolExecutor(threads) if threads > 1 and R > 1 else None
    results: list[dict[str, Any]] = []
    try:
        for c0 in range(0, R, cfg.chunk_rows):  # bounded memory: chunk_rows full-vocabulary rows at a time
            c = slice(c0, min(c0 + cfg.chunk_rows, R))
            sides = ((teacher_dist, teacher_tok, groups_t[c]), (student_dist, student_tok, groups_s[c]))
            results += _chunk_values(cfg, shared, sides, pool, None if kept is None else kept[c])
    finally:
        if pool is not None:
            pool.shutdown()

    n_bytes = len(teacher_tok.text_bytes)
    rows: list[PositionRow] = []
    for r, res in enumerate(results):
        is_next = r == len(pairs)
        g = None if is_next else pairs[r]
        jt, js = ((), ()) if is_next else (g.teacher_tokens, g.student_tokens)
        ots = res["ots"]
        ot_field = lambda cost, k: None if cost not in ots else float(ots[cost][k])  # noqa: E731
        rows.append(
            PositionRow(
                index=r,
                kind="next" if is_next else "token",
                label=NEXT_TOKEN_LABEL if is_next else g.label,
                byte_span=(n_bytes, n_bytes) if is_next else tuple(g.byte_span),
                same_span=True if is_next else bool(g.same_span),
                teacher_tokens=tuple(jt),
                student_tokens=tuple(js),
                teacher_ids=tuple(teacher_tok.ids[j] for j in jt),
                student_ids=tuple(student_tok.ids[j] for j in js),
                teacher_strings=tuple(teacher_tok.strings[j] for j in jt),
                student_strings=tuple(student_tok.strings[j] for j in js),
                teacher_prob=res["own_t"],
                student_prob=res["own_s"],
                teacher_mass=res["mass_t"],
                student_mass=res["mass_s"],
                teacher_top1=str(shared.teacher_strings[res["top_t"]]),
                teacher_top1_prob=res["top_t_prob"],
                student_top1=str(shared.student_strings[res["top_s"]]),
                student_top1_prob=res["top_s_prob"],
                kl_shared=res["kl"],
                kl_teacher_coverage=res["cov_t"],
                kl_student_coverage=res["cov_s"],
                uld=res["uld"],
                value_ot=res["value_ot"],
                hybrid=res["hybrid"],
                hybrid_matched=res["hybrid_matched"],
                hybrid_unmatched=res["hybrid_unmatched"],
                uld_half=res["uld"] / 2,
                token_ot_string=ot_field("string", 0),
                token_ot_edit=ot_field("edit", 0),
                string_teacher_truncated=ot_field("string", 1),
                string_student_truncated=ot_field("string", 2),
                edit_teacher_truncated=ot_field("edit", 1),
                edit_student_truncated=ot_field("edit", 2),
                notes=tuple(_row_notes(res, cfg, shared, len(jt) > 1 or len(js) > 1, is_next)),
            )
        )
    return ComparisonTable(
        rows=tuple(rows),
        config=cfg,
        teacher_name=model_name(teacher),
        student_name=model_name(student),
        V_t=V_t,
        V_s=V_s,
        shared_strings=shared.match.S,
        hybrid_weights=cfg.hybrid.weights(shared.match.teacher_matched.size, V_t),
        teacher=teacher_tok,
        student=student_tok,
        notes=tuple(_table_notes(teacher_tok, student_tok, with_next, text, cfg)),
        timings={"vocab": t_vocab, "divergences": time.perf_counter() - t0},
    )


def memory_needed(n_teacher: int, n_student: int, V_t: int, V_s: int, chunk_rows: int, chunk_tokens: int = 256) -> int:
    """Bytes a comparison holds at its peak, beyond the loaded models (an upper estimate).

    The two kept float32 distributions, ``(T + 1) x V`` per side, one forward step's logits and
    softmax temporaries (``3 x chunk_tokens x V``), and the table's chunk of rows (a handful of
    ``chunk_rows x (V_t + V_s)`` copies: merged, base, sorted, hybrid parts).

    >>> round(memory_needed(1024, 1024, 151_936, 49_152, 32) / 2**30, 2)  # measured: 0.97 GiB
    1.39
    """
    dists = 4 * ((n_teacher + 1) * V_t + (n_student + 1) * V_s)
    forward = 4 * 3 * chunk_tokens * max(V_t, V_s)
    table = 4 * 8 * chunk_rows * (V_t + V_s)
    return dists + forward + table


def check_memory(teacher: Any, student: Any, text: str, cfg: ComparisonConfig, *, prompt: str = "",
                 available: int | None = None) -> None:
    """Refuse, before any forward pass, a comparison that would not fit in the available memory
    (the machine would otherwise swap or the kernel kill the process with no message).

    Token counts come from the two tokenizers (capped by ``cfg.max_tokens``), vocabulary sizes
    from the models; ``available`` defaults to :func:`available_memory_bytes` (no check where it
    is unknown). Raises ValueError naming the knob (``max_tokens``) and a value that fits.
    """
    available = available_memory_bytes() if available is None else available
    V_t, V_s = vocab_size_of(teacher), vocab_size_of(student)
    if available is None or V_t is None or V_s is None:
        return
    cap = cfg.max_tokens or float("inf")
    n = [min(cap, len(m.tokenizer(text, add_special_tokens=False)["input_ids"])) for m in (teacher, student)]
    needed = memory_needed(int(n[0]), int(n[1]), V_t, V_s, cfg.chunk_rows)
    if needed > 0.8 * available:
        per_token = 4 * (V_t + V_s)
        fits = max(1, int((0.8 * available - memory_needed(0, 0, V_t, V_s, cfg.chunk_rows)) / per_token))
        raise ValueError(
            f"comparing this text needs about {needed / 2**30:.1f} GiB ({n[0]:,} teacher and {n[1]:,} student "
            f"tokens, V_t = {V_t:,}, V_s = {V_s:,}) and {available / 2**30:.1f} GiB is available: lower max_tokens "
            f"(--max-tokens) to about {fits:,}"
        )


def compare_text(
    teacher: Any,
    student: Any,
    text: str,
    *,
    prompt: str = "",
    config: ComparisonConfig | None = None,
    **settings: Any,
) -> ComparisonTable:
    """Teacher vs student on one text, position by position: the whole comparison table.

    Both models read ``prompt + text`` (each tokenizes the prompt and the text on its own) in
    one forward pass (:func:`~uld_explorer.compare.next_token_distributions`); the rows are the
    TEXT's tokens only, aligned (positional | byte-offset, merged observed | bayesian), then one
    row for the token after the text. For every row: KL on the shared-string sub-vocabulary
    (with the covered masses), ULD, exact value-space OT (= ULD), the hybrid ULD, ULD/2 and exact
    token-space OT on the top-k tokens with the string-identity and edit-distance costs (see
    :mod:`uld_explorer.compare.pipeline` for which vector each is computed on). Teacher first,
    student second.

    Parameters
    ----------
    teacher, student : LoadedModel, object with ``.tokenizer`` and ``.model``, or a zoo name
        (loaded with :func:`uld_explorer.zoo.load`) / model folder / Hugging Face id.
    text : str
        Non-empty, not whitespace-only; truncated to the model context with a warning.
    prompt : str
        Read before the text and not scored, as a prompt is in distillation (the answer is
        scored given its prompt). With a prompt the text's FIRST token is scored too (predicted
        from the prompt's end); without one only a side that adds BOS can score it.
    config : ComparisonConfig, optional
        The settings (alignment, merge, temperatures, top-k values, costs, hybrid, max_tokens).
    **settings
        Any field of :class:`~uld_explorer.compare.ComparisonConfig`, overriding ``config``:
        ``compare_text(t, s, text, alignment="byte-offset", merge="bayesian")``.

    Returns
    -------
    ComparisonTable

    Raises
    ------
    ValueError
        Empty / whitespace-only text, text or prompt that is not valid UTF-8, a bad setting (the
        message names it), a prompt filling the model's context; all before any model loads.
    uld_explorer.zoo.ZooError
        A model name that cannot be loaded.

    Examples
    --------
    >>> table = compare_text("Qwen2.5-Coder-0.5B-Instruct", "SmolLM2-135M-Instruct",
    ...                      "The capital of France is")  # doctest: +SKIP
    >>> table.next_row.teacher_top1, table.next_row.student_top1  # doctest: +SKIP
    (' Paris', ' Paris')
    """
    check_text(text, "text")  # a str, valid UTF-8, not whitespace-only: before any model loads
    check_text(prompt, "prompt", allow_empty=True)
    cfg = _config(config, settings)
    teacher = as_model(teacher, "teacher")
    student = as_model(student, "student")
    check_memory(teacher, student, text, cfg, prompt=prompt)
    t0 = time.perf_counter()
    t_tok, t_dist = next_token_distributions(teacher, text, cfg.teacher_temperature, cfg.max_tokens, prompt=prompt)
    t1 = time.perf_counter()
    s_tok, s_dist = next_token_distributions(student, text, cfg.student_temperature, cfg.max_tokens, prompt=prompt)
    t2 = time.perf_counter()
    table = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, config=cfg, text=text)
    table.timings.update(forward_teacher=t1 - t0, forward_student=t2 - t1)
    return table
