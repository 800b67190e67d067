"""Text -> teacher and student next-token distributions -> an aligned per-position table.

The pipeline of ULD Explorer for real models, teacher first, student second::

    text ──► tokenize with byte offsets (each tokenizer)      alignment.tokenize_with_offsets
         ──► ONE forward pass per model, softmax(z / T)         next_token_distributions
         ──► align (positional | byte-offset + chain rule)     alignment.*_alignment, merge_group
         ──► per aligned pair: KL on shared strings, ULD, exact value-space OT (= ULD),
             exact token-space OT on top-k (string and edit costs)
         ──► ComparisonTable (rows of PositionRow; .to_dataframe(), .to_records())

:func:`compare_text` is the single source for the app, the CLI (``uld-explorer compare``) and
the notebooks.

Which position predicts which token
-----------------------------------
Distributions are indexed by the token they PREDICT (the convention of
:mod:`uld_explorer.alignment`): ``dist[j]`` is the next-token distribution whose target is
token ``j``, computed from the logits at the position of token ``j - 1`` (or of BOS when
``j == 0`` and the tokenizer adds one). Without BOS nothing predicts token 0, so row 0 of
``dist`` is filled with NaN: a mistaken read shows up instead of passing silently, and
:func:`compare_distributions` never reads it.

Per aligned pair (one row)
--------------------------
- ``kl_shared`` -- KL(p || q) in nats on the sub-vocabulary of token strings both tokenizers
  share (normalized strings, :func:`~uld_explorer.alignment.vocab_strings`; several ids with the
  same string pool their mass), both sides renormalized on it; ``kl_teacher_coverage`` /
  ``kl_student_coverage`` is the mass each side had there:
  :func:`~uld_explorer.divergences.restrict_to_shared_vocab` then
  :func:`~uld_explorer.divergences.kl_divergence`, batched over all rows; the vocab strings of a
  model pair are built once and cached.
- ``uld`` -- :func:`~uld_explorer.divergences.uld_distance` (``subprobability=True`` for the
  chain-rule merged vectors of byte-offset groups: the merged vectors are NOT renormalized).
- ``value_ot`` -- exact value-space OT, :math:`n \\cdot W_1` between the uniform measures on the
  :math:`n = \\max(V_t, V_s)` zero-padded probability values,
  :func:`~uld_explorer.ot.value_space_w1` (POT's exact 1-D solver). Equals ``uld`` exactly, to
  float rounding; a dense solver (:func:`~uld_explorer.ot.value_space_ot`) cannot handle
  n = 151,936.
- ``token_ot_string`` / ``token_ot_edit`` -- exact token-space OT between the top-k teacher
  and student tokens plus one "rest" bucket per side, with the 0/1 string-identity cost
  (closed form, ``top_k`` tokens) and the normalized edit distance (POT network simplex,
  ``edit_top_k`` tokens: ~4 ms per position at k = 100, ~60-300 ms at k = 500), by
  :func:`~uld_explorer.ot.token_space_ot_top_k`; the truncated masses are reported. OT needs
  equal masses, so merged sub-probability vectors are renormalized for token-space OT (and for
  KL and the top-1): those describe the distribution of the group's FIRST token.

References
----------
.. [1] Boizard et al. 2024, TMLR, arXiv:2402.12030 (ULD, positional alignment).
.. [2] Hugging Face TRL, ``GOLDTrainer`` (byte-offset alignment, chain-rule merging).
"""

from __future__ import annotations

import math
import os
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence

import numpy as np
import torch

from .text import (
    AlignedPair,
    Tokenized,
    VocabOverlap,
    byte_offset_alignment,
    group_distributions,
    positional_alignment,
    tokenize_with_offsets,
    vocab_overlap,
    vocab_strings,
)
from .distributions import softmax
from .divergences import kl_divergence, restrict_to_shared_vocab, uld_distance
from .ot import token_space_ot_top_k, value_space_w1

__all__ = [
    "ALIGNMENTS",
    "COSTS",
    "ComparisonTable",
    "PositionRow",
    "compare_distributions",
    "compare_text",
    "next_token_distributions",
]

