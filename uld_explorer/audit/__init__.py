"""``uld-explorer audit``: an alignment X-ray of a teacher/student pair and a dataset, before a
single GPU hour is spent.

:func:`run_audit` (:class:`AuditConfig` -> :class:`AuditReport`) runs every check of
:data:`CHECKS` and returns :class:`Finding` s, worst first, each one line with its fix:

- what each model reads and what is scored (:mod:`.inputs`): the chat template applied once,
  BOS as the tokenizer expects, EOS alike on both sides, the shift (position i predicts token
  i + 1) and the prompt mask on the batch the runner builds;
- how the tokenizations line up (:mod:`.alignment`): byte-offset group shapes (1:1, 1:n, n:1,
  n:m), the positional pairing's drift;
- critical-token classes (:mod:`.classes`, :data:`TOKEN_CLASSES`): numbers, whitespace runs,
  CJK, emoji, accented Latin, split alike or not;
- with weights (:mod:`.budget`): the teacher's mass on tokens the student cannot spell, and for
  K in 16 ... 1024 the teacher cache's mass kept and its certified ULD error bound.

The audit exits 1 (``AuditReport.exit_code``) when it finds an error, or a warning with
``strict``; it runs in CI. The names are imported on first use (``uld-explorer --help`` loads
neither NumPy's users nor pandas).
"""

from .._lazy import lazy_exports

_API = {
    ".alignment": ("GROUP_SHAPES", "AlignmentStats", "alignment_stats", "group_shape"),
    ".budget": ("BUDGET_KS", "Budget", "BudgetRow", "cache_budget", "suggest_k"),
    ".classes": ("TOKEN_CLASSES", "ClassCoverage", "TokenClass", "class_coverage"),
    ".findings": ("CHECKS", "LEVELS", "Finding"),
    ".inputs": ("Side", "check_bos", "check_context", "check_eos", "check_shift_and_mask", "check_template",
                "end_of_turn_ids", "generation_marker", "markup_strings"),
    ".report": ("AuditConfig", "AuditExample", "AuditReport", "audit_examples", "has_weights", "run_audit"),
    ".tables": ("budget_frame", "classes_frame", "findings_frame", "groups_frame"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _API, globals())
