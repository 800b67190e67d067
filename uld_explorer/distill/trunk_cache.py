"""The frozen trunk's activations, computed once per (student weights, examples, k), not once per step.

With ``train_last_layers = k`` only the student's last k decoder layers and its final norm train
(:func:`~.student.top_parameters`); the embeddings and the first ``L - k`` layers (the *trunk*)
are frozen, so the hidden states entering layer ``L - k`` are the same at every step. They are
computed here once per example, at the student's own tokenization of prompt + answer
(``Example.student.model_input_ids``), by the FULL model's forward on right-padded batches (a
pre-hook on layer ``L - k`` catches them), and checked: the last k layers run from them (:func:`~.student.top_model`) must
give the full model's final hidden states, for every example when building and for the first
example when reading the file back (a file that fails is rebuilt; an architecture whose forward
does more than embed -> layers -> norm is refused, naming the fix).

A step then runs k of the student's layers plus the output projection on the answer rows, instead
of all of them: SmolLM2-135M (30 layers) with k = 2 measured 0.57 s per ``ce`` step against 4.51 s
training it whole (7.9x) and 1.41 s for the frozen model's forward alone, on 2 CPU cores
(``benchmarks/bench_distill.py --only pretrained``, docs/benchmarks.md).

Stored as one safetensors file under ``<cache>/distill/trunk/<fingerprint>.safetensors``, the
fingerprint covering the frozen weights themselves (sha256 of every frozen tensor: a zoo model, a
folder, a run's checkpoint alike), the model's config, k and every example's input ids.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .errors import DistillError
from .student import decoder_layers, top_model, top_parameters

__all__ = ["TrunkCache", "trunk_fingerprint", "build_trunk_cache", "load_or_build_trunk_cache", "TOLERANCE"]

FORMAT = 1
#: The largest difference allowed between the last-k forward from the cache and the full model's
#: final hidden states, relative to the largest of those (float32 rounding is ~1e-6).
TOLERANCE = 1e-4


@dataclass
class TrunkCache:
    """The hidden states entering decoder layer ``L - k``, example after example.

    Attributes
    ----------
    hidden : tensor float32, shape (N, H)
        Rows ``offsets[e]:offsets[e+1]`` are example e's input positions (context + answer).
    offsets : tensor int64, shape (E + 1,)
    layers : int
        k, the layers that run on top of these states.
    """

    hidden: torch.Tensor
    offsets: torch.Tensor
    layers: int
    fingerprint: str = ""

    def example(self, e: int) -> torch.Tensor:
        """Example e's states, shape (L_e, H) (a view)."""
        return self.hidden[int(self.offsets[e]) : int(self.offsets[e + 1])]

    def __len__(self) -> int:
        return int(self.offsets.numel()) - 1