#: Alignment strategies, see :mod:`uld_explorer.alignment`.
ALIGNMENTS = ("positional", "byte-offset")
#: Token-space OT ground costs computed per row.
COSTS = ("string", "edit")
#: Default top-k of the edit-distance token-space OT (POT's simplex: ~4 ms per position at
#: k = 100 on 2 cores; k = 500 costs ~60-300 ms per position, i.e. 8-40 s for 128 positions).
DEFAULT_EDIT_TOP_K = 100


# --------------------------------------------------------------------------------------------
# models and distributions
# --------------------------------------------------------------------------------------------


def _as_model(model: Any, role: str) -> Any:
    """A zoo name / folder / hub id is loaded with :func:`uld_explorer.zoo.load`; anything with
    ``.tokenizer`` and ``.model`` (e.g. :class:`~uld_explorer.zoo.LoadedModel`) is used as is."""
    if isinstance(model, (str, os.PathLike)):
        from . import zoo

        return zoo.load(model)
    if not (hasattr(model, "tokenizer") and hasattr(model, "model")):
        raise TypeError(
            f"{role} must be a zoo model name, a model folder / Hugging Face id, or an object with "
            f".tokenizer and .model (e.g. uld_explorer.load_model(...)); got {type(model).__name__}"
        )
    return model


def _model_name(model: Any) -> str:
    name = getattr(model, "name", None)
    return str(name) if name else type(getattr(model, "model", model)).__name__


def _context_length(model: Any) -> int | None:
    cfg = getattr(model, "config", None)
    n = getattr(cfg, "max_position_embeddings", None)
    return int(n) if isinstance(n, (int, np.integer)) and n > 0 else None


def _check_temperature(temperature: Any, name: str) -> float:
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number (got {temperature!r})") from None
    if not math.isfinite(t) or t <= 0:
        raise ValueError(
            f"{name} must be a finite number > 0 (got {temperature!r}): softmax(logits / T) is "
            f"undefined at T = 0; use a small T (e.g. 0.1) for a sharper distribution"
        )
    return t


def next_token_distributions(
    loaded: Any, text: str, temperature: float = 1.0, max_tokens: int | None = None
) -> tuple[Tokenized, np.ndarray]:
    """Tokenize ``text`` with byte offsets and return the model's next-token distributions.

    One forward pass under ``torch.inference_mode()`` on ``(BOS,) + ids`` (BOS only when the
    tokenizer adds one), then :math:`\\mathrm{softmax}(z / T)` in float32 (:func:`uld_explorer.distributions.softmax`).

    Row ``j`` of the result predicts token ``j`` (see the module docstring): it comes from the
    logits at input position ``j`` with BOS, ``j - 1`` without. Rows
    ``j < tok.first_predicted`` (row 0 without BOS) are NaN and must not be read.

    Parameters
    ----------
    loaded : LoadedModel, object with ``.tokenizer`` and ``.model``, or a zoo name
    text : str
        Non-empty, not whitespace-only.
    temperature : float
        ``T > 0``.
    max_tokens : int, optional
        Keep at most this many text tokens (a ``UserWarning`` says how many were cut). Default
        and upper bound: the model's context ``config.max_position_embeddings`` (minus one for
        BOS).

    Returns
    -------
    tok : Tokenized
        The (possibly truncated) tokenization, ``T = len(tok)``.
    dist : ndarray, float32, shape (T, V)
        ``V`` = the logits' last axis (may exceed ``len(tokenizer)``).

    Raises
    ------
    ValueError
        Empty or whitespace-only text, ``temperature <= 0``, ``max_tokens < 1``.
    """
    T_ = _check_temperature(temperature, "temperature")
    loaded = _as_model(loaded, "loaded")
    tokenizer, model = loaded.tokenizer, loaded.model
    if max_tokens is not None and (not isinstance(max_tokens, (int, np.integer)) or max_tokens < 1):
        raise ValueError(f"max_tokens must be a positive integer (got {max_tokens!r})")
    ctx = _context_length(model)
    limit = max_tokens if ctx is None else min(ctx, max_tokens or ctx)
    tok = tokenize_with_offsets(tokenizer, text, limit)
    if ctx is not None and tok.bos_id is not None and len(tok) + 1 > ctx:
        tok = tokenize_with_offsets(tokenizer, text, ctx - 1)  # room for BOS
    input_ids = torch.tensor([tok.model_input_ids], dtype=torch.long)
    try:
        device = next(model.parameters()).device
    except (StopIteration, AttributeError):
        device = torch.device("cpu")
    with torch.inference_mode():
        logits = model(input_ids=input_ids.to(device)).logits[0]  # (L, V), L = T + [BOS]
        probs = softmax(logits.float(), T_).cpu()  # (L, V)
    T, V = len(tok), probs.shape[-1]
    dist = np.empty((T, V), dtype=np.float32)
    if tok.bos_id is not None:
        dist[:] = probs[:T].numpy()  # logits at input k (BOS = 0) predict token k
    else:
        dist[0] = np.nan  # nothing predicts the first token of a text without BOS
        dist[1:] = probs[: T - 1].numpy()  # logits at token k-1 predict token k
    return tok, dist


