"""A finished run's model card: ``final/README.md`` (Hugging Face's format: YAML front matter,
then Markdown), stating the teacher, the loss, the data and its fingerprints, and the held-out
metrics of the last evaluation.

>>> from uld_explorer.distill.config import preset
>>> card = model_card(preset("cpu-demo"), {"train": 64, "eval": 32, "answers": "a" * 16,
...                   "teacher_cache": "b" * 16}, {"step": 200, "eval_ce": 2.5, "eval_top1": 0.4}, "cpu-demo")
>>> card.splitlines()[0], "| held-out CE (nats/token) | 2.5000 |" in card
('---', True)
"""

from __future__ import annotations

from typing import Any

from .losses import LOSSES

__all__ = ["model_card"]

#: The held-out numbers a card shows: metrics key -> (label, format).
CARD_METRICS = {
    "eval_ce": ("held-out CE (nats/token)", "{:.4f}"),
    "eval_uld": ("held-out ULD (per aligned pair)", "{:.4f}"),
    "eval_top1": ("held-out top-1 agreement with the teacher", "{:.1%}"),
    "eval_kl_shared": ("held-out KL on shared strings", "{:.4f}"),
    "seen_ce": ("CE on seen answers", "{:.4f}"),
    "seen_top1": ("top-1 agreement on seen answers", "{:.1%}"),
}


def model_card(config: Any, data: dict[str, Any], last: dict[str, Any], preset: str | None) -> str:
    """The card of a student distilled with ``config`` on ``data`` (``Prepared.data_record()``),
    whose last metrics line (with the final evaluation) is ``last``."""
    loss = LOSSES[config.loss]
    rows = [f"| {label} | {fmt.format(last[k])} |" for k, (label, fmt) in CARD_METRICS.items()
            if isinstance(last.get(k), (int, float))]
    source = f"`{config.data}` (your data)" if config.data else "the project's prompts (`prompts.jsonl`)"
    return "\n".join([
        "---",
        "library_name: transformers",
        "tags: [distillation, uld, cross-tokenizer, uld-explorer]",
        "---",
        "",
        f"# {config.student}, distilled from {config.teacher} with `{config.loss}`",
        "",
        f"Distilled by ULD Explorer (`uld-explorer distill`{f' --preset {preset}' if preset else ''}): the student "
        f"`{config.student}` ({config.student_init} start) learned from the teacher `{config.teacher}`'s greedy "
        f"answers with the loss **{config.loss}**: {loss.description}.",
        "",
        "| setting | value |",
        "|---|---|",
        f"| teacher | `{config.teacher}` |",
        f"| student | `{config.student}` ({config.student_init}"
        + (f", last {config.train_last_layers} layers trained" if config.train_last_layers else "") + ") |",
        f"| loss | `{config.loss}`" + (f", λ = {config.uld_weight}" if "uld" in loss.parts and "ce" in loss.parts else "")
        + f", alignment {config.alignment}, teacher cache top-{config.top_k} |",
        f"| data | {source}: {data.get('train', '?')} training and {data.get('eval', '?')} held-out prompts |",
        f"| answers fingerprint | `{data.get('answers', '')}` |",
        f"| teacher cache fingerprint | `{data.get('teacher_cache', '')}` |",
        f"| steps | {last.get('step', config.max_steps)} of batch {config.batch_size}, lr {config.lr}, seed "
        f"{config.seed} |",
        "",
        f"## Held-out metrics (step {last.get('step', '?')})",
        "",
        "| metric | value |",
        "|---|---|",
        *(rows or ["| (no evaluation recorded) | |"]),
        "",
        "The run directory's `config.json` holds every setting; `metrics.jsonl` every step.",
        "",
    ])
