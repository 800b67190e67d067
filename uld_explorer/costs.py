"""Ground costs between teacher and student TOKENS, and the one registry of them.

A ground cost :math:`C_{ij}` says what it costs to move probability mass from teacher token
``i`` to student token ``j`` in token-space optimal transport
(:func:`uld_explorer.ot.token_space_ot_top_k`). Both built-in costs lie in ``[0, 1]`` and are 0
exactly where the two token strings are equal.

:data:`COSTS` maps each name to its builder, a one-line description and its upper bound; the
library, the CLI (``--costs``) and the app read their choices from it. Importing this module
needs NumPy only (the CLI builds its ``--help`` from it without loading torch or POT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = ["COSTS", "MAX_SUPPORT", "MAX_TOKEN_OT_TOP_K", "GroundCost", "edit_distance_cost", "string_identity_cost"]

#: Largest support (per side) accepted by the dense exact OT solvers: the cost matrix is n x n
#: float64 (5000 -> 200 MB) and the simplex needs seconds. Beyond it use ULD's closed form.
MAX_SUPPORT = 5000
#: Largest top-k for token-space OT: k tokens plus the rest bucket stay within MAX_SUPPORT.
MAX_TOKEN_OT_TOP_K = MAX_SUPPORT - 1

CostBuilder = Callable[[Sequence[str], Sequence[str]], np.ndarray]


def string_identity_cost(teacher_tokens: Sequence[str], student_tokens: Sequence[str]) -> np.ndarray:
    """Ground cost 0 where the token strings are equal, 1 elsewhere: shape (len_t, len_s).

    .. math:: C_{ij} = [t_i \\ne s_j]

    With this cost, exact OT is the mass that cannot stay on a shared string; with identical
    vocabularies it is the total variation distance.

    Examples
    --------
    >>> string_identity_cost(["a", "b"], ["b", "a", "c"]).tolist()
    [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
    """
    ids: dict[str, int] = {}
    t = np.fromiter((ids.setdefault(x, len(ids)) for x in teacher_tokens), dtype=np.int64)
    s = np.fromiter((ids.setdefault(x, len(ids)) for x in student_tokens), dtype=np.int64)
    return (t[:, None] != s[None, :]).astype(np.float64)  # integer ids compare fast


def edit_distance_cost(teacher_tokens: Sequence[str], student_tokens: Sequence[str]) -> np.ndarray:
    """Normalized Levenshtein distance between token strings: shape (len_t, len_s), in [0, 1].

    .. math:: C_{ij} = \\frac{\\mathrm{lev}(t_i, s_j)}{\\max(|t_i|, |s_j|)}, \\quad C = 0 \\text{ if both are empty}

    Computed with RapidFuzz (C++), all pairs at once.

    Examples
    --------
    >>> edit_distance_cost(["cat"], ["cart", "cat", ""]).round(2).tolist()
    [[0.25, 0.0, 1.0]]
    """
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    return cdist(
        list(teacher_tokens), list(student_tokens), scorer=Levenshtein.normalized_distance,
        dtype=np.float64, workers=-1,
    )


@dataclass(frozen=True)
class GroundCost:
    """One named ground cost.

    Attributes
    ----------
    build : callable(teacher_strings, student_strings) -> ndarray, shape (len_t, len_s)
    description : str
        One line, shown by ``--help`` and the app.
    bound : float
        The largest value the cost can take: the cost of moving mass to or from an unknown
        token (the rest bucket of a top-k truncation).
    zero_one : bool
        The cost is 0 for equal strings and 1 otherwise: exact OT then has a closed form
        (:func:`uld_explorer.ot.zero_one_group_ot`).
    """

    build: CostBuilder
    description: str
    bound: float = 1.0
    zero_one: bool = False


#: The ground costs, by name (the one registry: the library, the CLI and the app read it).
COSTS: dict[str, GroundCost] = {
    "string": GroundCost(
        string_identity_cost,
        "0 where the normalized token strings are equal, 1 elsewhere (OT value in [0, 1])",
        zero_one=True,
    ),
    "edit": GroundCost(
        edit_distance_cost,
        "normalized Levenshtein distance between the token strings, in [0, 1]",
    ),
}