def trunk_fingerprint(model: Any, k: int, examples: Sequence[Any]) -> str:
    """sha256 (16 hex digits) of the frozen tensors (every parameter and buffer but
    :func:`~.student.top_parameters`), the model's class and config, ``k`` and the examples'
    student input ids: a cache is reused only for the very same trunk and inputs."""
    config = {key: v for key, v in model.config.to_dict().items()
              if not key.startswith("_") and key != "transformers_version"}
    h = hashlib.sha256(json.dumps({"format": FORMAT, "k": int(k), "class": type(model).__name__, "config": config},
                                  sort_keys=True, default=str).encode())
    top = {id(p) for p in top_parameters(model, k)}
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if id(t) in top:
            continue
        h.update(f"{name} {t.dtype} {tuple(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    h.update(json.dumps([list(ex.student.model_input_ids) for ex in examples]).encode())
    return h.hexdigest()[:16]


def _difference(again: torch.Tensor, full: torch.Tensor) -> float:
    """max |again - full| relative to max(1, max |full|)."""
    return float((again.float() - full.float()).abs().max() / full.float().abs().max().clamp_min(1.0))


def _refuse(model: Any, k: int, worst: float) -> DistillError:
    return DistillError(f"train_last_layers = {k}: the last {k} layers of {type(model).__name__} run from the cached "
                        f"activations differ from the full model by {worst:.1e} (relative; allowed {TOLERANCE:g}): "
                        f"its forward does more than embed -> layers -> norm. Use --train-last-layers 0")


@torch.no_grad()
def _forward(model: Any, top: Any, layer: Any, seqs: Sequence[list[int]]) -> tuple[list[torch.Tensor], float]:
    """Examples ``seqs`` through the full model as one right-padded batch: the states entering
    ``layer``, (L_i, H) float32 on the CPU each, and how far the top's forward from them lands from
    the full model's output on the real positions (:func:`_difference`)."""
    entering: dict[str, torch.Tensor] = {}

    def catch(module: Any, args: tuple, kwargs: dict) -> None:
        entering["h"] = args[0] if args else kwargs["hidden_states"]

    device = next(model.parameters()).device
    x = torch.zeros((len(seqs), max(map(len, seqs))), dtype=torch.long, device=device)
    mask = torch.zeros_like(x)
    for b, ids in enumerate(seqs):
        x[b, : len(ids)] = torch.tensor(ids, device=device)
        mask[b, : len(ids)] = 1
    hook = layer.register_forward_pre_hook(catch, with_kwargs=True)
    try:
        full = model.base_model(input_ids=x, attention_mask=mask).last_hidden_state  # (B, L, H)
    finally:
        hook.remove()
    h = entering["h"]
    again = top(inputs_embeds=h, attention_mask=mask, use_cache=False).last_hidden_state
    real = mask.bool()
    return [h[b, : len(ids)].float().cpu() for b, ids in enumerate(seqs)], _difference(again[real], full[real])


def build_trunk_cache(model: Any, k: int, examples: Sequence[Any], *, batch_size: int = 8,
                      progress: bool = True) -> TrunkCache:
    """Run the full student once over every example (eval mode, ``batch_size`` examples at a time,
    right-padded) and keep the states entering layer ``L - k``, checking the last-k forward from
    them against the full model's output.

    Raises
    ------
    DistillError
        The last-k forward differs from the full model beyond :data:`TOLERANCE`.
    """
    from tqdm.auto import tqdm

    layers = decoder_layers(model)
    top, layer = top_model(model, k), layers[len(layers) - k]
    was_training = model.training
    model.eval()
    states: list[torch.Tensor] = []
    worst = 0.0
    try:
        with tqdm(total=len(examples), desc=f"student trunk activations (once per student and dataset, k={k})",
                  unit="answer", disable=not progress) as bar:
            for a in range(0, len(examples), batch_size):
                chunk = [list(ex.student.model_input_ids) for ex in examples[a : a + batch_size]]
                got, diff = _forward(model, top, layer, chunk)
                states += got
                worst = max(worst, diff)
                bar.update(len(chunk))
    finally:
        model.train(was_training)
    if worst > TOLERANCE:
        raise _refuse(model, k, worst)
    offsets = torch.tensor([0, *torch.tensor([h.shape[0] for h in states]).cumsum(0).tolist()])
    return TrunkCache(torch.cat(states), offsets, int(k))


def _save(cache: TrunkCache, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({"hidden": cache.hidden.contiguous(), "offsets": cache.offsets.contiguous()}, str(tmp),
              metadata={"fingerprint": cache.fingerprint, "layers": str(cache.layers), "format": str(FORMAT)})
    os.replace(tmp, path)


def _load(path: Path, fingerprint: str) -> TrunkCache | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            if meta.get("fingerprint") != fingerprint:
                return None
            return TrunkCache(f.get_tensor("hidden"), f.get_tensor("offsets"), int(meta["layers"]), fingerprint)
    except Exception:  # a damaged file (safetensors raises several kinds): rebuild it
        return None


def load_or_build_trunk_cache(model: Any, k: int, examples: Sequence[Any], *, progress: bool = True) -> TrunkCache:
    """The trunk cache of ``model`` (its frozen part), ``k`` and ``examples``: read from
    ``<cache>/distill/trunk/<fingerprint>.safetensors`` when its first example still reproduces
    the full model, else built now (:func:`build_trunk_cache`) and saved. A damaged file is rebuilt.

    Raises
    ------
    DistillError
        ``k`` exceeds the student's layers, or the architecture cannot be split exactly.
    """
    from ..zoo.cache import cache_dir

    fp = trunk_fingerprint(model, k, examples)
    path = cache_dir() / "distill" / "trunk" / f"{fp}.safetensors"
    found = _load(path, fp) if path.is_file() else None
    if found is not None and len(found) == len(examples) and found.layers == k:
        layers = decoder_layers(model)
        was_training = model.training
        model.eval()
        try:
            (h,), diff = _forward(model, top_model(model, k), layers[len(layers) - k],
                                  [list(examples[0].student.model_input_ids)])
        finally:
            model.train(was_training)
        stored = found.example(0)
        if diff <= TOLERANCE and h.shape == stored.shape and _difference(stored, h) <= TOLERANCE:
            return found
    cache = build_trunk_cache(model, k, examples, progress=progress)
    cache.fingerprint = fp
    _save(cache, path)
    return cache