# --------------------------------------------------------------------------------------------
# vocabulary strings and the shared-string mapping, built once per tokenizer / model pair
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SharedMap:
    """Normalized vocab strings of both sides (object arrays, one per id) and their overlap."""

    teacher_strings: np.ndarray  # object (V_t,)
    student_strings: np.ndarray  # object (V_s,)
    overlap: VocabOverlap


_STRINGS: "weakref.WeakKeyDictionary[Any, dict[int, np.ndarray]]" = weakref.WeakKeyDictionary()
_SHARED: "weakref.WeakKeyDictionary[Any, dict[tuple, tuple[Any, _SharedMap]]]" = weakref.WeakKeyDictionary()


def _vocab_strings_cached(tokenizer: Any, V: int) -> np.ndarray:
    try:
        per_tok = _STRINGS.setdefault(tokenizer, {})
    except TypeError:  # not weak-referenceable: no cache
        per_tok = {}
    if V not in per_tok:
        per_tok[V] = np.array(vocab_strings(tokenizer, V), dtype=object)
    return per_tok[V]


def shared_map(teacher_tokenizer: Any, student_tokenizer: Any, V_t: int, V_s: int) -> _SharedMap:
    """The cached string mapping of a tokenizer pair (vocab strings take seconds for 152k ids)."""
    key = (id(student_tokenizer), int(V_t), int(V_s))
    try:
        per_teacher = _SHARED.setdefault(teacher_tokenizer, {})
    except TypeError:
        per_teacher = {}
    hit = per_teacher.get(key)
    if hit is not None and hit[0]() is student_tokenizer:
        return hit[1]
    ts = _vocab_strings_cached(teacher_tokenizer, V_t)
    ss = _vocab_strings_cached(student_tokenizer, V_s)
    m = _SharedMap(ts, ss, vocab_overlap(ts.tolist(), ss.tolist()))
    try:
        per_teacher[key] = (weakref.ref(student_tokenizer), m)
    except TypeError:
        pass
    return m


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionRow:
    """One aligned teacher/student pair (positional) or group (byte-offset). Teacher first.

    Attributes
    ----------
    index : int
        Row number in the table.
    label : str
        The text this row PREDICTS (the teacher's bytes of ``byte_span``, split UTF-8
        characters shown as ``\\xNN``).
    byte_span : (int, int)
        Half-open span in ``text.encode("utf-8")``.
    same_span : bool
        Both sides predict exactly the same bytes (always True for byte-offset groups).
    teacher_tokens, student_tokens : tuple of int
        Indices ``j`` of the predicted tokens (``dist[j]`` predicts token ``j``).
    teacher_ids, student_ids : tuple of int
        Their vocabulary ids.
    teacher_strings, student_strings : tuple of str
        Their text.
    teacher_prob, student_prob : float
        Probability each model gives to its own actual token(s): for a group, the chain rule
        product :math:`p_{j_0}(x_{j_0}) \\prod_{l \\ge 1} p_{j_l}(x_{j_l})`.
    teacher_mass, student_mass : float
        Total mass of the (merged) vector: the continuation product, 1 for a single token.
    teacher_top1, student_top1 : str
        Most probable next token (normalized vocab string) of the first predicted token's
        distribution, with its probability ``teacher_top1_prob`` / ``student_top1_prob``.
    kl_shared : float
        KL(p || q) in nats on the shared-string sub-vocabulary (NaN if a side has no mass
        there, inf if q is 0 where p is not).
    kl_teacher_coverage, kl_student_coverage : float
        Mass each side puts on the shared strings (of its renormalized vector), in [0, 1].
    uld : float
        ULD closed form (``uld_distance``), on the merged (sub-probability) vectors.
    value_ot : float
        :math:`n \\cdot W_1` exact value-space OT (POT, 1-D); equals ``uld``.
    token_ot_string, token_ot_edit : float or None
        Exact token-space OT on top-k + rest with the string-identity / edit-distance cost
        (None when that cost was not requested).
    string_teacher_truncated, string_student_truncated : float or None
        Mass pooled into the rest buckets for the string cost (``top_k``).
    edit_teacher_truncated, edit_student_truncated : float or None
        The same for the edit cost (``edit_top_k``).
    """

    index: int
    label: str
    byte_span: tuple[int, int]
    same_span: bool
    teacher_tokens: tuple[int, ...]
    student_tokens: tuple[int, ...]
    teacher_ids: tuple[int, ...]
    student_ids: tuple[int, ...]
    teacher_strings: tuple[str, ...]
    student_strings: tuple[str, ...]
    teacher_prob: float
    student_prob: float
    teacher_mass: float
    student_mass: float
    teacher_top1: str
    teacher_top1_prob: float
    student_top1: str
    student_top1_prob: float
    kl_shared: float
    kl_teacher_coverage: float
    kl_student_coverage: float
    uld: float
    value_ot: float
    token_ot_string: float | None
    token_ot_edit: float | None
    string_teacher_truncated: float | None
    string_student_truncated: float | None
    edit_teacher_truncated: float | None
    edit_student_truncated: float | None


