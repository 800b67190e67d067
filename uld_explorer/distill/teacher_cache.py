"""The teacher's distributions over the answers, computed once per dataset, not once per step.

Every loss here needs only part of the teacher's next-token distribution ``p`` (over V_t tokens)
at each answer position: ULD only its SORTED values, KL and the hybrid its values by token id.
The cache keeps per position the k largest probabilities (sorted, descending) with their ids, the
tail mass :math:`r = \\sum_{i > k} p_{(i)}` and the probability of the actual answer token (the
chain-rule merges of byte-offset groups multiply by it). With ``k = 256`` that is ~2 KB per
position instead of 600 KB; :func:`~uld_explorer.uld_top_k` turns it into the ULD with an exact
bound (:math:`|L - \\hat L| \\le \\min(Q, r)`), reported during training.

Stored as one safetensors file under ``<cache>/distill/teacher/``, named by a fingerprint of
(the teacher answers' fingerprint, teacher, ``T_t``, ``k``, the rendered prompts, the probe), with
the sha256 of its content in the metadata: a load checks it, and a damaged file (a flipped byte of
the same size) is said and rebuilt, never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

__all__ = ["TeacherCache", "cache_fingerprint", "build_teacher_cache", "content_sha256", "load_or_build_teacher_cache",
           "probe_context", "read_teacher_cache", "save_teacher_cache"]

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


TENSORS = ("values", "ids", "tail", "actual", "offsets", "probe_values", "probe_ids")


def content_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of the tensors' names, dtypes, shapes and bytes, in :data:`TENSORS` order: what the
    file's metadata records when it is written and what a load checks (a flipped byte of the same
    file size changes it)."""
    h = hashlib.sha256()
    for name in TENSORS:
        t = tensors[name].contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_teacher_cache(cache: TeacherCache, path: Path) -> None:
    """Write ``cache`` to ``path`` (safetensors; written aside, then renamed) with its fingerprint
    and its content's sha256 in the metadata."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {n: getattr(cache, n).contiguous() for n in TENSORS}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"vocab_size": str(cache.vocab_size), "fingerprint": cache.fingerprint,
                                           "format": str(FORMAT), "sha256": content_sha256(tensors)})
    os.replace(tmp, path)


def read_teacher_cache(path: Path, fingerprint: str) -> tuple[TeacherCache | None, str | None]:
    """``(cache, None)`` when ``path`` holds the cache of ``fingerprint`` intact, else
    ``(None, why)``: it is unreadable, it is another dataset's, or its content's sha256 differs
    from the one recorded when it was written (a flipped byte, a bad disk). A file written before
    the sha256 was recorded is read and rewritten with it."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            t = {n: f.get_tensor(n) for n in f.keys()}
        if meta.get("fingerprint") != fingerprint:
            return None, f"it records another dataset's fingerprint ({meta.get('fingerprint')!r})"
        cache = TeacherCache(**{n: t[n] for n in TENSORS}, vocab_size=int(meta["vocab_size"]), fingerprint=fingerprint)
    except Exception as err:  # noqa: BLE001 - any unreadable file is rebuilt, and said so
        return None, f"it cannot be read ({type(err).__name__}: {str(err)[:120]})"
    recorded = meta.get("sha256")
    if recorded is None:  # written by an earlier version: record the sha256 from now on
        save_teacher_cache(cache, path)
    elif content_sha256(t) != recorded:
        return None, "its content's sha256 differs from the one recorded when it was written (damaged)"
    return cache, None


def load_or_build_teacher_cache(teacher: str, examples: Sequence[Any], answers_fp: str, teacher_temperature: float,
                                top_k: int, probe_prompt: str, *, progress: bool = True) -> TeacherCache:
    """The cache for this dataset: read from ``<cache>/distill/teacher/<fingerprint>.safetensors``,
    or built now (loads the teacher once) and saved. A damaged file is rebuilt."""
    from ..zoo.cache import cache_dir
    from ..zoo.loader import load

    fp = cache_fingerprint(answers_fp, teacher, teacher_temperature, top_k, examples, probe_prompt)
    path = cache_dir() / "distill" / "teacher" / f"{fp}.safetensors"
    if path.is_file():
        found, why = read_teacher_cache(path, fp)
        if found is not None:
            return found
        warnings.warn(f"teacher cache {path} is not usable: {why}; rebuilding it from the teacher", UserWarning,
                      stacklevel=2)
    cache = build_teacher_cache(load(teacher, progress=progress), examples, teacher_temperature, top_k, probe_prompt,
                                progress=progress)
    cache.fingerprint = fp
    save_teacher_cache(cache, path)
    return cache
