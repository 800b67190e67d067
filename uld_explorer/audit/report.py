"""Run every check on a pair and a dataset: :class:`AuditConfig` -> :func:`run_audit` -> :class:`AuditReport`.

The tokenizer checks (template, BOS, EOS, shift and mask, alignment and drift, token classes,
shared strings) need the two tokenizers only, so they run for every pair, the tokenizer-only
families included, in a second or two for 100 examples. The model checks (the teacher's mass on
tokens the student cannot spell, the cache budget) run both models over the first
``forward_examples`` examples when both sides have weights.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..distill.config import DistillConfig
from ..text.align import ALIGNMENTS, MERGES
from .alignment import GROUP_SHAPES, AlignmentStats, alignment_stats
from .budget import BUDGET_KS, ENOUGH, Budget, cache_budget, suggest_k
from .classes import TOKEN_CLASSES, ClassCoverage, class_coverage
from .findings import LEVELS, Finding
from .inputs import Side, check_bos, check_context, check_eos, check_shift_and_mask, check_template

__all__ = ["AuditConfig", "AuditExample", "AuditReport", "audit_examples", "run_audit", "has_weights"]

#: Warn when at least this share of the texts drifts by 2+ tokens under positional alignment.
DRIFT_WARN = 0.25
#: Warn when the teacher puts at least this much of its mass (mean) on tokens the student cannot spell.
UNSPELLABLE_WARN = 0.10
#: Warn when the planned cache's certified ULD bound exceeds this share of the mean ULD.
BUDGET_WARN = 0.05


def _f(default: Any, help: str, **more: Any) -> Any:  # noqa: A002 - the metadata key the CLI reads
    return field(default=default, metadata={"help": help, **more})


_RUNNER = DistillConfig()  # the runner's defaults: the audit judges a pair by them unless told otherwise


@dataclass(frozen=True)
class AuditConfig:
    """What to audit: a teacher/student pair, a dataset, and the runner's settings to judge them by."""

    teacher: str = _f(_RUNNER.teacher, "teacher: zoo model, tokenizer-only entry or local folder")
    student: str = _f(_RUNNER.student, "student: zoo model, tokenizer-only entry or local folder")
    data: str = _f("", "a JSON-lines file: {'prompt', optional 'answer' | 'reference'} or {'messages': [...]} per "
                   "line (empty: the project's prompts with the default teacher's shipped answers)", metavar="FILE")
    examples: int = _f(100, "records audited (the first N of the data)")
    check_examples: int = _f(8, "examples whose student batch is built to check the shift and the mask")
    chat_template: bool = _f(True, "apply each model's chat template as the runner does (off: the plain "
                             "'Question: ... Answer: ' prompt for both)")
    alignment: str = _f(_RUNNER.alignment, "the alignment the runner will use (judges the drift and pairs the tokens of "
                        "the budget)", choices=ALIGNMENTS)
    merge: str = _f(_RUNNER.merge, "byte-offset groups: the merge the runner will use", choices=MERGES)
    top_k: int = _f(_RUNNER.top_k, "the teacher cache's K the runner will use (judged against the budget)")
    models: bool = _f(True, "run both models for the vocabulary-mass and cache-budget checks (when both have weights)")
    forward_examples: int = _f(32, "examples the model checks run over (each a teacher and a student forward pass)")
    strict: bool = _f(False, "exit 1 on warnings too (not only on errors)")

    def __post_init__(self) -> None:
        from ..checks import check_int

        check_int(self.examples, "examples", 1, 100_000, "a number of records")
        check_int(self.check_examples, "check_examples", 1, 1_000, "a number of examples")
        check_int(self.top_k, "top_k", 1, 4096, "a number of teacher probabilities")
        check_int(self.forward_examples, "forward_examples", 1, 10_000, "a number of examples")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)}, got {self.alignment!r}")
        if self.merge not in MERGES:
            raise ValueError(f"merge must be one of {', '.join(MERGES)}, got {self.merge!r}")