def _json_safe(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_json_safe(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


@dataclass(frozen=True)
class ComparisonTable:
    """The per-position comparison of a teacher and a student on one text.

    Iterate over it, index it, or convert it: :meth:`to_dataframe` (pandas),
    :meth:`to_records` (JSON-safe dicts), :meth:`as_dict` (records plus the settings).

    Attributes
    ----------
    rows : tuple of PositionRow
    teacher_name, student_name : str
    alignment : {"positional", "byte-offset"}
    top_k, edit_top_k : int
        Tokens per side for the string-cost / edit-cost token-space OT.
    costs : tuple of str
    teacher_temperature, student_temperature : float
    V_t, V_s : int
        Vocabulary sizes (logits' last axis).
    shared_strings : int
        Distinct normalized token strings the two vocabularies share.
    teacher, student : Tokenized
        Both tokenizations (byte spans, ids, strings).
    timings : dict
        Seconds spent: ``forward_teacher``, ``forward_student`` (compare_text only),
        ``vocab`` (0 when cached), ``divergences``.
    """

    rows: tuple[PositionRow, ...]
    teacher_name: str
    student_name: str
    alignment: str
    top_k: int
    edit_top_k: int
    costs: tuple[str, ...]
    teacher_temperature: float
    student_temperature: float
    V_t: int
    V_s: int
    shared_strings: int
    teacher: Tokenized = field(repr=False)
    student: Tokenized = field(repr=False)
    timings: dict = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i: int) -> PositionRow:
        return self.rows[i]

    @property
    def columns(self) -> list[str]:
        """Column names, in order (the fields of :class:`PositionRow`)."""
        return [f.name for f in fields(PositionRow)]

    def to_dataframe(self):
        """A pandas DataFrame, one row per aligned pair, columns as :class:`PositionRow`."""
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.rows], columns=self.columns)

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-safe dicts: tuples -> lists, non-finite floats (NaN, inf) -> None."""
        return [{k: _json_safe(v) for k, v in asdict(r).items()} for r in self.rows]

    def as_dict(self) -> dict[str, Any]:
        """Settings, tokenizations and records, JSON-safe (what ``uld-explorer compare --json`` prints)."""
        side = lambda t: {  # noqa: E731
            "ids": list(t.ids), "strings": list(t.strings), "byte_spans": [list(s) for s in t.byte_spans],
            "bos_id": t.bos_id,
        }
        return {
            "teacher": self.teacher_name, "student": self.student_name, "alignment": self.alignment,
            "text": self.teacher.text if len(self.teacher.text) >= len(self.student.text) else self.student.text,
            "top_k": self.top_k, "edit_top_k": self.edit_top_k, "costs": list(self.costs),
            "teacher_temperature": self.teacher_temperature, "student_temperature": self.student_temperature,
            "V_t": self.V_t, "V_s": self.V_s, "shared_strings": self.shared_strings,
            "teacher_tokens": side(self.teacher), "student_tokens": side(self.student),
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "rows": self.to_records(),
        }


# --------------------------------------------------------------------------------------------
# divergences over all rows
# --------------------------------------------------------------------------------------------


def _threads() -> int:
    return max(1, torch.get_num_threads())


def _check_top_k(k: Any, name: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be a positive integer (got {k!r})")
    return int(k)


def compare_distributions(
    teacher: Any,
    student: Any,
    teacher_tok: Tokenized,
    teacher_dist: np.ndarray,
    student_tok: Tokenized,
    student_dist: np.ndarray,
    *,
    alignment: str = "positional",
    top_k: int = 500,
    edit_top_k: int | None = DEFAULT_EDIT_TOP_K,
    costs: Sequence[str] = COSTS,
    teacher_temperature: float = 1.0,
    student_temperature: float = 1.0,
) -> ComparisonTable:
    """The per-position table from precomputed distributions (see :func:`compare_text`).

    Use it to switch the alignment or the top-k without running the models again. The
    temperatures are recorded only (``*_dist`` already carry them).

    Parameters
    ----------
    teacher, student : objects with ``.tokenizer`` (and ``.name``)
    teacher_tok, student_tok : Tokenized
    teacher_dist : ndarray, shape (T_t, V_t);  student_dist : ndarray, shape (T_s, V_s)
        From :func:`next_token_distributions` (row j predicts token j).
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)} (got {alignment!r})")
    top_k = _check_top_k(top_k, "top_k")
    edit_top_k = top_k if edit_top_k is None else _check_top_k(edit_top_k, "edit_top_k")
    costs = tuple(costs)
    bad = [c for c in costs if c not in COSTS]
    if bad:
        raise ValueError(f"costs must be a subset of {COSTS} (got {bad})")
    for nm, tok, dist in (("teacher", teacher_tok, teacher_dist), ("student", student_tok, student_dist)):
        if dist.ndim != 2 or dist.shape[0] != len(tok):
            raise ValueError(
                f"{nm}_dist must have shape (T, V) with T = {len(tok)} tokens (got {tuple(dist.shape)})"
            )
    t0 = time.perf_counter()
    V_t, V_s = teacher_dist.shape[1], student_dist.shape[1]
    m = shared_map(teacher.tokenizer, student.tokenizer, V_t, V_s)
    t_vocab = time.perf_counter() - t0

    t0 = time.perf_counter()
    align = positional_alignment if alignment == "positional" else byte_offset_alignment
    pairs: list[AlignedPair] = align(teacher_tok, student_tok)
    for g in pairs:  # never read a row that predicts nothing (NaN)
        if g.teacher_tokens[0] < teacher_tok.first_predicted or g.student_tokens[0] < student_tok.first_predicted:
            raise AssertionError(f"alignment produced an unpredicted token: {g}")  # pragma: no cover
    R = len(pairs)
    P, mass_t = group_distributions(teacher_dist, teacher_tok, pairs, "teacher")  # (R, V_t), (R,)
    Q, mass_s = group_distributions(student_dist, student_tok, pairs, "student")  # (R, V_s), (R,)
    rows: list[PositionRow] = []
    if R:
        merged = any(len(g.teacher_tokens) > 1 or len(g.student_tokens) > 1 for g in pairs)
        uld = np.asarray(uld_distance(P, Q, subprobability=merged), dtype=np.float64)  # (R,)
        # the first token's distribution (renormalized merged vector) for KL, top-1, token OT
        if merged:
            first_t = np.stack([teacher_dist[g.teacher_tokens[0]] for g in pairs])
            first_s = np.stack([student_dist[g.student_tokens[0]] for g in pairs])
        else:  # single tokens: the rows themselves
            first_t, first_s = P, Q
        shared = restrict_to_shared_vocab(first_t, first_s, m.teacher_strings, m.student_strings)
        kl = np.asarray(kl_divergence(shared.p, shared.q), dtype=np.float64)  # (R,)
        cov_t, cov_s = np.minimum(shared.teacher_mass, 1.0), np.minimum(shared.student_mass, 1.0)
        none3 = (None, None, None)

        def token_ot(p: np.ndarray, q: np.ndarray, cost: str, k: int) -> tuple:
            if cost not in costs:
                return none3
            r = token_space_ot_top_k(p, q, m.teacher_strings, m.student_strings, k=k, cost=cost)
            return r.value, r.teacher_truncated_mass, r.student_truncated_mass

        def row_job(r: int):
            # NumPy's sorts and POT's simplex release the GIL: rows run in threads
            value = value_space_w1(P[r], Q[r], subprobability=merged)
            p, q = first_t[r], first_s[r]
            ots = {cost: token_ot(p, q, cost, k) for cost, k in (("string", top_k), ("edit", edit_top_k))}
            return value, int(np.argmax(p)), int(np.argmax(q)), ots

        if _threads() == 1 or R == 1:
            results = [row_job(r) for r in range(R)]
        else:
            with ThreadPoolExecutor(min(_threads(), R)) as pool:
                results = list(pool.map(row_job, range(R)))
        for r, g in enumerate(pairs):
            value, top_t, top_s, ot_vals = results[r]
            jt, js = g.teacher_tokens, g.student_tokens
            rows.append(
                PositionRow(
                    index=r,
                    label=g.label,
                    byte_span=tuple(g.byte_span),
                    same_span=bool(g.same_span),
                    teacher_tokens=tuple(jt),
                    student_tokens=tuple(js),
                    teacher_ids=tuple(teacher_tok.ids[j] for j in jt),
                    student_ids=tuple(student_tok.ids[j] for j in js),
                    teacher_strings=tuple(teacher_tok.strings[j] for j in jt),
                    student_strings=tuple(student_tok.strings[j] for j in js),
                    teacher_prob=float(P[r, teacher_tok.ids[jt[0]]]),
                    student_prob=float(Q[r, student_tok.ids[js[0]]]),
                    teacher_mass=float(mass_t[r]),
                    student_mass=float(mass_s[r]),
                    teacher_top1=str(m.teacher_strings[top_t]),
                    teacher_top1_prob=float(first_t[r, top_t]),
                    student_top1=str(m.student_strings[top_s]),
                    student_top1_prob=float(first_s[r, top_s]),
                    kl_shared=float(kl[r]),
                    kl_teacher_coverage=float(cov_t[r]),
                    kl_student_coverage=float(cov_s[r]),
                    uld=float(uld[r]),
                    value_ot=value,
                    token_ot_string=ot_vals["string"][0],
                    token_ot_edit=ot_vals["edit"][0],
                    string_teacher_truncated=ot_vals["string"][1],
                    string_student_truncated=ot_vals["string"][2],
                    edit_teacher_truncated=ot_vals["edit"][1],
                    edit_student_truncated=ot_vals["edit"][2],
                )
            )
    return ComparisonTable(
        rows=tuple(rows),
        teacher_name=_model_name(teacher),
        student_name=_model_name(student),
        alignment=alignment,
        top_k=top_k,
        edit_top_k=edit_top_k,
        costs=costs,
        teacher_temperature=float(teacher_temperature),
        student_temperature=float(student_temperature),
        V_t=V_t,
        V_s=V_s,
        shared_strings=m.overlap.shared,
        teacher=teacher_tok,
        student=student_tok,
        timings={"vocab": t_vocab, "divergences": time.perf_counter() - t0},
    )


