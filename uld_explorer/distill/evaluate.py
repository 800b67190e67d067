"""What a run measures on eval steps: :func:`evaluate` (held-out and seen answers) and :func:`probe`.

Every run is measured by the same yardsticks whatever it trains on: its own loss and parts, CE
and ULD (:data:`EVAL_PARTS`) over the training alignment's pairs, and, where both tokenizers cut
the answer alike (the same bytes as one token each side, ``Batch.same_*``), top-1 agreement with
the teacher by token string and KL on the shared strings
(:func:`~.losses.shared_kl_sum`).
"""

from __future__ import annotations

from typing import Any

import torch

from .batch import make_batch
from .losses import LOSSES, PARTS, combine, denominator, loss_sums, shared_kl_sum

__all__ = ["EVAL_PARTS", "evaluate", "probe"]

#: The parts every run is evaluated on (besides its own loss's).
EVAL_PARTS = ("ce", "uld")


@torch.no_grad()
def evaluate(net: Any, prep: Any, device: torch.device, autocast: Any, *, seen: bool = False) -> dict[str, float]:
    """Metrics on held-out answers (``eval_*``) or, ``seen=True``, on the first ``eval_prompts``
    TRAINING answers (``seen_*``, without KL on shared strings), to see what the student fits
    apart from what generalises.

    Parameters
    ----------
    net : AnswerLogits
        The student (unwrapped), in eval mode; with ``train_last_layers > 0`` it runs from the
        examples' cached trunk states (``prep.eval_hidden`` / ``prep.train_hidden``), as in training.
    prep : Prepared
        The run's data (:func:`~.prepare.prepare`).
    device, autocast
        Where the student runs and Accelerate's autocast context.

    Returns
    -------
    dict of str to float
        ``<pre>loss`` (the run's own loss), ``<pre>ce``, ``<pre>uld``, ``<pre>uld_bound`` (means
        over answer tokens / aligned pairs), ``<pre>top1`` (agreement by token string where both
        tokenizers cut alike), the run's other parts and their extras (``<pre>kl``, ``<pre>hybrid``,
        ``<pre>hybrid_bound``), and held-out
        only ``eval_kl_shared``; ``<pre>`` is ``eval_`` or ``seen_``.
    """
    cfg = prep.config
    parts = list(dict.fromkeys((*EVAL_PARTS, *LOSSES[cfg.loss].parts)))
    tot: dict[str, float] = {}
    n_tok = n_pair = n_same = agree = 0
    kl_shared = 0.0
    pad = prep.student_tokenizer.pad_token_id or 0
    examples, rows_of, hidden = ((prep.train, prep.train_rows, prep.train_hidden) if seen
                                 else (prep.eval, prep.eval_rows, prep.eval_hidden))
    n = min(len(examples), cfg.eval_prompts)
    for a in range(0, n, cfg.batch_size):
        b = min(a + cfg.batch_size, n)
        batch = make_batch(examples[a:b], rows_of[a:b], cfg.alignment, cfg.merge, pad,
                           hidden[a:b] if hidden is not None else None)
        with autocast():
            logits = net(batch.input_ids.to(device), batch.attention_mask.to(device), batch.positions.to(device),
                         batch.hidden_on(device))
        sums = loss_sums(logits, batch, prep.cache, cfg, prep.match, parts=parts)
        for k, v in sums.items():
            tot[k] = tot.get(k, 0.0) + float(v)
        n_tok += batch.n_tokens
        n_pair += batch.n_pairs
        # token identities are compared where both tokenizers cut alike (batch.same_*)
        z = logits.float()[batch.same_s.to(device)]
        q = torch.softmax(z / cfg.student_temperature, -1)
        s_top = q.argmax(-1).tolist()
        t_top = prep.cache.ids[batch.same_t, 0].tolist()
        agree += sum(prep.student_bytes[s] == prep.teacher_bytes[t] for s, t in zip(s_top, t_top))
        n_same += len(s_top)
        if not seen:
            rows = batch.same_t
            kl_shared += float(shared_kl_sum(q.cpu(), prep.cache.values[rows], prep.cache.ids[rows],
                                             prep.cache.tail[rows], prep.cache.vocab_size, prep.match))
    means = {k: v / (n_tok if denominator(k) == "tokens" else n_pair) for k, v in tot.items()}
    loss, _ = combine({k: torch.tensor(v) for k, v in tot.items()}, n_tok, n_pair, cfg)
    pre = "seen_" if seen else "eval_"
    out = {f"{pre}loss": float(loss), f"{pre}ce": means["ce"], f"{pre}uld": means["uld"],
           f"{pre}uld_bound": means["uld_bound"], f"{pre}top1": agree / max(n_same, 1)}
    if not seen:
        out["eval_kl_shared"] = kl_shared / max(n_same, 1)
    for p in LOSSES[cfg.loss].parts:
        if p not in EVAL_PARTS:
            out.update({f"{pre}{key}": means[key] for key in (p, *PARTS[p].extras)})
    return out


@torch.no_grad()
def probe(net: Any, prep: Any, ctx: list[int], device: torch.device, autocast: Any) -> dict[str, Any]:
    """The student's and the teacher's top ``probe_top_k`` next tokens after the probe prompt
    (``ctx``: its student token ids, :func:`~.teacher_cache.probe_context`), as readable strings
    with their probabilities: ``{"prompt", "student": [{"token", "prob"}, ...], "teacher": [...]}``."""
    from ..distributions import softmax
    from ..text.spelling import readable

    cfg = prep.config
    ids = torch.tensor([ctx], device=device)
    with autocast():
        z = net(ids, torch.ones_like(ids), torch.tensor([len(ctx) - 1], device=device))[0]
    q = softmax(z.float(), cfg.student_temperature)
    top = torch.topk(q, cfg.probe_top_k)
    k = cfg.probe_top_k
    return {
        "prompt": cfg.probe_prompt,
        "student": [{"token": readable(prep.student_bytes[i]), "prob": float(p)}
                    for p, i in zip(top.values.tolist(), top.indices.tolist())],
        "teacher": [{"token": readable(prep.teacher_bytes[i]), "prob": float(p)}
                    for p, i in zip(prep.cache.probe_values[:k].tolist(), prep.cache.probe_ids[:k].tolist())],
    }
