"""Synthetic teacher/student pairs for teaching: the playground's settings and their defaults.

:class:`PlaygroundConfig` is the one source of the playground's settings and defaults: the app's
widgets start from them and ``uld-explorer playground`` uses them for its options, so both
show the same pair. Importing this module needs NumPy only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .checks import check_epsilon, check_int, check_real, check_temperature
from .costs import MAX_TOKEN_OT_TOP_K

__all__ = ["MAX_SYNTHETIC_VOCAB", "PlaygroundConfig", "synthetic_pair", "synthetic_tokens"]

#: Largest synthetic vocabulary (the pair is cheap; the figures and exact OT are not).
MAX_SYNTHETIC_VOCAB = 1_000_000


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def synthetic_pair(
    V_t: int = 12,
    V_s: int = 8,
    *,
    teacher_temperature: float = 1.0,
    student_temperature: float = 1.0,
    shift: int = 0,
    noise: float = 0.0,
    permute_student: bool = False,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A teacher ``p`` (V_t,) and a student ``q`` (V_s,) drawn from shared token scores.

    Token ``i`` has score ``z_i ~ N(0, 2^2)`` (one draw of ``max(V_t, V_s)`` scores). The teacher is
    ``softmax(z[:V_t] / teacher_temperature)``; the student is
    ``softmax((roll(z, shift)[:V_s] + noise * eps) / student_temperature)``, i.e. the student's
    preferences are the teacher's moved ``shift`` tokens along the vocabulary, plus Gaussian noise.
    ``permute_student`` finally shuffles the student's probabilities over its vocabulary: the shape
    of the distribution stays, the token identities are lost (ULD cannot see that; KL can).

    Parameters
    ----------
    V_t, V_s : int
        Vocabulary sizes, 1 to :data:`MAX_SYNTHETIC_VOCAB`.
    teacher_temperature, student_temperature : float
        ``T > 0``.
    shift : int
    noise : float
        Standard deviation of the noise on the student's scores, ``>= 0``.
    permute_student : bool
    seed : int
        ``>= 0``.

    Returns
    -------
    p : ndarray, float64, shape (V_t,)
    q : ndarray, float64, shape (V_s,)

    Raises
    ------
    ValueError
        Naming the argument and the allowed range.

    Examples
    --------
    >>> p, q = synthetic_pair(5, 5, permute_student=True, seed=1)
    >>> bool(np.allclose(np.sort(p), np.sort(q)))
    True
    """
    V_t = check_int(V_t, "V_t", 1, MAX_SYNTHETIC_VOCAB, "a positive integer vocabulary size")
    V_s = check_int(V_s, "V_s", 1, MAX_SYNTHETIC_VOCAB, "a positive integer vocabulary size")
    t_t = check_temperature(teacher_temperature, "teacher_temperature")
    t_s = check_temperature(student_temperature, "student_temperature")
    shift = check_int(shift, "shift", -(2**31), 2**31, "an integer")
    noise = check_real(noise, "noise", "a finite number >= 0")
    if noise < 0:
        raise ValueError(f"noise must be a finite number >= 0: it is a standard deviation (got {noise!r})")
    seed = check_int(seed, "seed", 0, 2**63 - 1, "a non-negative integer")
    if not isinstance(permute_student, (bool, np.bool_)):
        raise ValueError(f"permute_student must be True or False (got {permute_student!r})")
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, size=max(V_t, V_s))
    p = _softmax(z[:V_t] / t_t)
    zs = np.roll(z, shift)[:V_s] + noise * rng.normal(size=V_s)
    q = _softmax(zs / t_s)
    if permute_student:
        q = q[rng.permutation(V_s)]
    return p, q


def synthetic_tokens(V: int, prefix: str = "tok") -> list[str]:
    """Token strings ``tok0`` to ``tok{V-1}`` for synthetic vocabularies (token i of both sides is
    the same string, so the vocabularies share their first ``min(V_t, V_s)`` tokens).

    >>> synthetic_tokens(3)
    ['tok0', 'tok1', 'tok2']
    """
    return [f"{prefix}{i}" for i in range(V)]


@dataclass(frozen=True)
class PlaygroundConfig:
    """The playground's settings: a synthetic pair (:func:`synthetic_pair`) and its token OT.

    The defaults are the app's (the CLI's ``playground`` uses the same): two different
    vocabularies, so KL is undefined and ULD is the only comparison of the full distributions.
    Validated once on construction; every message names the field and the allowed range.

    Attributes
    ----------
    V_t, V_s : int
        Teacher / student vocabulary sizes.
    teacher_temperature, student_temperature : float
    shift : int
        The student's preferences are the teacher's moved this many tokens.
    noise : float
        Gaussian noise (standard deviation) on the student's scores, >= 0.
    permute_student : bool
        Shuffle the student's probabilities (identity blindness).
    seed : int
    top_k : int
        Tokens per side for token-space OT (the rest pooled in one bucket), 1 to
        :data:`MAX_TOKEN_OT_TOP_K`.
    sinkhorn_epsilon : float or None
        The entropic token OT's regularisation, relative to the cost's largest entry (>= 1e-4);
        None: no Sinkhorn row.

    Examples
    --------
    >>> cfg = PlaygroundConfig()
    >>> cfg.V_t, cfg.V_s, cfg.top_k
    (20, 14, 50)
    >>> p, q = cfg.pair()
    >>> p.shape, q.shape
    ((20,), (14,))
    """

    V_t: int = field(default=20, metadata={"help": "teacher vocabulary size V_t", "flag": "--vt"})
    V_s: int = field(default=14, metadata={"help": "student vocabulary size V_s", "flag": "--vs"})
    teacher_temperature: float = field(default=1.0, metadata={"help": "teacher T > 0 (low = peaked)"})
    student_temperature: float = field(default=1.0, metadata={"help": "student T > 0 (low = peaked)"})
    shift: int = field(default=1, metadata={"help": "move the student's preferences by this many tokens"})
    noise: float = field(default=0.5, metadata={"help": "Gaussian noise (std >= 0) on the student's scores"})
    permute_student: bool = field(default=False, metadata={
        "help": "shuffle the student's probabilities (identity blindness)", "flag": "--permute"})
    seed: int = field(default=0, metadata={"help": "random seed (>= 0)"})
    top_k: int = field(default=50, metadata={"help": "tokens per side for token-space OT (the rest pooled)"})
    sinkhorn_epsilon: float | None = field(default=0.05, metadata={
        "help": "entropic token OT (Sinkhorn) beside the exact one: its regularisation relative to the cost's "
                "largest entry (>= 1e-4; small = close to exact OT, large = a blurred plan); none: no Sinkhorn row"})

    def __post_init__(self) -> None:
        self.pair()  # validates every pair setting, naming the field
        check_int(self.top_k, "top_k", 1, MAX_TOKEN_OT_TOP_K, "a positive integer")
        if self.sinkhorn_epsilon is not None:
            object.__setattr__(self, "sinkhorn_epsilon", check_epsilon(self.sinkhorn_epsilon, "sinkhorn_epsilon"))

    def pair(self) -> tuple[np.ndarray, np.ndarray]:
        """The teacher ``p`` (V_t,) and student ``q`` (V_s,) of these settings."""
        kw = asdict(self)
        kw.pop("top_k")
        kw.pop("sinkhorn_epsilon")
        return synthetic_pair(**kw)