def compare_text(
    teacher: Any,
    student: Any,
    text: str,
    *,
    alignment: str = "positional",
    top_k: int = 500,
    edit_top_k: int | None = DEFAULT_EDIT_TOP_K,
    teacher_temperature: float = 1.0,
    student_temperature: float = 1.0,
    costs: Sequence[str] = COSTS,
    max_tokens: int | None = None,
) -> ComparisonTable:
    """Teacher vs student on one text, position by position: the whole comparison table.

    Runs each model once on ``text`` (:func:`next_token_distributions`), aligns the two
    tokenizations and computes, for every aligned pair, KL on the shared-string sub-vocabulary
    (with the covered masses), ULD, exact value-space OT (= ULD) and exact token-space OT on
    the top-k tokens with the string-identity and edit-distance costs (see the module
    docstring). Teacher first, student second.

    Parameters
    ----------
    teacher, student : LoadedModel, object with ``.tokenizer`` and ``.model``, or a zoo name
        (loaded with :func:`uld_explorer.zoo.load`) / model folder / Hugging Face id.
    text : str
        Non-empty, not whitespace-only; truncated to the model context with a warning.
    alignment : {"positional", "byte-offset"}
        ``"positional"``: the ULD paper's i-th with i-th, truncated to the shorter side (pairs
        may predict different bytes, ``same_span`` False). ``"byte-offset"``: groups closed at
        common byte boundaries, multi-token groups merged by the chain rule.
    top_k : int
        Tokens per side for the string-cost token-space OT (closed form, cheap).
    edit_top_k : int, optional
        Tokens per side for the edit-cost token-space OT (POT's simplex, ~k^3: default 100);
        None means ``top_k``.
    teacher_temperature, student_temperature : float
        ``softmax(z / T)``, T > 0.
    costs : sequence of {"string", "edit"}
        Token-space OT costs to compute (an omitted one gives None in the table).
    max_tokens : int, optional
        Text tokens per side at most (default: the model's context).

    Returns
    -------
    ComparisonTable

    Raises
    ------
    ValueError
        Empty / whitespace-only text, a temperature <= 0, an unknown alignment or cost, a bad
        top-k.
    uld_explorer.zoo.ZooError
        A model name that cannot be loaded.

    Examples
    --------
    >>> table = compare_text("Qwen2.5-Coder-0.5B-Instruct", "SmolLM2-135M-Instruct",
    ...                      "The capital of France is Paris")  # doctest: +SKIP
    >>> table[-1].label, table[-1].teacher_top1, table[-1].student_top1  # doctest: +SKIP
    (' Paris', ' Paris', ' Paris')
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)} (got {alignment!r})")
    _check_top_k(top_k, "top_k")
    if edit_top_k is not None:
        _check_top_k(edit_top_k, "edit_top_k")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text is empty or whitespace-only: there is nothing to compare")
    tt = _check_temperature(teacher_temperature, "teacher_temperature")
    st = _check_temperature(student_temperature, "student_temperature")
    teacher = _as_model(teacher, "teacher")
    student = _as_model(student, "student")
    t0 = time.perf_counter()
    t_tok, t_dist = next_token_distributions(teacher, text, tt, max_tokens)
    t1 = time.perf_counter()
    s_tok, s_dist = next_token_distributions(student, text, st, max_tokens)
    t2 = time.perf_counter()
    table = compare_distributions(
        teacher, student, t_tok, t_dist, s_tok, s_dist, alignment=alignment, top_k=top_k,
        edit_top_k=edit_top_k, costs=costs, teacher_temperature=tt, student_temperature=st,
    )
    table.timings.update(forward_teacher=t1 - t0, forward_student=t2 - t1)
    return table