@dataclass(frozen=True)
class AuditExample:
    """One record as both sides read it: ``teacher`` / ``student`` are
    :class:`~uld_explorer.text.Tokenized` of the scored text (``answer``) with the side's rendered
    prompt as context; ``has_answer`` False when the record gave none (its prompt text is scored)."""

    id: str
    messages: tuple[dict[str, str], ...]
    answer: str
    has_answer: bool
    teacher: Any
    student: Any


def has_weights(name: str) -> bool:
    """A zoo model, or a local folder with a ``config.json`` and safetensors weights (not a
    tokenizer-only entry)."""
    from ..zoo import MODELS
    from ..zoo.errors import UnknownModelError
    from ..zoo.registry import resolve_name

    try:
        return resolve_name(name) in MODELS
    except UnknownModelError:
        p = Path(name)
        return p.is_dir() and (p / "config.json").is_file() and any(p.glob("*.safetensors"))


def _records(config: AuditConfig) -> list[Any]:
    from ..distill.userdata import Record, read_records

    if config.data:
        return read_records(config.data, limit=config.examples)
    from ..distill.data import load_answers, load_prompts
    from ..zoo import DEFAULT_TEACHER

    answers = load_answers(DEFAULT_TEACHER, 64, progress=False)
    prompts = load_prompts()
    return [Record(p.id, n + 1, ({"role": "user", "content": p.prompt},), answers.get(p.id))
            for n, p in enumerate(prompts)][: config.examples]


def audit_examples(records: Sequence[Any], teacher_tokenizer: Any, student_tokenizer: Any,
                   chat_template: bool = True) -> list[AuditExample]:
    """Tokenize every record for both sides as the runner does (prompt rendered by
    :func:`~uld_explorer.distill.data.render_prompt`, the answer scored)."""
    from ..distill.data import render_prompt
    from ..text.tokenize import tokenize_with_offsets

    out = []
    for r in records:
        text = r.answer if r.answer else r.text
        sides = []
        for tok, who in ((teacher_tokenizer, "teacher"), (student_tokenizer, "student")):
            rendered = render_prompt(tok if chat_template else None, r.as_messages())
            sides.append(tokenize_with_offsets(tok, text, prompt=rendered, who=who))
        out.append(AuditExample(r.id, tuple(r.messages), text, bool(r.answer), *sides))
    return out


