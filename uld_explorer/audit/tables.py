"""The audit report's tables as pandas frames (the app's tables and exports), read from
:meth:`AuditReport.to_dict` so a cached report dict draws the same tables.

>>> from uld_explorer.audit import AuditConfig, AuditReport, AlignmentStats, Finding
>>> r = AuditReport(AuditConfig(), [Finding("error", "bos", "no BOS", "add it")], AlignmentStats(), {}, {}, None, 1)
>>> findings_frame(r.to_dict())[["level", "check", "fix"]].values.tolist()
[['error', 'bos', 'add it']]
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .alignment import GROUP_SHAPES

__all__ = ["budget_frame", "classes_frame", "findings_frame", "groups_frame"]


def findings_frame(report: dict[str, Any]) -> pd.DataFrame:
    """One row per finding, worst first: level, check, message, fix, examples (joined by a middle dot)."""
    return pd.DataFrame([{"level": f["level"], "check": f["check"], "message": f["message"], "fix": f["fix"],
                          "examples": " · ".join(f["examples"])} for f in report["findings"]],
                        columns=["level", "check", "message", "fix", "examples"])


def groups_frame(report: dict[str, Any]) -> pd.DataFrame:
    """Byte-offset group shapes: groups, their share, each side's tokens in them."""
    a = report["alignment"]
    return pd.DataFrame([{"shape": k, "groups": a["groups"][k], "share": a["group_share"][k],
                          "teacher tokens": a["teacher_tokens"][k], "student tokens": a["student_tokens"][k]}
                         for k in GROUP_SHAPES])


def classes_frame(report: dict[str, Any]) -> pd.DataFrame:
    """Critical-token classes: fragments found, split differently (count, share), tokens per fragment, examples."""
    return pd.DataFrame([{"class": c["label"], "found": c["occurrences"], "split differently": c["split_differently"],
                          "share": c["share"], "teacher tokens / fragment": c["teacher_tokens"],
                          "student tokens / fragment": c["student_tokens"], "examples": " · ".join(c["examples"])}
                         for c in report["classes"].values()],
                        columns=["class", "found", "split differently", "share", "teacher tokens / fragment",
                                 "student tokens / fragment", "examples"])


def budget_frame(report: dict[str, Any]) -> pd.DataFrame | None:
    """Per K: mass kept (mean, worst 5 %), the certified bound for any student and for the step-0
    student, and that bound over the mean ULD; None when the model checks did not run."""
    b = report.get("budget")
    if b is None:
        return None
    return pd.DataFrame([{"K": r["k"], "mass kept": r["kept_mean"], "mass kept, worst 5%": r["kept_p5"],
                          "bound, any student": r["tail_mean"], "bound, step-0 student": r["bound_mean"],
                          "bound / ULD": r["bound_share"]} for r in b["rows"]])
