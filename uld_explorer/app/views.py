"""Each page's view: the values its URL may set, with their defaults and their widgets' bounds.

One place per page (:class:`~uld_explorer.app.common.Param` each): the page seeds its state from
the URL through it (:func:`~uld_explorer.app.common.view_state`: a value outside its bounds or
choices falls back to the default with a note, never clamped silently), draws its widgets with the
same bounds, and writes its view back to the URL (:func:`~uld_explorer.app.common.sync_url`).
The tests fuzz every page's URL with these keys.
"""

from __future__ import annotations

from uld_explorer.app.common import Param
from uld_explorer.lesson import BASE, CONTROLS, STEPS
from uld_explorer.synthetic import PlaygroundConfig
from uld_explorer.text.align import ALIGNMENTS, MERGES
from uld_explorer.zoo.registry import DEFAULT_STUDENT, DEFAULT_TEACHER, MODELS
from uld_explorer.zoo.vocab_registry import TOKENIZERS

__all__ = ["DISTILL", "EXAMPLES", "EXPERIMENTS", "LEARN", "LEARN_PREFIX", "MISMATCH", "OTHER_MODEL", "OTHER_TOKENIZER", "PLAYGROUND", "REAL",
           "SINKHORN_EPSILONS", "VIEWS", "bounds"]

#: One click away: (prompt, text) pairs that show what the pages are for.
EXAMPLES = {
    "English fact": ("The capital of France is", " Paris. It is also the largest city of the country."),
    "Accented": ("Words:", " naïve résumé, le café était très bon."),
    "CJK": ("", "東京は日本の首都です。大阪は二番目に大きい都市です。"),
    "Emoji / ZWJ": ("Reactions:", " I love 🍕 and 🚀! Family: 👩‍👩‍👧‍👦 and 🏳️‍🌈."),
    "Code": ("def add(a, b):\n", "    return a + b\n\nprint(add(2, 3))\n"),
}
#: The model pickers' last choice: a model named by the user.
OTHER_MODEL = "other: a Hugging Face id or a local folder"
#: The tokenizer pickers' last choice: a tokenizer folder named by the user.
OTHER_TOKENIZER = "other: a local tokenizer folder"
#: Largest vocabulary of the playground's sliders: exact value-space OT is an n x n problem.
PLAYGROUND_V_MAX = 300
#: The Playground's Sinkhorn regularisations (relative to the cost's largest entry): a log scale,
#: from nearly exact OT to a plan close to the independent coupling.
SINKHORN_EPSILONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

_D = PlaygroundConfig()
#: The Playground: the library's PlaygroundConfig defaults (``uld-explorer playground`` uses the same).
PLAYGROUND = {
    "V_t": Param(_D.V_t, 2, PLAYGROUND_V_MAX), "teacher_temperature": Param(_D.teacher_temperature, 0.1, 5.0),
    "V_s": Param(_D.V_s, 2, PLAYGROUND_V_MAX), "student_temperature": Param(_D.student_temperature, 0.1, 5.0),
    "shift": Param(_D.shift, -20, 20), "noise": Param(_D.noise, 0.0, 3.0), "permute_student": Param(_D.permute_student),
    "seed": Param(_D.seed, 0, 1_000_000), "top_k": Param(_D.top_k, 1, PLAYGROUND_V_MAX),
    "sinkhorn_epsilon": Param(_D.sinkhorn_epsilon, SINKHORN_EPSILONS[0], SINKHORN_EPSILONS[-1],
                              choices=SINKHORN_EPSILONS),
    "value_order": Param("rank", choices=("rank", "vocab")),
    "rank": Param(0, 0, PLAYGROUND_V_MAX),  # linked views: the rank picked on the sorted curves (0: none)
}
#: Learn: the step (1-based) and the learner's settings of the lesson's pair (uld_explorer.lesson's
#: CONTROLS, prefixed: the Playground's own widgets have the same names and other bounds).
LEARN_PREFIX = "l_"
LEARN = {"step": Param(1, 1, len(STEPS)),
         **{LEARN_PREFIX + k: Param(BASE[k], c.lo, c.hi) for k, c in CONTROLS.items()}}
#: Real distributions.
REAL = {
    "teacher": Param(DEFAULT_TEACHER, choices=[*MODELS, OTHER_MODEL]), "teacher_other": Param("", max_chars=500),
    "student": Param(DEFAULT_STUDENT, choices=[*MODELS, OTHER_MODEL]), "student_other": Param("", max_chars=500),
    "prompt": Param(EXAMPLES["English fact"][0], max_chars=20_000),
    "text": Param(EXAMPLES["English fact"][1], max_chars=100_000),
    "alignment": Param("byte-offset", choices=list(ALIGNMENTS)), "merge": Param("observed", choices=list(MERGES)),
    "teacher_temperature": Param(1.0, 0.1, 5.0), "student_temperature": Param(1.0, 0.1, 5.0),
    "top_k": Param(500, 1, 4999), "max_tokens": Param(256, 8, 1024), "position": Param(0, 0, None),
    "rank": Param(0, 0, None),  # linked views: the rank picked on the sorted curves or the top-10 bars (0: none)
}
#: Tokenizer mismatch.
MISMATCH = {
    "tk_teacher": Param(DEFAULT_TEACHER, choices=[*MODELS, *TOKENIZERS, OTHER_TOKENIZER]),
    "tk_teacher_other": Param("", max_chars=500),
    "tk_student": Param(DEFAULT_STUDENT, choices=[*MODELS, *TOKENIZERS, OTHER_TOKENIZER]),
    "tk_student_other": Param("", max_chars=500),
    "tk_prompt": Param(EXAMPLES["Accented"][0], max_chars=20_000),
    "tk_text": Param(EXAMPLES["Accented"][1], max_chars=100_000),
    "line_bytes": Param(48, 16, 160),
    "audit_examples": Param(100, 10, 320), "audit_alignment": Param("positional", choices=list(ALIGNMENTS)),
    "audit_models": Param(False),
}
#: Distillation: the selected run, the overlaid runs (comma-separated; "" = the most recent few)
#: and the probe's step (-1 = the latest, followed live).
DISTILL = {"run": Param("", max_chars=100), "overlay": Param("", max_chars=5000), "probe_step": Param(-1, -1, None)}
#: Experiments: the experiment shown (a folder name under the runs directory; "" = the newest).
EXPERIMENTS = {"experiment": Param("", max_chars=200)}
#: Each page's view by its URL path.
VIEWS = {"learn": LEARN, "playground": PLAYGROUND, "real": REAL, "tokenizers": MISMATCH, "distill": DISTILL,
         "experiments": EXPERIMENTS}


def bounds(params: dict[str, Param], key: str) -> tuple:
    """``(lo, hi)`` of a number: what its widget is drawn with."""
    return params[key].lo, params[key].hi
