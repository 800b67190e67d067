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

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .. import measures as registry
from ..checks import check_text
from ..distributions import check_distribution
from ..text import ALIGNMENTS, SharedStrings, Tokenized, base_token, merge_group, shared_strings_of
from .config import ComparisonConfig
from .cost import check_memory
from .forward import as_model, model_name, next_token_distributions
from .table import NEXT_TOKEN_LABEL, ComparisonTable, PositionRow

__all__ = ["PositionVectors", "RowVectors", "compare_distributions", "compare_text", "position_vectors", "row_vectors",
           "shared_strings_of"]


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


@dataclass(frozen=True)
class RowVectors:
    """The vectors some table rows compare (see the module docstring), both sides.

    Attributes
    ----------
    p, q : ndarray, shapes (R, V_t), (R, V_s)
        The merged vectors (the base rows themselves, the same arrays, without a multi-token group).
    p_base, q_base : ndarray, shapes (R, V_t), (R, V_s)
        The base distributions: each row's group's first (``merge="observed"``) or last
        (``"bayesian"``) token's distribution.
    teacher_mass, student_mass : ndarray, shape (R,)
        The merged vectors' masses (1 for a single token).
    teacher_base, student_base : list of int
        Each row's base token index (``len(tok)`` for the next-token row).
    """

    p: np.ndarray
    q: np.ndarray
    p_base: np.ndarray
    q_base: np.ndarray
    teacher_mass: np.ndarray
    student_mass: np.ndarray
    teacher_base: list[int]
    student_base: list[int]

    @property
    def merged(self) -> bool:
        """Some row is a merged group (its vectors differ from the base distributions)."""
        return self.p is not self.p_base or self.q is not self.q_base


def row_vectors(teacher_dist: np.ndarray, teacher_tok: Tokenized, teacher_groups: Sequence[tuple[int, ...] | None],
                student_dist: np.ndarray, student_tok: Tokenized, student_groups: Sequence[tuple[int, ...] | None],
                merge: str) -> RowVectors:
    """The :class:`RowVectors` of rows given by their token groups on each side (``None``: the
    next-token row, ``dist[T]``), multi-token groups merged by ``merge``
    (:func:`~uld_explorer.text.merge_group`). The app reads a selected position's vectors here.

    >>> from uld_explorer.text import Tokenized
    >>> tok = Tokenized("ab", (0, 1), ("a", "b"), ((0, 1), (1, 2)), None)
    >>> d = np.array([[0.5, 0.5], [0.2, 0.8], [1.0, 0.0]])
    >>> v = row_vectors(d, tok, [(0, 1), None], d, tok, [(0,), None], "bayesian")
    >>> v.p[0].tolist(), v.teacher_mass.tolist(), v.q[0].tolist()  # dist[1] * dist[0][id of token 0]
    ([0.1, 0.4], [0.5, 1.0], [0.5, 0.5])
    """
    P, mass_t, Bt, base_t = _side_rows(teacher_dist, teacher_tok, teacher_groups, merge)
    Q, mass_s, Bs, base_s = _side_rows(student_dist, student_tok, student_groups, merge)
    return RowVectors(P, Q, Bt, Bs, mass_t, mass_s, base_t, base_s)


@dataclass(frozen=True)
class PositionVectors:
    """The vectors ONE row of a table compares, float64 (see :class:`RowVectors`): ``p``, ``q``
    the merged vectors (sub-probability for a merged group), ``p_base``, ``q_base`` the base
    distributions (renormalized: float32 rounding removed), ``merged`` whether they differ."""

    p: np.ndarray
    q: np.ndarray
    p_base: np.ndarray
    q_base: np.ndarray
    merged: bool


def position_vectors(table: ComparisonTable, index: int, teacher_dist: np.ndarray,
                     student_dist: np.ndarray) -> PositionVectors:
    """The vectors row ``index`` of ``table`` compares, from the distributions it was built on
    (:func:`~uld_explorer.compare.next_token_distributions`' output): what the app draws for a
    selected position (its sorted curves, its transport plan)."""
    r = table[index]
    groups_t = [None] if r.kind == "next" else [r.teacher_tokens]
    groups_s = [None] if r.kind == "next" else [r.student_tokens]
    v = row_vectors(teacher_dist, table.teacher, groups_t, student_dist, table.student, groups_s, table.merge)
    p_base, q_base = v.p_base[0].astype(np.float64), v.q_base[0].astype(np.float64)
    return PositionVectors(v.p[0].astype(np.float64), v.q[0].astype(np.float64), p_base / p_base.sum(),
                           q_base / q_base.sum(), bool(v.merged))


