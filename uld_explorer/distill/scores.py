"""Held-out scores of one student, PER PROMPT (so an experiment can bootstrap them): the registry
:data:`METRICS`, the forward scores (:func:`prompt_metrics`), the student's greedy answers
(:func:`greedy_answers`) and the answer scores (:func:`token_f1`, :func:`exact_match`,
:func:`rouge_l`).

Every score is measured on the held-out prompts (``Prepared.eval``: never trained on), teacher
first (``p``, the teacher cache), student second (``q``):

- forward, as :func:`~.evaluate.evaluate` defines them, but per prompt: ``ce`` (the teacher's
  answer under the student, nats per answer token), ``top1`` (agreement with the teacher's most
  likely token, on the answer tokens both tokenizers cut alike), ``uld`` (ULD over the training
  alignment's pairs, from the cache's top-k + tail) and ``kl_shared`` (KL on the strings both
  vocabularies share, on the tokens both cut alike);
- generation: the student's greedy answer (what it reads before the answer in training: its chat
  template; at most ``max_new_tokens``) against the teacher's, by SQuAD's token F1 and exact
  match after SQuAD's normalisation (lower case, punctuation and the articles a / an / the
  removed, whitespace tokens) and ROUGE-L (``rouge-score``'s LCS F-measure) on the same tokens.

Why ROUGE-L on the normalised tokens: ``rouge-score``'s default tokenizer keeps only ``[a-z0-9]``,
so a Russian or Chinese answer scores 0 against itself (the prompts include both); here the
normalisation removes Unicode punctuation as well as ASCII.

Importable without torch (the CLI's ``--help``); the scores import it when they run.

Examples
--------
>>> normalize_answer("The Sun, of course!")
'sun of course'
>>> round(token_f1("the cat sat", "a cat sat down"), 4)  # 2 common of 2 and 3 tokens
0.8
>>> exact_match("Paris.", "paris"), rouge_l("w x y z", "w y z v")  # LCS w y z: 3 of 4 and 4
(1.0, 0.75)
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

__all__ = ["Metric", "METRICS", "FORWARD", "GENERATION", "normalize_answer", "answer_tokens", "token_f1",
           "exact_match", "rouge_l", "prompt_metrics", "greedy_answers", "answer_scores", "reference_scores",
           "REFERENCE"]


@dataclass(frozen=True)
class Metric:
    """One per-prompt score of a student, with what displays it needs.

    Attributes
    ----------
    key : str
        Stable identifier (results.json, results.csv, the CLI's table).
    label, unit : str
        Column title and unit (``%``: a fraction shown times 100).
    higher_is_better : bool
    scale : float
        Display multiplier (100 for a fraction shown in %); files hold the unscaled value.
    digits : int
        Decimals shown (after ``scale``).
    source : str
        ``forward`` (the student's distributions at the answer positions) or ``generation`` (its
        greedy answer).
    description : str
    """

    key: str
    label: str
    unit: str
    higher_is_better: bool
    scale: float
    digits: int
    source: str
    description: str


#: The held-out scores, per prompt. Forward ones are means over the prompt's own tokens / pairs.
METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("ce", "CE", "nats/token", False, 1.0, 3, "forward",
           "cross-entropy of the teacher's answer under the student: mean over the prompt's answer tokens of "
           "-log q(y)"),
    Metric("top1", "top-1", "%", True, 100.0, 1, "forward",
           "top-1 agreement: share of the prompt's answer tokens both tokenizers cut alike where the student's most "
           "likely token spells the teacher's"),
    Metric("uld", "ULD", "[0, 2]", False, 1.0, 3, "forward",
           "ULD to the teacher: mean over the prompt's aligned answer positions of sum_i |p_(i) - q_(i)|"),
    Metric("kl_shared", "KL shared", "nats", False, 1.0, 3, "forward",
           "KL(p || q) on the strings both vocabularies share (each side renormalised on them), mean over the "
           "prompt's answer tokens both tokenizers cut alike"),
    Metric("f1", "F1", "%", True, 100.0, 1, "generation",
           "token F1 of the student's greedy answer against the teacher's (SQuAD normalisation)"),
    Metric("em", "EM", "%", True, 100.0, 1, "generation",
           "exact match of the student's greedy answer and the teacher's (SQuAD normalisation)"),
    Metric("rouge_l", "ROUGE-L", "%", True, 100.0, 1, "generation",
           "ROUGE-L F-measure (rouge-score's LCS) of the student's greedy answer against the teacher's, on the "
           "normalised tokens"),
    Metric("ref_f1", "F1 ref", "%", True, 100.0, 1, "reference",
           "token F1 of the student's greedy answer against your data's reference answer (SQuAD normalisation; "
           "only prompts that give one, and only with --data)"),
    Metric("ref_em", "EM ref", "%", True, 100.0, 1, "reference",
           "exact match of the student's greedy answer and your data's reference answer (SQuAD normalisation; only "
           "prompts that give one)"),
)}
FORWARD = tuple(k for k, m in METRICS.items() if m.source == "forward")
GENERATION = tuple(k for k, m in METRICS.items() if m.source == "generation")
REFERENCE = tuple(k for k, m in METRICS.items() if m.source == "reference")


# ---------------------------------------------------------------------------- answers as text

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_ASCII_PUNCT = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation (its evaluation script's steps, in its order): lower case,
    punctuation removed (ASCII's, as the script, and also every Unicode punctuation character:
    the prompts span ten languages), the articles a / an / the removed, whitespace collapsed."""
    text = text.lower()
    text = "".join(c for c in text if c not in _ASCII_PUNCT and not unicodedata.category(c).startswith("P"))
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_tokens(text: str) -> list[str]:
    """The whitespace tokens of :func:`normalize_answer`."""
    return normalize_answer(text).split()


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's token F1: the harmonic mean of precision and recall of the common tokens (as
    multisets); 1.0 when both are empty after normalisation, 0.0 when one is (SQuAD v2.0's rule
    for empty answers; v1.1's script gives 0.0 for both empty)."""
    pred, ref = answer_tokens(prediction), answer_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the two are equal after :func:`normalize_answer`, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


class _Tokens:
    """rouge-score's tokenizer interface over :func:`answer_tokens`."""

    def tokenize(self, text: str) -> list[str]:
        return answer_tokens(text)


_SCORER: list[Any] = []


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (``rouge_score.rouge_scorer``, ``rougeL``): the longest common
    subsequence of the two token lists (:func:`answer_tokens`), 2PR / (P + R) with P = LCS /
    len(prediction), R = LCS / len(reference); 0.0 when either is empty (rouge-score's rule)."""
    if not _SCORER:
        from rouge_score import rouge_scorer

        _SCORER.append(rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokens()))
    return float(_SCORER[0].score(reference, prediction)["rougeL"].fmeasure)


def answer_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, list[float]]:
    """:data:`GENERATION` scores per prompt: ``{"f1": [...], "em": [...], "rouge_l": [...]}``."""
    fns = {"f1": token_f1, "em": exact_match, "rouge_l": rouge_l}
    return {k: [fns[k](p, r) for p, r in zip(predictions, references)] for k in GENERATION}


