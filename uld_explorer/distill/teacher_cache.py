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

Under several processes (:class:`Processes`) the build is sharded: process r runs the teacher on
examples ``r, r + N, r + 2N, ...`` and writes its part (``<fingerprint>.part-<r>-of-<N>``, with its
own sha256), then process 0 checks the parts, interleaves them back into example order, writes the
one file and removes the parts; every process then reads that file. Each answer's rows come from
the same per-answer forward pass either way, so the file is bit for bit the one-process build.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

__all__ = ["TeacherCache", "Processes", "cache_fingerprint", "build_teacher_cache", "content_sha256",
           "interleave", "load_or_build_teacher_cache", "probe_context", "read_teacher_cache", "save_teacher_cache",
           "teacher_cache_path"]

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


@dataclass(frozen=True)
class Processes:
    """The processes preparing one run together: this one's ``rank`` of ``world``, and ``wait``,
    which returns once every process has called it (Accelerate's ``wait_for_everyone``; a
    ``threading.Barrier``'s ``wait`` in tests). The default is one process on its own."""

    rank: int = 0
    world: int = 1
    wait: Callable[[], Any] = lambda: None

    @property
    def main(self) -> bool:
        return self.rank == 0


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
    if not vals:  # no example (a process's empty shard)
        width = probe.values.shape[0]
        vals, ids = [torch.empty(0, width)], [torch.empty(0, width, dtype=torch.int64)]
        tails, actual = [torch.empty(0, dtype=torch.float64)], [torch.empty(0)]
    return TeacherCache(
        values=torch.cat(vals), ids=torch.cat(ids), tail=torch.cat(tails), actual=torch.cat(actual),
        offsets=torch.tensor(offsets), probe_values=probe.values, probe_ids=probe.indices,
        vocab_size=int(V or z.shape[-1]),
    )


def interleave(parts: Sequence[TeacherCache]) -> TeacherCache:
    """The caches of examples ``r::N`` (``parts[r]``, N parts) put back in example order: example e
    is example ``e // N`` of part ``e % N``. The probe is part 0's (every part computes the same).

    >>> a = TeacherCache(*(torch.tensor(x) for x in ([[.9], [.8], [.7]], [[1], [2], [3]], [.1, .2, .3], [.5, .6, .7],
    ...                    [0, 2, 3], [.9], [1])), vocab_size=4)
    >>> b = TeacherCache(*(torch.tensor(x) for x in ([[.6]], [[4]], [.4], [.8], [0, 1], [.9], [1])), vocab_size=4)
    >>> c = interleave([a, b])   # examples: a0 (2 rows), b0 (1 row), a1 (1 row)
    >>> c.ids.flatten().tolist(), c.offsets.tolist()
    ([1, 2, 4, 3], [0, 2, 3, 4])
    """
    n = len(parts)
    counts = [len(p.offsets) - 1 for p in parts]
    order = [(e % n, e // n) for e in range(sum(counts))]
    if any(counts[r] != sum(1 for q, _ in order if q == r) for r in range(n)):
        raise ValueError(f"parts of {counts} examples are not the shards r::{n} of one list")
    pick = {name: [getattr(parts[r], name)[parts[r].rows(i)] for r, i in order] for name in ("values", "ids", "tail",
                                                                                           "actual")}
    sizes = torch.tensor([parts[r].rows(i).stop - parts[r].rows(i).start for r, i in order], dtype=torch.int64)
    first = parts[0]
    return TeacherCache(**{name: torch.cat(pick[name]) for name in pick},
                        offsets=torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)]),
                        probe_values=first.probe_values, probe_ids=first.probe_ids, vocab_size=first.vocab_size)


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


def teacher_cache_path(fingerprint: str) -> Path:
    """Where the cache of ``fingerprint`` lives: ``<cache>/distill/teacher/<fingerprint>.safetensors``."""
    from ..zoo.cache import cache_dir

    return cache_dir() / "distill" / "teacher" / f"{fingerprint}.safetensors"


def load_or_build_teacher_cache(teacher: str, examples: Sequence[Any], answers_fp: str, teacher_temperature: float,
                                top_k: int, probe_prompt: str, *, progress: bool = True,
                                processes: Processes = Processes()) -> TeacherCache:
    """The cache for this dataset: read from :func:`teacher_cache_path`, or built now (loads the
    teacher once per process) and saved. A damaged file is said and rebuilt. Under several
    ``processes`` every one of them calls this: each builds its shard of the examples, process 0
    joins them (:func:`interleave`) into the one file, and all read it (see the module's text).

    Raises
    ------
    RuntimeError
        A part written by another process is missing or damaged when process 0 joins them.
    """
    from ..zoo.loader import load

    fp = cache_fingerprint(answers_fp, teacher, teacher_temperature, top_k, examples, probe_prompt)
    path = teacher_cache_path(fp)
    found = None
    if path.is_file():
        found, why = read_teacher_cache(path, fp)
        if found is None and processes.main:
            warnings.warn(f"teacher cache {path} is not usable: {why}; rebuilding it from the teacher", UserWarning,
                          stacklevel=2)
    processes.wait()  # every process has looked before any writes: they all take the same branch
    if found is not None:
        return found
    rank, world = processes.rank, processes.world
    part = build_teacher_cache(load(teacher, progress=progress), examples[rank::world], teacher_temperature, top_k,
                               probe_prompt, progress=progress)
    if world == 1:
        part.fingerprint = fp
        save_teacher_cache(part, path)
        return part
    part.fingerprint = f"{fp}.part-{rank}-of-{world}"
    save_teacher_cache(part, path.with_name(f"{part.fingerprint}.safetensors"))
    processes.wait()  # every part is on disk
    if processes.main:
        parts = []
        for r in range(world):
            name = f"{fp}.part-{r}-of-{world}"
            got, why = read_teacher_cache(path.with_name(f"{name}.safetensors"), name)
            if got is None:
                raise RuntimeError(f"the teacher cache part of process {r} ({name}) is not usable: {why}")
            parts.append(got)
        cache = interleave(parts)
        cache.fingerprint = fp
        save_teacher_cache(cache, path)
        for r in range(world):
            path.with_name(f"{fp}.part-{r}-of-{world}.safetensors").unlink(missing_ok=True)
    processes.wait()  # the joined file is on disk
    if processes.main:
        return cache
    got, why = read_teacher_cache(path, fp)
    if got is None:
        raise RuntimeError(f"the teacher cache {path} joined by process 0 is not usable: {why}")
    return got