def _parts(n: int, threads: int) -> list[slice]:
    """``n`` rows cut into at most ``threads`` consecutive slices, computed in parallel (NumPy's
    sorts and POT's simplex release the GIL)."""
    bounds = np.linspace(0, n, max(1, min(threads, n)) + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds, bounds[1:]) if b > a]


def _chunk_values(cfg: ComparisonConfig, shared: SharedStrings, vec: RowVectors, measures: list,
                  pool: ThreadPoolExecutor | None, threads: int, reuse: dict[str, list[float]] | None = None
                  ) -> tuple[list[dict[str, float | None]], list[list[str]]]:
    """Every measure of one chunk of rows, the rows validated ONCE first.

    Returns, per row, ``{key: value}`` for ``measures`` (None: not computed, e.g. a cost not
    asked for) and the measures' caveats. ``reuse``: values taken over from a table of the same
    distributions (:func:`_reusable`), by key, for this chunk's rows; those measures are not computed.
    """
    check_distribution(vec.p, "teacher rows", subprobability=vec.merged)
    check_distribution(vec.q, "student rows", subprobability=vec.merged)
    if vec.merged:
        check_distribution(vec.p_base, "teacher base rows")
        check_distribution(vec.q_base, "student base rows")
    reuse = reuse or {}
    todo = [m for m in measures if m.key not in reuse]

    def part(h: slice) -> tuple[Any, dict[str, np.ndarray]]:
        rows = registry.PairRows(vec.p[h], vec.q[h], shared, cfg, p_base=vec.p_base[h], q_base=vec.q_base[h],
                                 teacher_mass=vec.teacher_mass[h], student_mass=vec.student_mass[h])
        return rows, registry.compute_measures(rows, todo)

    parts = _parts(vec.p.shape[0], threads if pool is not None else 1)
    done = list(pool.map(part, parts)) if pool is not None and len(parts) > 1 else [part(h) for h in parts]
    values: list[dict[str, float | None]] = []
    caveats: list[list[str]] = []
    for h, (rows, computed) in zip(parts, done):
        for i in range(rows.R):
            row: dict[str, float | None] = {}
            for m in measures:
                if m.key in reuse:
                    row[m.key] = reuse[m.key][h.start + i]
                elif m.key in computed:
                    row[m.key] = float(computed[m.key][i])
                else:
                    row[m.key] = None
            values.append(row)
            caveats.append([c for m in measures if m.caveat is not None and row[m.key] is not None
                            for c in (m.caveat(rows, i, row),) if c])
    return values, caveats


def _reusable(reuse: Any, cfg: ComparisonConfig, teacher: Any, student: Any, teacher_tok: Tokenized,
              student_tok: Tokenized, V_t: int, V_s: int, n_rows: int, measures: list) -> dict[str, list[float]]:
    """The values of ``reuse`` (a table) this table can take over, by measure key: ``reuse`` must
    compare the same distributions the same way (models, tokens, vocabulary sizes, alignment,
    merge, temperatures), and a measure is taken over when ``reuse`` computed it and none of
    the settings it reads (:attr:`~uld_explorer.measures.Measure.settings`) changed."""
    if not isinstance(reuse, ComparisonTable) or len(reuse.rows) != n_rows or not n_rows:
        return {}
    old = reuse.config
    same = (all(getattr(old, f) == getattr(cfg, f)
                for f in ("alignment", "merge", "teacher_temperature", "student_temperature", "max_tokens"))
            and (reuse.teacher_name, reuse.student_name) == (model_name(teacher), model_name(student))
            and (reuse.teacher, reuse.student) == (teacher_tok, student_tok) and (reuse.V_t, reuse.V_s) == (V_t, V_s))
    if not same:
        return {}
    out = {}
    for m in measures:
        if (m.is_enabled(cfg) and reuse.rows[0].values.get(m.key) is not None
                and all(getattr(old, f) == getattr(cfg, f) for f in m.settings)):
            out[m.key] = [r.values[m.key] for r in reuse.rows]
    return out


