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
from typing import Any, Sequence

import numpy as np
import torch

from ..distributions import check_distribution
from ..divergences import hybrid_uld, kl_divergence, restrict_to_shared_vocab, uld_distance
from ..ot import token_space_ot_top_k, value_space_w1
from ..text import (
    ALIGNMENTS,
    AlignedPair,
    StringMatch,
    Tokenized,
    base_token,
    group_distributions,
    match_strings,
    vocab_bytes,
)
from ..text.spelling import readable
from .config import ComparisonConfig
from .forward import as_model, model_name, next_token_distributions
from .table import NEXT_TOKEN_LABEL, ComparisonTable, PositionRow

__all__ = ["compare_distributions", "compare_text", "shared_strings_of"]


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
    dist: np.ndarray, tok: Tokenized, pairs: Sequence[AlignedPair], side: str, merge: str, with_next: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Merged vectors (R, V), their masses (R,), base distributions (R, V) and base token indices
    of one side; the next-token row (``dist[T]``) last when ``with_next``."""
    groups = [g.teacher_tokens if side == "teacher" else g.student_tokens for g in pairs]
    base = [base_token(tokens, merge) for tokens in groups]
    rows = base + ([len(tok)] if with_next else [])
    B = _take_rows(dist, rows)
    if all(len(tokens) == 1 for tokens in groups):
        return B, np.ones(len(rows)), B, base
    merged, mass = group_distributions(dist, tok, pairs, side, merge)
    if with_next:
        merged = np.concatenate([merged, dist[len(tok)][None]])
        mass = np.append(mass, 1.0)
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


def compare_distributions(
    teacher: Any,
    student: Any,
    teacher_tok: Tokenized,
    teacher_dist: np.ndarray,
    student_tok: Tokenized,
    student_dist: np.ndarray,
    config: ComparisonConfig | None = None,
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
    table_notes = []
    if not with_next:
        table_notes.append(
            f"no next-token row: the two sides were cut at different points of the text (teacher "
            f"{len(teacher_tok.text_bytes)} bytes, student {len(student_tok.text_bytes)} bytes)"
        )
    for nm, tok in (("teacher", teacher_tok), ("student", student_tok)):
        if tok.first_predicted:
            table_notes.append(
                f"the {nm} reads nothing before the text (no BOS, no prompt), so nothing predicts the "
                f"text's first token: it has no row; give a prompt to score it"
            )
    P, mass_t, Bt, base_t = _side_rows(teacher_dist, teacher_tok, pairs, "teacher", cfg.merge, with_next)
    Q, mass_s, Bs, base_s = _side_rows(student_dist, student_tok, pairs, "student", cfg.merge, with_next)
    R = P.shape[0]
    rows: list[PositionRow] = []
    hybrid_weights = cfg.hybrid.weights(shared.match.teacher_matched.size, V_t)
    if R:
        merged = P is not Bt or Q is not Bs
        # validate every row ONCE; the divergences below take the checked rows as they are
        check_distribution(P, "teacher rows", subprobability=merged)
        check_distribution(Q, "student rows", subprobability=merged)
        if merged:
            check_distribution(Bt, "teacher base rows")
            check_distribution(Bs, "student base rows")
        uld = np.asarray(uld_distance(P, Q, validate=False), dtype=np.float64)  # (R,)
        hyb = hybrid_uld(P, Q, match=shared.match, config=cfg.hybrid, validate=False)
        sv = restrict_to_shared_vocab(Bt, Bs, match=shared.match, on_empty="nan", validate=False)
        kl = np.asarray(kl_divergence(sv.p, sv.q, validate=False), dtype=np.float64)  # (R,), NaN if no mass
        cov_t, cov_s = np.minimum(sv.teacher_mass, 1.0), np.minimum(sv.student_mass, 1.0)
        ks = {"string": cfg.top_k, "edit": cfg.edit_top_k}

        # the 0/1 cost compares exact keys (bytes); the edit distance compares readable strings
        tokens = {"string": (shared.teacher_keys, shared.student_keys),
                  "edit": (shared.teacher_strings, shared.student_strings)}

        def row_job(r: int):
            # NumPy's sorts and POT's simplex release the GIL: rows run in threads
            value = value_space_w1(P[r], Q[r], validate=False)
            ots = {
                cost: token_space_ot_top_k(Bt[r], Bs[r], *tokens[cost], k=ks[cost], cost=cost, validate=False)
                for cost in cfg.costs
            }
            return value, int(np.argmax(Bt[r])), int(np.argmax(Bs[r])), ots

        threads = max(1, torch.get_num_threads())
        if threads == 1 or R == 1:
            results = [row_job(r) for r in range(R)]
        else:
            with ThreadPoolExecutor(min(threads, R)) as pool:
                results = list(pool.map(row_job, range(R)))

        n_bytes = len(teacher_tok.text_bytes)
        for r in range(R):
            value, top_t, top_s, ots = results[r]
            is_next = r == len(pairs)
            g = None if is_next else pairs[r]
            jt, js = ((), ()) if is_next else (g.teacher_tokens, g.student_tokens)
            notes = []
            if is_next:
                notes.append("both models' distribution after the whole input: the prediction of what "
                             "follows the text (no actual token)")
            if len(jt) > 1 or len(js) > 1:
                where = "first" if cfg.merge == "observed" else "last"
                notes.append(
                    f"merged group ({cfg.merge}): uld, value_ot and hybrid compare the chain-rule vectors "
                    f"(mass {mass_t[r]:.3g} / {mass_s[r]:.3g}); kl_shared, the top-1s and token OT the "
                    f"group's {where} token's distributions"
                )
            if not np.isfinite(kl[r]):
                if sv.teacher_mass[r] <= 0 or sv.student_mass[r] <= 0:
                    who = "teacher" if sv.teacher_mass[r] <= 0 else "student"
                    notes.append(f"kl_shared undefined: the {who} puts no mass on the "
                                 f"{shared.match.S:,} shared strings here")
                elif kl[r] == np.inf:
                    notes.append("kl_shared infinite: the student gives 0 to a shared string the teacher does not")
            string_ot = ots.get("string")
            if string_ot is not None and mass_t[r] == 1.0 and mass_s[r] == 1.0 and string_ot.value < uld[r] / 2 - 1e-9:
                # a repeated (non-empty: b'' marks ids without text) key pools its ids' mass
                names_t = [x for x in (shared.teacher_keys[i] for i in string_ot.teacher_index) if x]
                names_s = [x for x in (shared.student_keys[j] for j in string_ot.student_index) if x]
                duplicates = len(set(names_t)) < len(names_t) or len(set(names_s)) < len(names_s)
                notes.append(_ot_note(uld[r] / 2, string_ot.value, string_ot.teacher_truncated_mass,
                                      string_ot.student_truncated_mass, duplicates, cfg.top_k))

            def ot_field(cost: str, attr: str):
                res = ots.get(cost)
                return None if res is None else float(getattr(res, attr))

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
                    teacher_prob=None if is_next else float(P[r, teacher_tok.ids[base_t[r]]]),
                    student_prob=None if is_next else float(Q[r, student_tok.ids[base_s[r]]]),
                    teacher_mass=float(mass_t[r]),
                    student_mass=float(mass_s[r]),
                    teacher_top1=str(shared.teacher_strings[top_t]),
                    teacher_top1_prob=float(Bt[r, top_t]),
                    student_top1=str(shared.student_strings[top_s]),
                    student_top1_prob=float(Bs[r, top_s]),
                    kl_shared=float(kl[r]),
                    kl_teacher_coverage=float(cov_t[r]),
                    kl_student_coverage=float(cov_s[r]),
                    uld=float(uld[r]),
                    value_ot=value,
                    hybrid=float(hyb.value[r]),
                    hybrid_matched=float(hyb.matched[r]),
                    hybrid_unmatched=float(hyb.unmatched[r]),
                    uld_half=float(uld[r]) / 2,
                    token_ot_string=ot_field("string", "value"),
                    token_ot_edit=ot_field("edit", "value"),
                    string_teacher_truncated=ot_field("string", "teacher_truncated_mass"),
                    string_student_truncated=ot_field("string", "student_truncated_mass"),
                    edit_teacher_truncated=ot_field("edit", "teacher_truncated_mass"),
                    edit_student_truncated=ot_field("edit", "student_truncated_mass"),
                    notes=tuple(notes),
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
        hybrid_weights=hybrid_weights,
        teacher=teacher_tok,
        student=student_tok,
        notes=tuple(table_notes),
        timings={"vocab": t_vocab, "divergences": time.perf_counter() - t0},
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
        Empty / whitespace-only text, a bad setting (the message names it), a prompt filling
        the model's context.
    uld_explorer.zoo.ZooError
        A model name that cannot be loaded.

    Examples
    --------
    >>> table = compare_text("Qwen2.5-Coder-0.5B-Instruct", "SmolLM2-135M-Instruct",
    ...                      "The capital of France is")  # doctest: +SKIP
    >>> table.next_row.teacher_top1, table.next_row.student_top1  # doctest: +SKIP
    (' Paris', ' Paris')
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text is empty or whitespace-only: there is nothing to compare")
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string (got {type(prompt).__name__})")
    cfg = _config(config, settings)
    teacher = as_model(teacher, "teacher")
    student = as_model(student, "student")
    t0 = time.perf_counter()
    t_tok, t_dist = next_token_distributions(teacher, text, cfg.teacher_temperature, cfg.max_tokens, prompt=prompt)
    t1 = time.perf_counter()
    s_tok, s_dist = next_token_distributions(student, text, cfg.student_temperature, cfg.max_tokens, prompt=prompt)
    t2 = time.perf_counter()
    table = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, config=cfg)
    table.timings.update(forward_teacher=t1 - t0, forward_student=t2 - t1)
    return table
