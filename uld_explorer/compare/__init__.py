"""Teacher vs student on a text, position by position.

- :mod:`~uld_explorer.compare.config` -- :class:`ComparisonConfig`, the settings, validated once
- :mod:`~uld_explorer.compare.forward` -- :func:`next_token_distributions` for (prompt +) text
- :mod:`~uld_explorer.compare.pipeline` -- :func:`compare_text`, :func:`compare_distributions`
- :mod:`~uld_explorer.compare.cost` -- :func:`check_memory`, :func:`estimate_cost`: memory and time, before anything runs
- :mod:`~uld_explorer.compare.table` -- :class:`ComparisonTable` of :class:`PositionRow`

Names are imported on first use: ``from uld_explorer.compare.config import ComparisonConfig``
does not load torch.
"""

from .._lazy import lazy_exports

_API = {
    ".config": ("DEFAULT_MAX_TOKENS", "ComparisonConfig"),
    ".forward": ("next_token_distributions",),
    ".cost": ("CostEstimate", "check_memory", "estimate_cost", "memory_needed"),
    ".pipeline": ("PositionVectors", "RowVectors", "compare_distributions", "compare_text", "position_vectors",
                  "row_vectors", "shared_strings_of"),
    ".reading": ("read_row",),
    ".table": ("ComparisonTable", "NEXT_TOKEN_LABEL", "PositionRow"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _API, globals())
