"""The teacher's distributions over the answers, computed once per dataset, not once per step.

Every loss here needs only part of the teacher's next-token distribution ``p`` (over V_t tokens)
at each answer position: ULD only its SORTED values, KL and the hybrid its values by token id.
The cache keeps per position the k largest probabilities (sorted, descending) with their ids, the
tail mass :math:`r = \\sum_{i > k} p_{(i)}` and the probability of the actual answer token (the
chain-rule merges of byte-offset groups multiply by it). With ``k = 256`` that is ~2 KB per
position instead of 600 KB; :func:`~uld_explorer.uld_top_k` turns it into the ULD with an exact
bound (:math:`|L - \\hat L| \\le \\min(Q, r)`), reported during training.

Stored as one safetensors file under ``<cache>/distill/teacher/``, named by a fingerprint of
(the teacher answers' fingerprint, teacher, ``T_t``, ``k``, the rendered prompts, the probe).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

__all__ = ["TeacherCache", "cache_fingerprint", "build_teacher_cache", "load_or_build_teacher_cache", "probe_context"]

FORMAT = 1


@dataclass
class TeacherCache:
    """Per answer position of every example, in example order.

    Attributes
    ----------
    values : tensor float32, shape (N, k)
        The teacher's k largest probabilities at temperature ``T_t``, descending.
    ids : tensor int64, shape (N, k)
        Their token ids.
    tail : tensor float64, shape (N,)
        The rest of the mass, r (summed over the other V_t - k entries, not ``1 - sum``).
    actual : tensor float32, shape (N,)
        The probability of the actual answer token (the teacher's own greedy choice, mostly).
    offsets : tensor int64, shape (E + 1,)
        Rows ``offsets[e]:offsets[e+1]`` belong to example e (its T_t answer tokens).
    probe_values, probe_ids : tensors, shape (k,)
        The teacher's next-token distribution after the probe prompt (top-k).
    vocab_size : int
        V_t.
    """

    values: torch.Tensor
    ids: torch.Tensor
    tail: torch.Tensor
    actual: torch.Tensor
    offsets: torch.Tensor
    probe_values: torch.Tensor
    probe_ids: torch.Tensor
    vocab_size: int
    fingerprint: str = ""

    def rows(self, e: int) -> slice:
        return slice(int(self.offsets[e]), int(self.offsets[e + 1]))

    @property
    def k(self) -> int:
        return int(self.values.shape[1])


def probe_context(tokenizer: Any, prompt: str) -> list[int]:
    """The ids a model reads before the first answer token of ``prompt`` (BOS if its tokenizer adds
    one, then the rendered prompt), as in training."""
    from ..text.tokenize import tokenize_with_offsets
    from .data import render_prompt

    return list(tokenize_with_offsets(tokenizer, "x", prompt=render_prompt(tokenizer, prompt)).context_ids)


def cache_fingerprint(answers_fp: str, teacher: str, teacher_temperature: float, top_k: int,
                      examples: Sequence[Any], probe_prompt: str) -> str:
    from .data import teacher_identity

    h = hashlib.sha256()
    h.update(json.dumps({**teacher_identity(teacher), "answers": answers_fp, "T_t": float(teacher_temperature),
                         "k": int(top_k), "probe": probe_prompt, "format": FORMAT}, sort_keys=True).encode())
    for ex in examples:  # what the teacher read: its context ids and the answer's ids
        h.update(json.dumps([ex.teacher.context_ids, ex.teacher.ids]).encode())
    return h.hexdigest()[:16]


def build_teacher_cache(loaded: Any, examples: Sequence[Any], teacher_temperature: float, top_k: int,
                        probe_prompt: str, *, progress: bool = True) -> TeacherCache:
    """Run the teacher once over every example's answer and keep what the losses need."""
    from tqdm.auto import tqdm

    from ..compare.forward import next_token_distributions
    from ..distributions import softmax

    vals, ids, tails, actual, offsets = [], [], [], [], [0]
    k = top_k
    V = None
    for ex in tqdm(examples, desc="teacher distributions (once per dataset)", unit="answer", disable=not progress):
        tok, dist = next_token_distributions(loaded, ex.answer, teacher_temperature, prompt=ex.teacher.prompt)
        if tuple(tok.ids) != tuple(ex.teacher.ids):
            raise RuntimeError(f"the teacher tokenized the answer to {ex.prompt.id} differently than expected")
        d = torch.from_numpy(dist[: len(tok)])  # (T_t, V_t): row j predicts answer token j
        V = d.shape[1]
        top = torch.topk(d, min(k, V), dim=-1)  # sorted, descending
        vals.append(top.values)
        ids.append(top.indices)
        tails.append((d.double().sum(-1) - top.values.double().sum(-1)).clamp_min(0.0))
        actual.append(d.gather(1, torch.tensor(tok.ids).unsqueeze(1)).squeeze(1))
        offsets.append(offsets[-1] + len(tok))
    ctx = probe_context(loaded.tokenizer, probe_prompt)
    with torch.inference_mode():
        z = loaded.model(input_ids=torch.tensor([ctx])).logits[0, -1].float()
    probe = torch.topk(softmax(z, teacher_temperature), min(k, V or z.shape[-1]))
    return TeacherCache(
        values=torch.cat(vals), ids=torch.cat(ids), tail=torch.cat(tails), actual=torch.cat(actual),
        offsets=torch.tensor(offsets), probe_values=probe.values, probe_ids=probe.indices,
        vocab_size=int(V or z.shape[-1]),
    )


def _save(cache: TeacherCache, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {n: getattr(cache, n).contiguous() for n in
               ("values", "ids", "tail", "actual", "offsets", "probe_values", "probe_ids")}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"vocab_size": str(cache.vocab_size), "fingerprint": cache.fingerprint,
                                           "format": str(FORMAT)})
    os.replace(tmp, path)


def _load(path: Path, fingerprint: str) -> TeacherCache | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            if meta.get("fingerprint") != fingerprint:
                return None
            t = {n: f.get_tensor(n) for n in f.keys()}
        return TeacherCache(**t, vocab_size=int(meta["vocab_size"]), fingerprint=fingerprint)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, Exception):  # a damaged file: rebuild
        return None


def load_or_build_teacher_cache(teacher: str, examples: Sequence[Any], answers_fp: str, teacher_temperature: float,
                                top_k: int, probe_prompt: str, *, progress: bool = True) -> TeacherCache:
    """The cache for this dataset: read from ``<cache>/distill/teacher/<fingerprint>.safetensors``,
    or built now (loads the teacher once) and saved. A damaged file is rebuilt."""
    from ..zoo.cache import cache_dir
    from ..zoo.loader import load

    fp = cache_fingerprint(answers_fp, teacher, teacher_temperature, top_k, examples, probe_prompt)
    path = cache_dir() / "distill" / "teacher" / f"{fp}.safetensors"
    found = _load(path, fp) if path.is_file() else None
    if found is not None:
        return found
    cache = build_teacher_cache(load(teacher, progress=progress), examples, teacher_temperature, top_k, probe_prompt,
                                progress=progress)
    cache.fingerprint = fp
    _save(cache, path)
    return cache