def reference_scores(predictions: Sequence[str], references: Sequence[str | None]) -> dict[str, list[float]]:
    """:data:`REFERENCE` scores per prompt against the data's own reference answers (NaN where a
    prompt gives none).

    >>> reference_scores(["It is Rome.", "Paris"], ["Rome", None])
    {'ref_f1': [0.5, nan], 'ref_em': [0.0, nan]}
    """
    fns = {"ref_f1": token_f1, "ref_em": exact_match}
    return {k: [fns[k](p, r) if r is not None else float("nan") for p, r in zip(predictions, references)]
            for k in REFERENCE}


# ---------------------------------------------------------------------------- a student, per prompt


def prompt_metrics(net: Any, prep: Any, config: Any, device: Any = "cpu",
                   autocast: Callable[[], Any] | None = None) -> dict[str, list[float]]:
    """The :data:`FORWARD` scores of a student on each held-out prompt (``prep.eval``).

    Parameters
    ----------
    net : AnswerLogits
        The student (:class:`~.student.AnswerLogits`), in eval mode.
    prep : Prepared
        The data (:func:`~.prepare.prepare`): held-out examples, teacher cache, vocabularies.
    config : DistillConfig
        ``alignment``, ``merge``, ``student_temperature``, ``batch_size`` (prompts per forward).
    device, autocast
        Where the student runs; a context factory for mixed precision (none: float32).

    Returns
    -------
    dict of str to list of float
        One value per held-out prompt for ``ce``, ``top1``, ``uld``, ``kl_shared`` (NaN where
        the prompt has nothing to measure: no aligned pair, no token both tokenizers cut alike),
        and the counts behind them: ``tokens`` (student answer tokens), ``pairs`` (aligned
        pairs), ``same`` (tokens both cut alike). ``sum(ce * tokens) / sum(tokens)`` is
        :func:`~.evaluate.evaluate`'s ``eval_ce`` (likewise ``uld`` by pairs, ``top1`` and
        ``kl_shared`` by ``same``).
    """
    import contextlib
    import math

    import torch

    from .batch import make_batch
    from .losses import loss_sums, shared_kl_sum

    autocast = autocast or contextlib.nullcontext
    cache, pad = prep.cache, prep.student_tokenizer.pad_token_id or 0
    T_s = float(config.student_temperature)
    out: dict[str, list[float]] = {k: [] for k in (*FORWARD, "tokens", "pairs", "same")}
    examples, rows = prep.eval, prep.eval_rows
    with torch.no_grad():
        for a in range(0, len(examples), config.batch_size):
            chunk, chunk_rows = examples[a : a + config.batch_size], rows[a : a + config.batch_size]
            batch = make_batch(chunk, chunk_rows, config.alignment, config.merge, pad)
            with autocast():
                logits = net(batch.input_ids.to(device), batch.attention_mask.to(device), batch.positions.to(device))
            logits = logits.float()  # (R, V_s): the chunk's answer rows, example after example
            r0 = 0
            for ex, ex_rows in zip(chunk, chunk_rows):
                one = make_batch([ex], [ex_rows], config.alignment, config.merge, pad)  # this prompt's rows, pairs
                z = logits[r0 : r0 + one.n_tokens]  # (T_s, V_s)
                r0 += one.n_tokens
                sums = loss_sums(z, one, cache, config, prep.match, parts=("ce", "uld"))
                n_same = int(one.same_s.numel())
                q = torch.softmax(z[one.same_s.to(z.device)] / T_s, -1)  # (A, V_s)
                s_top, t_top = q.argmax(-1).tolist(), cache.ids[one.same_t, 0].tolist()
                agree = sum(prep.student_bytes[s] == prep.teacher_bytes[t] for s, t in zip(s_top, t_top))
                kl = float(shared_kl_sum(q.cpu(), cache.values[one.same_t], cache.ids[one.same_t],
                                         cache.tail[one.same_t], cache.vocab_size, prep.match)) if n_same else 0.0
                out["ce"].append(float(sums["ce"]) / one.n_tokens)
                out["uld"].append(float(sums["uld"]) / one.n_pairs if one.n_pairs else math.nan)
                out["top1"].append(agree / n_same if n_same else math.nan)
                out["kl_shared"].append(kl / n_same if n_same else math.nan)
                out["tokens"].append(one.n_tokens)
                out["pairs"].append(one.n_pairs)
                out["same"].append(n_same)
    return out


def greedy_answers(model: Any, tokenizer: Any, contexts: Sequence[Sequence[int]], max_new_tokens: int, *,
                   batch_size: int = 16, device: Any = "cpu",
                   progress: Callable[[int], None] | None = None) -> list[str]:
    """The student's greedy answers: for each context (token ids it reads before its answer: BOS
    if any, its chat template's rendering of the prompt), at most ``max_new_tokens`` new tokens,
    decoded without special tokens and stripped (as the teacher's answers were). Batched with
    left padding; ``progress(n)`` after each batch of ``n``."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    out: list[str] = []
    for a in range(0, len(contexts), batch_size):
        chunk = [list(c) for c in contexts[a : a + batch_size]]
        L = max(map(len, chunk))
        ids = torch.tensor([[pad] * (L - len(c)) + c for c in chunk], device=device)
        mask = torch.tensor([[0] * (L - len(c)) + [1] * len(c) for c in chunk], device=device)
        with torch.inference_mode():
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=pad, eos_token_id=eos, top_p=None, top_k=None, temperature=None)
        out += [tokenizer.decode(g, skip_special_tokens=True).strip() for g in gen[:, L:].tolist()]
        if progress is not None:
            progress(len(chunk))
    return out
