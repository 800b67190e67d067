"""The settings of a teacher/student comparison: one frozen dataclass, validated once.

:class:`ComparisonConfig` is built by the library's callers (the CLI from its options, the app
from its widgets, a notebook by hand) and passed to :func:`~uld_explorer.compare.compare_text`.
Every field carries its help text in ``metadata["help"]`` (the CLI's ``--help`` reads it); the
named choices come from the library's registries (:data:`~uld_explorer.text.ALIGNMENTS`,
:data:`~uld_explorer.text.MERGES`, :data:`~uld_explorer.costs.COSTS`,
:class:`~uld_explorer.hybrid.HybridConfig`). Importing this module needs NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from .. import measures as registry
from ..checks import check_epsilon, check_int, check_temperature
from ..costs import COSTS, MAX_TOKEN_OT_TOP_K
from ..hybrid import HybridConfig
from ..text.align import ALIGNMENTS, MERGES

__all__ = ["DEFAULT_MAX_TOKENS", "ComparisonConfig"]

#: Text tokens per side compared by default: the default pair on 1,024 tokens peaks ~1.3 GB above
#: the loaded models (docs/benchmarks.md); Qwen2.5's context alone would allow 32,768.
DEFAULT_MAX_TOKENS = 1024


def _check_top_k(value: Any, name: str) -> int:
    try:
        return check_int(value, name, 1, MAX_TOKEN_OT_TOP_K)
    except ValueError:
        raise ValueError(
            f"{name} must be a positive integer at most {MAX_TOKEN_OT_TOP_K:,} (got {value!r}): the tokens "
            f"kept per side for exact token-space OT (k + 1 support points with the rest bucket)"
        ) from None


def _help(text: str, **more: Any) -> dict[str, Any]:
    """A field's metadata: its help text, and what the CLI's flag needs (``choices``: a registry)."""
    return {"help": text, **more}


@dataclass(frozen=True)
class ComparisonConfig:
    """How to compare a teacher and a student on a text (teacher first, student second).

    Validated once on construction: a bad value raises ``ValueError`` naming the field, what
    was expected and how to fix it. Change one setting with :meth:`replace`.

    Examples
    --------
    >>> cfg = ComparisonConfig(alignment="byte-offset", merge="bayesian")
    >>> cfg.replace(top_k=100).top_k, cfg.costs
    (100, ('string', 'edit'))
    >>> ComparisonConfig(alignment="diagonal")
    Traceback (most recent call last):
    ...
    ValueError: alignment must be one of positional, byte-offset (got 'diagonal'): ...
    """

    alignment: str = field(
        default="positional",
        metadata=_help("how teacher and student tokens are paired: "
                       + "; ".join(f"{k}: {v.description}" for k, v in ALIGNMENTS.items()), choices=ALIGNMENTS),
    )
    merge: str = field(
        default="observed",
        metadata=_help("how a byte-offset group of several tokens becomes one vector: "
                       + "; ".join(f"{k}: {v}" for k, v in MERGES.items()), choices=MERGES),
    )
    teacher_temperature: float = field(default=1.0, metadata=_help("teacher softmax(z / T), T > 0"))
    student_temperature: float = field(default=1.0, metadata=_help("student softmax(z / T), T > 0"))
    top_k: int = field(
        default=500,
        metadata=_help("tokens per side (plus a rest bucket) for the string-cost token-space OT "
                       "(closed form: cheap)"),
    )
    edit_top_k: int = field(
        default=100,
        metadata=_help("tokens per side for the edit-cost token-space OT (POT's network simplex, ~k^3: "
                       "~4 ms per position at 100, ~0.3 s at 1000)"),
    )
    costs: tuple[str, ...] = field(
        default=tuple(COSTS),
        metadata=_help("token-space OT ground costs to compute: "
                       + "; ".join(f"{k}: {v.description}" for k, v in COSTS.items()), choices=COSTS),
    )
    hybrid: HybridConfig = field(
        default_factory=HybridConfig,
        metadata=_help("settings of the hybrid ULD column (TRL GOLD's hybrid loss)"),
    )
    max_tokens: int | None = field(
        default=DEFAULT_MAX_TOKENS,
        metadata=_help("text tokens per side at most; a longer text is cut (the table says so). none: up to "
                       "the model's context. Memory grows ~0.8 MB per token for the default pair"),
    )
    value_ot: bool = field(
        default=True,
        metadata=_help("the value_ot column: exact n*W1 by POT's 1-D solver, equal to ULD (an "
                       "independent check of the closed form; off saves ~40% of the table's time)"),
    )
    sinkhorn_epsilon: float | None = field(
        default=None,
        metadata=_help("the sinkhorn_ot column: entropic token OT (POT's log-domain Sinkhorn) on the support and "
                       "cost of the sinkhorn_cost token OT, with this regularisation relative to the cost's largest "
                       "entry (e.g. 0.05; smaller = closer to exact OT, more iterations); none: not computed. Costly: "
                       "~0.1 s per position at top-k 50, seconds at 500 (docs/benchmarks.md)"),
    )
    sinkhorn_cost: str = field(
        default="string",
        metadata=_help("the ground cost (and so the top-k: top_k for string, edit_top_k for edit) of the sinkhorn_ot "
                       "column", choices=COSTS),
    )
    mined: bool = field(
        default=False,
        metadata=_help("the kl_mined columns: KL after FuseLLM's MinED mapping (each of the teacher's top_k tokens "
                       "mapped to the student token of nearest spelling) and its coverage; ~40 ms per position on "
                       "the default pair (docs/benchmarks.md), so off unless asked for"),
    )
    measures: tuple[str, ...] | None = field(
        default=None,
        metadata=_help("the measures to compute, by key (uld_explorer.measures; the table's columns); none: every "
                       "measure registered for positions", choices=lambda: {m.key: m for m in registry.for_positions()},
                       metavar="KEY"),
    )
    chunk_rows: int = field(
        default=32,
        metadata=_help("rows whose full-vocabulary vectors are computed at once: bounds the table's "
                       "memory (a few copies of chunk_rows x (V_t + V_s) floats); lower it if memory is short"),
    )

    def __post_init__(self) -> None:
        if self.alignment not in ALIGNMENTS:
            raise ValueError(
                f"alignment must be one of {', '.join(ALIGNMENTS)} (got {self.alignment!r}): "
                + "; ".join(f"{k} = {v.description}" for k, v in ALIGNMENTS.items())
            )
        if self.merge not in MERGES:
            raise ValueError(
                f"merge must be one of {', '.join(MERGES)} (got {self.merge!r}): observed = GOLD's default "
                f"(first token's distribution), bayesian = the joint probability (last token's)"
            )
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("teacher_temperature", check_temperature(self.teacher_temperature, "teacher_temperature"))
        set_("student_temperature", check_temperature(self.student_temperature, "student_temperature"))
        set_("top_k", _check_top_k(self.top_k, "top_k"))
        set_("edit_top_k", _check_top_k(self.edit_top_k, "edit_top_k"))
        costs = (self.costs,) if isinstance(self.costs, str) else tuple(self.costs)
        bad = [c for c in costs if c not in COSTS]
        if bad or len(set(costs)) != len(costs):
            raise ValueError(
                f"costs must be a subset of {', '.join(COSTS)} without repeats (got {list(costs)}); "
                f"pass () for no token-space OT"
            )
        set_("costs", costs)
        if not isinstance(self.hybrid, HybridConfig):
            raise ValueError(
                f"hybrid must be a uld_explorer.HybridConfig (got {type(self.hybrid).__name__}), "
                f"e.g. HybridConfig(beta=0.5)"
            )
        if self.max_tokens is not None:
            set_("max_tokens", check_int(self.max_tokens, "max_tokens", 1, None, "a positive integer or None"))
        if not isinstance(self.value_ot, bool):
            raise ValueError(f"value_ot must be True or False (got {self.value_ot!r})")
        if self.sinkhorn_epsilon is not None:
            set_("sinkhorn_epsilon", check_epsilon(self.sinkhorn_epsilon, "sinkhorn_epsilon"))
        if self.sinkhorn_cost not in COSTS:
            raise ValueError(f"sinkhorn_cost must be one of {', '.join(COSTS)} (got {self.sinkhorn_cost!r}): the "
                             f"ground cost of the entropic token OT")
        set_("chunk_rows", check_int(self.chunk_rows, "chunk_rows", 1, 4096, "an integer (rows computed at once)"))
        known = [m.key for m in registry.for_positions()]
        if self.measures is None:
            set_("measures", tuple(known))  # every measure registered now: part of the config, so of cache keys
        else:
            chosen = (self.measures,) if isinstance(self.measures, str) else tuple(self.measures)
            bad = [k for k in chosen if k not in known]
            if bad or len(set(chosen)) != len(chosen):
                raise ValueError(f"measures must be keys of uld_explorer.measures.MEASURES computed per position, "
                                 f"without repeats (got {list(chosen)}); known: {', '.join(known)}")
            set_("measures", tuple(k for k in known if k in chosen))  # the registry's order

    def replace(self, **changes: Any) -> "ComparisonConfig":
        """A copy with ``changes`` applied (validated again); unknown names are an error."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(
                f"unknown comparison setting(s) {', '.join(unknown)}; ComparisonConfig has: {', '.join(sorted(known))}"
            )
        return replace(self, **changes)
