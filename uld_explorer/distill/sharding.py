"""FSDP for the runner: the student's weights, gradients and AdamW moments sharded over processes.

``--fsdp`` (:attr:`~.config.DistillConfig.fsdp`) under several processes applies PyTorch's FSDP2
(``torch.distributed.fsdp.fully_shard``, the engine Accelerate's FSDP plugin version 2 calls) to
each decoder layer and then to the whole student (:func:`shard_student`): each process keeps
1/N of every weight, a layer's weights are all-gathered for its forward and backward and freed
after, and the gradients are reduce-scattered (averaged, as DDP's all-reduce: the loop's
``loss * world`` undoes it the same way). The runner applies it itself rather than through
Accelerate's plugin because Accelerate 1.16 turns FSDP on only for GPU process groups; FSDP2
itself runs on CPU processes (gloo), so the same code is tested on CPU and runs on GPUs.

A forward is collective under FSDP, so every process runs the eval and the probe (only the main
process records them). Checkpoints keep the one-process format (:func:`full_model_state`,
:func:`full_optimizer_state`: the whole tensors, gathered on the main process): a run checkpointed
with FSDP resumes with or without it, and its ``final/`` folder loads with ``from_pretrained``.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["shard_student", "full_model_state", "full_optimizer_state", "load_full_optimizer_state", "local_norm"]


def shard_student(net: torch.nn.Module, device: torch.device, world: int) -> torch.nn.Module:
    """Apply ``fully_shard`` over ``world`` processes on ``device``'s type to each decoder layer of
    ``net.model`` (:class:`~.student.AnswerLogits`) and then to ``net`` (the embeddings, the final
    norm and the output head). Call before building the optimizer: the parameters become DTensors."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world,))
    layers = getattr(getattr(net.model, "base_model", net.model), "layers", None)
    if layers is None:
        raise ValueError(f"{type(net.model).__name__} has no decoder layers (base_model.layers) to shard")
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(net, mesh=mesh)
    return net


def _options() -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The student's whole state dict, keys as in ``net.model`` (collective: every process calls
    it; the tensors land on the main process, the others get an empty dict)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    sd = {k.removeprefix("model."): v for k, v in get_model_state_dict(net, options=_options()).items()}
    if getattr(net.model.config, "tie_word_embeddings", False):  # one tensor, saved once (as one process does)
        sd.pop("lm_head.weight", None)
    return sd


def _trained_names(net: torch.nn.Module) -> list[str]:
    """The trained parameters' names in the optimizer's order (it was built on these, in this order)."""
    return [n for n, p in net.named_parameters() if p.requires_grad]


def full_optimizer_state(net: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's whole state in ``opt.state_dict()``'s own form (parameters by position), as
    one process would hold it (collective; the main process gets it, the others an empty state)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    osd = get_optimizer_state_dict(net, opt, options=_options())
    names = _trained_names(net)
    pos = {n: i for i, n in enumerate(names)}
    groups = [{**g, "params": [pos[n] for n in g["params"]]} for g in osd.get("param_groups", [])]
    return {"state": {pos[n]: st for n, st in osd.get("state", {}).items()}, "param_groups": groups}


def load_full_optimizer_state(net: torch.nn.Module, opt: torch.optim.Optimizer, sd: dict[str, Any]) -> None:
    """Load a whole optimizer state (one process's form, e.g. read from a checkpoint) into the
    sharded optimizer ``opt`` (collective: every process calls it with the same ``sd``)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _trained_names(net)
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in sd["param_groups"]]
    state = {names[i]: st for i, st in sd["state"].items()}
    set_optimizer_state_dict(net, opt, {"state": state, "param_groups": groups},
                             options=StateDictOptions(full_state_dict=True))


def local_norm(norm: torch.Tensor) -> float:
    """A gradient norm as a float: ``clip_grad_norm_`` over DTensors returns a DTensor (the global
    norm, replicated); ``full_tensor`` gives its value."""
    full = getattr(norm, "full_tensor", None)
    return float(full() if full is not None else norm)
