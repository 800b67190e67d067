"""The per-position comparison table: one row per aligned position, JSON and pandas views.

The measures are the registry's (:mod:`uld_explorer.measures`): a row holds their values by
key (``row.values``, each also an attribute), the table's columns, JSON and CSV follow them.

Scales, so that numbers that look alike are read alike
-------------------------------------------------------
- ``uld`` and ``value_ot`` lie in ``[0, 2]`` (the sorted-L1 closed form and the exact
  value-space OT, equal); on merged groups in ``[0, m_t + m_s]`` (sub-probability vectors).
- ``uld_half`` = ULD / 2 lies in ``[0, 1]``, the scale of ``token_ot_string`` (exact OT with the
  0/1 string cost, which equals TV on a shared vocabulary). ULD / 2 is the token-space OT one
  would get if token identities could be relabelled freely, so it is a LOWER BOUND of the
  full-vocabulary 0/1 token-space OT whenever every string appears at most once per vocabulary.
  Two things can break the bound, and the row's ``notes`` say which: the top-k truncation (the
  rest buckets move to each other for free) and strings shared by several ids of one side
  (their mass pools).
- ``kl_shared``, ``hybrid_matched`` and ``hybrid`` are in nats.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


from ..jsonsafe import json_safe
from ..text import Tokenized
from .config import ComparisonConfig

__all__ = ["ComparisonTable", "PositionRow", "NEXT_TOKEN_LABEL"]

#: The ``label`` of the last row: the models' prediction of what follows the text.
NEXT_TOKEN_LABEL = "(next token)"


@dataclass(frozen=True)
class PositionRow:
    """One aligned teacher/student pair (positional), group (byte-offset), or the next token.

    Attributes
    ----------
    index : int
        Row number in the table.
    kind : {"token", "next"}
        ``"token"``: the row predicts text token(s). ``"next"``: the last row, both models'
        distribution after the whole input (the prediction of what follows the text): it has no
        actual token, so its token columns are empty and its own-token probabilities None.
    label : str
        The text this row PREDICTS (the teacher's bytes of ``byte_span``, split UTF-8
        characters shown as ``\\xNN``); :data:`NEXT_TOKEN_LABEL` for the next-token row.
    byte_span : (int, int)
        Half-open span in ``text.encode("utf-8")`` (empty, at the text's end, for the next row).
    same_span : bool
        Both sides predict exactly the same bytes (always True for byte-offset groups and the
        next row).
    teacher_tokens, student_tokens : tuple of int
        Indices ``j`` of the predicted text tokens (``dist[j]`` predicts token ``j``).
    teacher_ids, student_ids : tuple of int
        Their vocabulary ids.
    teacher_strings, student_strings : tuple of str
        Their text.
    teacher_prob, student_prob : float or None
        Probability each model gives to its own actual token(s): for a group, the chain rule
        product :math:`\\prod_l p_{j_l}(x_{j_l})` (both merges give it). None for the next row.
    teacher_mass, student_mass : float
        Total mass of the (merged) vector: the product of the scalar probabilities, 1 for a
        single token.
    teacher_top1, student_top1 : str
        Most probable token (normalized vocab string) of the base distribution (the group's
        first token for ``merge="observed"``, its last for ``"bayesian"``), with its probability
        ``teacher_top1_prob`` / ``student_top1_prob``.
    values : dict
        Every measure of the table (:data:`~uld_explorer.measures.MEASURES`, the keys of
        ``ComparisonConfig.measures``) -> its value at this row: NaN where undefined (the
        ``notes`` say why), None where not computed (a cost or ``value_ot`` not asked for).
        Each is also an attribute: ``row.uld``, ``row.kl_shared``, ``row.token_ot_string`` ... The
        built-in ones: ``kl_shared`` (KL(p || q) in nats on the shared strings of the base
        distributions) with ``kl_teacher_coverage`` / ``kl_student_coverage`` (the mass each side
        puts there); ``uld`` (the closed form, on the merged vectors) and ``value_ot`` (n·W1 by
        POT's 1-D solver, equal to it); ``hybrid`` with ``hybrid_matched`` / ``hybrid_unmatched``
        (TRL GOLD's hybrid on the merged vectors); ``uld_half`` = ULD / 2 on the [0, 1] scale of
        ``token_ot_string`` / ``token_ot_edit`` (exact token-space OT of the base distributions
        on top-k + rest, string-identity / edit-distance cost) with their truncated masses
        (``string_teacher_truncated`` ...).
    notes : tuple of str
        What to know when reading this row: an undefined value and why, a merged group's
        vectors, token OT below ULD / 2 and why.
    """

    index: int
    kind: str
    label: str
    byte_span: tuple[int, int]
    same_span: bool
    teacher_tokens: tuple[int, ...]
    student_tokens: tuple[int, ...]
    teacher_ids: tuple[int, ...]
    student_ids: tuple[int, ...]
    teacher_strings: tuple[str, ...]
    student_strings: tuple[str, ...]
    teacher_prob: float | None
    student_prob: float | None
    teacher_mass: float
    student_mass: float
    teacher_top1: str
    teacher_top1_prob: float
    student_top1: str
    student_top1_prob: float
    values: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        """A measure's value read as an attribute (``row.uld``): only called when ``name`` is not
        a field."""
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or measure {name!r}")

    def as_record(self) -> dict[str, Any]:
        """The row as one flat dict: its fields, then each measure's value by key, then ``notes``."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("values", "notes")}
        out.update(self.values)
        out["notes"] = self.notes
        return out


def _side(t: Tokenized) -> dict[str, Any]:
    return {
        "ids": list(t.ids), "strings": list(t.strings), "byte_spans": [list(s) for s in t.byte_spans],
        "bos_id": t.bos_id, "prompt_ids": list(t.prompt_ids),
    }


@dataclass(frozen=True)
class ComparisonTable:
    """The per-position comparison of a teacher and a student on one text.

    Iterate over it, index it, or convert it: :meth:`to_dataframe` (pandas),
    :meth:`to_records` (JSON-safe dicts), :meth:`as_dict` (records plus the settings).

    Attributes
    ----------
    rows : tuple of PositionRow
        The text's aligned positions in order, then (when both sides read the same text) the
        next-token row.
    config : ComparisonConfig
        The settings (``table.alignment``, ``table.top_k`` ... read them).
    teacher_name, student_name : str
    V_t, V_s : int
        Vocabulary sizes (logits' last axis).
    shared_strings : int
        Distinct normalized token strings the two vocabularies share.
    hybrid_weights : (float, float)
        ``(w_matched, w_unmatched)`` of the hybrid column, the same for every row.
    teacher, student : Tokenized
        Both tokenizations (byte spans, ids, strings, the prompt's ids).
    notes : tuple of str
        What holds for the whole table (e.g. why there is no next-token row).
    timings : dict
        Seconds spent: ``forward_teacher``, ``forward_student`` (compare_text only),
        ``vocab`` (0 when cached), ``divergences``.
    """

    rows: tuple[PositionRow, ...]
    config: ComparisonConfig
    teacher_name: str
    student_name: str
    V_t: int
    V_s: int
    shared_strings: int
    hybrid_weights: tuple[float, float]
    teacher: Tokenized = field(repr=False)
    student: Tokenized = field(repr=False)
    notes: tuple[str, ...] = ()
    timings: dict = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i: int) -> PositionRow:
        return self.rows[i]

    # the settings, read through
    alignment = property(lambda self: self.config.alignment, doc="ComparisonConfig.alignment")
    merge = property(lambda self: self.config.merge, doc="ComparisonConfig.merge")
    top_k = property(lambda self: self.config.top_k, doc="ComparisonConfig.top_k")
    edit_top_k = property(lambda self: self.config.edit_top_k, doc="ComparisonConfig.edit_top_k")
    costs = property(lambda self: self.config.costs, doc="ComparisonConfig.costs")
    teacher_temperature = property(lambda self: self.config.teacher_temperature, doc="teacher T")
    student_temperature = property(lambda self: self.config.student_temperature, doc="student T")

    @property
    def prompt(self) -> str:
        """The text both models read before the compared text (``""`` for none)."""
        return self.teacher.prompt

    @property
    def text(self) -> str:
        """The compared text (the longer side's, when one side was truncated)."""
        return self.teacher.text if len(self.teacher.text) >= len(self.student.text) else self.student.text

    @property
    def next_row(self) -> PositionRow | None:
        """The next-token row (both models' prediction of what follows the text), if present."""
        return self.rows[-1] if self.rows and self.rows[-1].kind == "next" else None

    @property
    def measures(self) -> tuple[str, ...]:
        """The keys of the measures computed (``config.measures``), in the registry's order."""
        return self.config.measures

    @property
    def columns(self) -> list[str]:
        """Column names, in order: the fields of :class:`PositionRow`, each measure's key in
        place of ``values``, ``notes`` last."""
        return [f.name for f in fields(PositionRow) if f.name not in ("values", "notes")] + [*self.measures, "notes"]

    def to_dataframe(self):
        """A pandas DataFrame, one row per aligned pair, columns :attr:`columns`."""
        import pandas as pd

        return pd.DataFrame([r.as_record() for r in self.rows], columns=self.columns)

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-safe dicts (:meth:`PositionRow.as_record`): tuples -> lists, non-finite floats (NaN,
        inf) -> None (the row's ``notes`` say why)."""
        return [json_safe(r.as_record()) for r in self.rows]

    def as_dict(self) -> dict[str, Any]:
        """Settings, tokenizations and records, JSON-safe (what ``uld-explorer compare --json`` prints)."""
        cfg = asdict(self.config)
        return json_safe({
            "teacher": self.teacher_name, "student": self.student_name,
            "prompt": self.prompt, "text": self.text,
            **cfg,
            "V_t": self.V_t, "V_s": self.V_s, "shared_strings": self.shared_strings,
            "hybrid_weights": list(self.hybrid_weights),
            "teacher_tokens": _side(self.teacher), "student_tokens": _side(self.student),
            "notes": list(self.notes),
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "rows": self.to_records(),
        })