def _row_notes(cfg: ComparisonConfig, vec: RowVectors, i: int, multi: bool, is_next: bool) -> list[str]:
    """What the pipeline itself knows about a row: the next-token row, a merged group's vectors."""
    notes = []
    if is_next:
        notes.append("both models' distribution after the whole input: the prediction of what follows "
                     "the text (no actual token)")
    if multi:
        where = "first" if cfg.merge == "observed" else "last"
        notes.append(
            f"merged group ({cfg.merge}): uld, value_ot and hybrid compare the chain-rule vectors "
            f"(mass {vec.teacher_mass[i]:.3g} / {vec.student_mass[i]:.3g}); kl_shared, the top-1s and token OT the "
            f"group's {where} token's distributions"
        )
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
    progress: Callable[[int, int], None] | None = None,
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
        A table of the SAME distributions (models, tokens, alignment, merge, temperatures): its
        values of every measure whose own settings did not change are taken over (a top-k
        change recomputes only the token-space OT: ~0.3 s instead of ~1.5 s for 122 rows). A
        table of anything else is ignored.
    progress : callable(done, total), optional
        Called after each chunk of ``chunk_rows`` rows with the rows done and their total.
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
    measures = [registry.measure(k) for k in cfg.measures]
    pairs = ALIGNMENTS[cfg.alignment].align(teacher_tok, student_tok)
    with_next = teacher_tok.text == student_tok.text  # both read the same input: the next row aligns
    groups_t = [g.teacher_tokens for g in pairs] + ([None] if with_next else [])
    groups_s = [g.student_tokens for g in pairs] + ([None] if with_next else [])
    R = len(groups_t)
    kept = _reusable(reuse, cfg, teacher, student, teacher_tok, student_tok, V_t, V_s, R, measures)
    threads = max(1, torch.get_num_threads())
    pool = ThreadPoolExecutor(threads) if threads > 1 and R > 1 else None
    n_bytes = len(teacher_tok.text_bytes)
    rows: list[PositionRow] = []
    if progress is not None:
        progress(0, R)
    try:
        for c0 in range(0, R, cfg.chunk_rows):  # bounded memory: chunk_rows full-vocabulary rows at a time
            c = slice(c0, min(c0 + cfg.chunk_rows, R))
            vec = row_vectors(teacher_dist, teacher_tok, groups_t[c], student_dist, student_tok, groups_s[c], cfg.merge)
            values, caveats = _chunk_values(cfg, shared, vec, measures, pool, threads,
                                            {k: v[c] for k, v in kept.items()})
            for i, (row_values, row_caveats) in enumerate(zip(values, caveats)):
                r = c0 + i
                is_next = r == len(pairs)
                g = None if is_next else pairs[r]
                jt, js = ((), ()) if is_next else (g.teacher_tokens, g.student_tokens)
                top_t, top_s = int(np.argmax(vec.p_base[i])), int(np.argmax(vec.q_base[i]))
                rows.append(PositionRow(
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
                    # own token(s): the merged vector at the base token's actual id = the group's probability
                    teacher_prob=None if is_next else float(vec.p[i, teacher_tok.ids[vec.teacher_base[i]]]),
                    student_prob=None if is_next else float(vec.q[i, student_tok.ids[vec.student_base[i]]]),
                    teacher_mass=float(vec.teacher_mass[i]),
                    student_mass=float(vec.student_mass[i]),
                    teacher_top1=str(shared.teacher_strings[top_t]),
                    teacher_top1_prob=float(vec.p_base[i, top_t]),
                    student_top1=str(shared.student_strings[top_s]),
                    student_top1_prob=float(vec.q_base[i, top_s]),
                    values=row_values,
                    notes=tuple(_row_notes(cfg, vec, i, len(jt) > 1 or len(js) > 1, is_next) + row_caveats),
                ))
            if progress is not None:
                progress(c.stop, R)
    finally:
        if pool is not None:
            pool.shutdown()
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


@contextlib.contextmanager
def _bar(on: bool, what: str, unit: str):
    """A progress callback ``(done, total)`` drawing a tqdm bar on stderr from its first call on
    (None when ``on`` is off): bars opened in one ``with`` appear one after the other."""
    if not on:
        yield None
        return
    from tqdm.auto import tqdm

    bars = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=what, unit=unit, total=total))
        bars[0].update(done - bars[0].n)
        if done >= total:
            bars[0].close()  # done: the next bar takes its line

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()


def compare_text(
    teacher: Any,
    student: Any,
    text: str,
    *,
    prompt: str = "",
    config: ComparisonConfig | None = None,
    progress: bool = False,
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
    progress : bool
        Progress bars (stderr) on both forward passes and on the table's rows, for long work
        (:func:`~uld_explorer.compare.estimate_cost` says when).
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
    with _bar(progress, f"teacher {model_name(teacher)}", "token") as bar_t, \
            _bar(progress, f"student {model_name(student)}", "token") as bar_s, \
            _bar(progress, "table rows", "row") as bar_r:
        t0 = time.perf_counter()
        t_tok, t_dist = next_token_distributions(teacher, text, cfg.teacher_temperature, cfg.max_tokens,
                                                 prompt=prompt, progress=bar_t)
        t1 = time.perf_counter()
        s_tok, s_dist = next_token_distributions(student, text, cfg.student_temperature, cfg.max_tokens,
                                                 prompt=prompt, progress=bar_s)
        t2 = time.perf_counter()
        table = compare_distributions(teacher, student, t_tok, t_dist, s_tok, s_dist, config=cfg, text=text,
                                      progress=bar_r)
    table.timings.update(forward_teacher=t1 - t0, forward_student=t2 - t1)
    return table