@dataclass
class AuditReport:
    """Everything the audit found.

    Attributes
    ----------
    config : AuditConfig
    findings : list[Finding]
        Worst first (:data:`~uld_explorer.audit.LEVELS`).
    alignment : AlignmentStats
    classes : dict[str, ClassCoverage]
    vocab : dict
        ``teacher_size``, ``student_size``, ``shared`` (strings both vocabularies hold).
    budget : Budget | None
        None when the model checks did not run.
    examples : int
        Examples audited.
    seconds : dict[str, float]
        ``tokenizers`` (loading, tokenizing and the tokenizer checks), ``models`` (loading and the
        forward passes).
    """

    config: AuditConfig
    findings: list[Finding]
    alignment: AlignmentStats
    classes: dict[str, ClassCoverage]
    vocab: dict[str, Any]
    budget: Budget | None
    examples: int
    seconds: dict[str, float] = field(default_factory=dict)

    def count(self, level: str) -> int:
        return sum(f.level == level for f in self.findings)

    def exit_code(self, strict: bool | None = None) -> int:
        """1 when an error was found (or a warning, ``strict``), else 0."""
        strict = self.config.strict if strict is None else strict
        return int(self.count("error") > 0 or (strict and self.count("warning") > 0))

    def checks(self, level: str | None = None) -> set[str]:
        """The checks with a finding (of ``level``)."""
        return {f.check for f in self.findings if level is None or f.level == level}

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-safe (NaN as null through :mod:`uld_explorer.jsonsafe`)."""
        return {
            "config": asdict(self.config), "examples": self.examples,
            "summary": {lv: self.count(lv) for lv in LEVELS}, "exit_code": self.exit_code(),
            "findings": [f.to_dict() for f in self.findings], "alignment": self.alignment.to_dict(),
            "classes": {k: c.to_dict() for k, c in self.classes.items()}, "vocab": dict(self.vocab),
            "budget": self.budget.to_dict() if self.budget is not None else None, "seconds": dict(self.seconds),
        }


def _alignment_findings(st: AlignmentStats, alignment: str) -> list[Finding]:
    shares = ", ".join(f"{k} {st.share(k):.0%}" for k in GROUP_SHAPES)
    out = [Finding("info", "alignment", f"byte-offset groups over {st.n_groups:,} groups: {shares}; "
                   f"{st.same_bytes_share:.0%} of the positional pairs cover the same bytes")]
    d = st.to_dict()["max_drift"]
    drifting = st.drifting(2)
    if alignment == "positional" and drifting >= DRIFT_WARN:
        out.append(Finding(
            "warning", "drift", f"positional alignment pairs tokens up to {d['max']} student tokens from the same bytes "
            f"(per text: median {d['median']:g}, 90th percentile {d['p90']:g}); {drifting:.0%} of the texts drift by 2 or "
            f"more, so their later pairs compare predictions of different text",
            "use byte-offset alignment (--alignment byte-offset), or a pair whose tokenizers cut alike"))
    else:
        out.append(Finding("info", "drift", f"positional drift per text: median {d['median']:g}, max {d['max']}; "
                           f"{drifting:.0%} of the texts drift by 2+ tokens"))
    return out


def _class_findings(classes: dict[str, ClassCoverage]) -> list[Finding]:
    out = []
    for key, c in classes.items():
        cls = TOKEN_CLASSES[key]
        if not c.occurrences:
            continue
        msg = (f"{c.split_differently} of {c.occurrences} {c.label} split differently ({c.share:.0%}); tokens per "
               f"fragment: teacher {c.teacher_tokens:.2f}, student {c.student_tokens:.2f}")
        if c.split_differently and c.share >= cls.warn_share:
            out.append(Finding("warning", f"tokens:{key}", f"{msg}: {cls.why}",
                               "use byte-offset alignment (its groups cover the same bytes), and read this class's "
                               "rows in the Real distributions page", c.examples))
        else:
            out.append(Finding("info", f"tokens:{key}", msg, examples=c.examples))
    return out


def _budget_findings(b: Budget, top_k: int) -> list[Finding]:
    out = []
    level = "warning" if b.unspellable_mean >= UNSPELLABLE_WARN else "info"
    out.append(Finding(level, "vocab", f"the teacher puts {b.unspellable_mean:.1%} of its mass (95th percentile "
                       f"{b.unspellable_p95:.1%}) on tokens the student has no token for: KL on shared strings "
                       f"ignores that mass, ULD does not", "compare with ULD or the hybrid, which keep it"
                       if level == "warning" else ""))
    row, k = b.row(top_k), suggest_k(b)
    if row is None:
        return out
    text = (f"K={top_k} keeps {row.kept_mean:.2%} of the teacher's mass (worst 5% of positions: {row.kept_p5:.2%}); "
            f"ULD from that cache is certified within {row.bound_mean:.4f} per pair for the step-0 student "
            f"({row.bound_share:.1%} of the mean ULD {b.uld_mean:.3f}) and within {row.tail_mean:.4f} for any student")
    advice = (f"K={k} is the smallest measured K certified within {ENOUGH:.0%} of the ULD" if k else
              f"no measured K is certified within {ENOUGH:.0%} of the ULD")
    if row.bound_share > BUDGET_WARN:
        out.append(Finding("warning", "budget", f"{text}; {advice}", f"--top-k {k}" if k else "raise --top-k"))
    else:
        out.append(Finding("info", "budget", f"{text}; {advice}"))
    return out


def run_audit(config: AuditConfig = AuditConfig(), *, tokenizers: tuple[Any, Any] | None = None,
              models: tuple[Any, Any] | None = None, examples: Sequence[AuditExample] | None = None,
              make_batch: Callable[..., Any] | None = None, progress: Callable[[str, int, int], None] | None = None
              ) -> AuditReport:
    """Audit a pair and a dataset.

    Parameters
    ----------
    config : AuditConfig
    tokenizers : (teacher, student), optional
        Already loaded tokenizers (default: :func:`uld_explorer.load_tokenizer` of the config's names).
    models : (teacher, student) LoadedModel, optional
        Already loaded models for the model checks (default: loaded when ``config.models`` and both
        names have weights).
    examples : sequence of AuditExample, optional
        Already built examples (default: the config's data through :func:`audit_examples`) — the
        seam through which tests plant faults.
    make_batch : callable, optional
        The batch builder the shift and mask checks inspect (default: the runner's
        :func:`~uld_explorer.distill.batch.make_batch`).
    progress : callable(stage, done, total), optional
        Called during the model checks (``stage`` ``"forward"``).

    Returns
    -------
    AuditReport
    """
    from ..text.vocab import shared_strings_of

    t0 = time.perf_counter()
    findings: list[Finding] = []
    records = _records(config) if examples is None else None  # a bad data file fails before anything loads
    if tokenizers is None:
        from ..zoo import load_tokenizer

        tokenizers = (load_tokenizer(config.teacher, progress=False), load_tokenizer(config.student, progress=False))
    tt, st = tokenizers
    if examples is None:
        examples = audit_examples(records, tt, st, config.chat_template)
    examples = list(examples)
    if not examples:
        raise ValueError("nothing to audit: the data hold no record")
    no_answer = [ex.id for ex in examples if not ex.has_answer]
    if no_answer:
        findings.append(Finding("info", "data", f"{len(no_answer)} of {len(examples)} records give no answer: their "
                                f"prompt text is scored instead (alignment and token classes read it)"))
    teacher = Side("teacher", config.teacher, tt, config.chat_template)
    student = Side("student", config.student, st, config.chat_template)
    from ..distill.prepare import context_length

    for side in (teacher, student):
        findings += check_template(side, examples)
        findings += check_bos(side, examples)
        findings += check_context(side, examples, context_length(side.name))
    findings += check_eos(teacher, student, examples)
    if make_batch is None:
        from ..distill.batch import make_batch
    pad = next((i for i in (getattr(st, "pad_token_id", None), getattr(st, "eos_token_id", None)) if i is not None), 0)
    findings += check_shift_and_mask(examples[: config.check_examples], make_batch, int(pad), config.alignment,
                                     config.merge)
    pairs = [(ex.teacher, ex.student) for ex in examples]
    align = alignment_stats(pairs)
    findings += _alignment_findings(align, config.alignment)
    classes = class_coverage(pairs)
    findings += _class_findings(classes)
    shared = shared_strings_of(tt, st, len(tt), len(st))
    vocab = {"teacher_size": len(tt), "student_size": len(st), "shared": shared.match.S}
    findings.append(Finding("info", "vocab", f"{shared.match.S:,} strings are tokens of both: "
                            f"{shared.match.teacher_matched.size / len(tt):.0%} of the teacher's {len(tt):,} tokens, "
                            f"{shared.match.student_matched.size / len(st):.0%} of the student's {len(st):,}"))
    seconds = {"tokenizers": time.perf_counter() - t0}
    budget = None
    t1 = time.perf_counter()
    if models is None and config.models:
        missing = [n for n in (config.teacher, config.student) if not has_weights(n)]
        if missing:
            findings.append(Finding("info", "models", f"model checks skipped: {', '.join(missing)} "
                                    f"{'is a tokenizer' if len(missing) == 1 else 'are tokenizers'} without weights"))
        else:
            from ..zoo.loader import load

            models = (load(config.teacher, progress=False), load(config.student, progress=False))
    elif not config.models:
        findings.append(Finding("info", "models", "model checks not run (turned off: --no-models on the command "
                                "line, the 'model checks' switch in the app)"))
    if models is not None:
        ks = tuple(sorted(set(BUDGET_KS) | {config.top_k}))
        budget = cache_budget(models[0], models[1], examples[: config.forward_examples], alignment=config.alignment,
                              merge=config.merge, ks=ks,
                              progress=(lambda d, n: progress("forward", d, n)) if progress else None)
        findings += _budget_findings(budget, config.top_k)
        seconds["models"] = time.perf_counter() - t1
    findings.sort(key=lambda f: LEVELS.index(f.level))  # stable: the checks' order within a level
    return AuditReport(config, findings, align, classes, vocab, budget, len(examples), seconds)
