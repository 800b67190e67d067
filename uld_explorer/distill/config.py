"""One config for a distillation run: :class:`DistillConfig`, its presets and its named choices.

Importable without torch (the CLI builds its ``--help`` from here). Every field carries its help
text in the dataclass metadata; :meth:`DistillConfig.__post_init__` validates once and says how
to fix a bad value. ``loss`` takes a key of the loss registry,
:data:`~.losses.LOSSES`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..checks import check_int, check_real, check_temperature
from ..hybrid import HybridConfig
from ..text.align import ALIGNMENTS, MERGES
from .losses import LOSSES

__all__ = ["STUDENT_INITS", "DEVICES", "PRECISIONS", "PRESETS", "REPORT_TO", "DistillConfig", "preset"]

#: How the student starts.
STUDENT_INITS: dict[str, str] = {
    "small": "a small randomly initialised Llama (student_layers x student_hidden) with the student's REAL "
             "tokenizer: starts from nothing, so the whole curve is visible in minutes on a CPU",
    "pretrained": "the student model's own pretrained weights (zoo name, folder or hub id)",
}
DEVICES: dict[str, str] = {"auto": "CUDA when present, else CPU", "cpu": "CPU", "cuda": "the first CUDA GPU"}
PRECISIONS: dict[str, str] = {
    "auto": "bf16 autocast on CUDA, fp32 on CPU",
    "fp32": "float32 everywhere",
    "bf16": "bfloat16 autocast (CUDA; on CPU slow and only for checks)",
}


#: Where a run's numbers go besides metrics.jsonl (``report_to``; :mod:`.trackers` wires them).
REPORT_TO = {
    "none": "only the run's metrics.jsonl",
    "tensorboard": "also TensorBoard event files in <run>/tensorboard (tensorboard --logdir <run>)",
    "csv": "also <run>/metrics.csv, one step,name,value row per logged number",
}


def _f(default: Any, help: str, **more: Any) -> Any:  # noqa: A002 - the metadata key the CLI reads
    """A field with its help text (and what the CLI's flag needs: ``choices``, a registry)."""
    return field(default=default, metadata={"help": help, **more})


@dataclass(frozen=True)
class DistillConfig:
    """Everything a run needs; ``config.json`` of a run directory is ``asdict`` of this.

    Teacher first, student second. The data are the project's prompts (``prompts.jsonl``) and the
    teacher's greedy answers to them (generated once, cached; the default teacher's are shipped);
    the teacher's distributions over those answers are computed once per dataset and cached as
    sorted top-k probabilities + tail mass (``top_k``), never once per step.
    """

    # --- models
    teacher: str = _f("Qwen2.5-Coder-0.5B-Instruct", "teacher: zoo name, model folder or hub id")
    student: str = _f("SmolLM2-135M-Instruct", "student: its tokenizer always; its weights when student_init is "
                      "'pretrained'")
    student_init: str = _f("small", "how the student starts: " + "; ".join(f"{k}: {v}" for k, v in STUDENT_INITS.items()),
                           choices=STUDENT_INITS)
    student_layers: int = _f(2, "layers of the 'small' student")
    student_hidden: int = _f(128, "hidden size of the 'small' student (heads of 32 dims)")
    train_last_layers: int = _f(0, "train only the student's last N decoder layers and its final norm (0: every "
                                "weight). The frozen layers below run once per student and dataset: their output at "
                                "every example is cached (<cache>/distill/trunk/), so a step runs N layers and the "
                                "answer rows' output projection. The output head stays frozen (SmolLM2 ties it to the "
                                "input embeddings, which the frozen layers read); checkpoints are the whole model")
    # --- loss
    loss: str = _f("ce+uld", "training loss: " + "; ".join(f"{k}: {v.description}" for k, v in LOSSES.items()),
                   choices=LOSSES)
    uld_weight: float = _f(1.5, "lambda in CE + lambda * ULD (the paper's distil_factor, 1.5)")
    teacher_temperature: float = _f(1.0, "T_t: teacher softmax(z / T_t) (no T^2 factor, as in the paper)")
    student_temperature: float = _f(1.0, "T_s: student softmax(z / T_s)")
    alignment: str = _f("positional", "positional (the paper: i-th answer token with i-th) or byte-offset (GOLD)",
                        choices=ALIGNMENTS)
    merge: str = _f("observed", "byte-offset groups only: observed | bayesian chain-rule merge", choices=MERGES)
    hybrid_beta: float = _f(0.5, "hybrid loss: beta of the generalized JSD on matched strings, in (0, 1) (GOLD's "
                                 "0.5)")
    top_k: int = _f(256, "teacher probabilities kept per position in the teacher cache (plus the tail mass)")
    # --- data
    data: str = _f("", "your data: a JSON-lines file, one {'prompt': ...} (optional 'answer' / 'reference') or "
                   "{'messages': [...]} per line; the teacher answers each prompt once (cached by the file's sha256). "
                   "Empty: the project's 320 prompts", metavar="FILE")
    max_new_tokens: int = _f(64, "teacher answers: greedy, at most this many new tokens")
    prompts: int = _f(0, "use the first N prompts (0: all)")
    eval_prompts: int = _f(32, "held-out prompts (the last ones) for the eval metrics")
    # --- optimisation
    batch_size: int = _f(16, "answers per step (the global batch, split over processes)")
    lr: float = _f(3e-3, "peak AdamW learning rate")
    min_lr_ratio: float = _f(0.1, "cosine decay down to lr * min_lr_ratio at max_steps")
    warmup_steps: int = _f(10, "linear warm-up steps")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    grad_clip: float = _f(1.0, "clip the gradient norm at this value (0: off)")
    max_steps: int = _f(120, "optimizer steps")
    seed: int = _f(0, "seed: the student's initialisation and the batch order")
    # --- logging
    eval_every: int = _f(20, "held-out metrics and the probe every N steps (and at the first and last)")
    checkpoint_every: int = _f(50, "safetensors checkpoint every N steps (and at the end / on Ctrl-C)")
    keep_checkpoints: int = _f(2, "checkpoints kept (older ones are deleted)")
    probe_prompt: str = _f("What is the capital of France?", "the prompt whose next-token distribution is recorded")
    probe_top_k: int = _f(10, "tokens of the probe distribution recorded per side")
    report_to: str = _f("none", "; ".join(f"{k}: {v}" for k, v in REPORT_TO.items()), choices=REPORT_TO)
    # --- hardware
    device: str = _f("auto", "; ".join(f"{k}: {v}" for k, v in DEVICES.items()), choices=DEVICES)
    precision: str = _f("auto", "; ".join(f"{k}: {v}" for k, v in PRECISIONS.items()), choices=PRECISIONS)
    fsdp: bool = _f(False, "under several processes (accelerate launch, torchrun): shard the student's weights, "
                    "gradients and AdamW moments over them with FSDP2 (torch fully_shard per decoder layer) instead "
                    "of a whole copy each (DDP); one process: nothing to shard. Checkpoints keep the one-process "
                    "format")

    def __post_init__(self) -> None:
        def choice(name: str, options: dict[str, Any]) -> None:
            v = getattr(self, name)
            if v not in options:
                raise ValueError(f"{name} must be one of {', '.join(options)} (got {v!r})")

        choice("loss", LOSSES)
        choice("student_init", STUDENT_INITS)
        choice("device", DEVICES)
        choice("precision", PRECISIONS)
        choice("report_to", REPORT_TO)
        choice("alignment", ALIGNMENTS)
        choice("merge", MERGES)
        for name in ("teacher", "student"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"{name} must be a zoo name, a model folder or a hub id (got {getattr(self, name)!r})")
        check_int(self.student_layers, "student_layers", 1, 48, "a number of layers")
        check_int(self.train_last_layers, "train_last_layers", 0, 1024, "a number of layers (0: all)")
        if self.student_init == "small" and self.train_last_layers > self.student_layers:
            raise ValueError(f"train_last_layers = {self.train_last_layers} but the small student has "
                             f"{self.student_layers} layers: use at most {self.student_layers} (0: all)")
        hidden = check_int(self.student_hidden, "student_hidden", 32, 8192, "a hidden size")
        if hidden % 32:
            raise ValueError(f"student_hidden must be a multiple of 32 (heads of 32 dims); got {hidden}, try {hidden // 32 * 32 or 32}")
        if check_real(self.uld_weight, "uld_weight") < 0:
            raise ValueError(f"uld_weight must be >= 0 (got {self.uld_weight}); the paper uses 1.5")
        check_temperature(self.teacher_temperature, "teacher_temperature")
        check_temperature(self.student_temperature, "student_temperature")
        HybridConfig(beta=self.hybrid_beta)  # its own check of beta in [0, 1]
        if "hybrid" in LOSSES[self.loss].parts and self.hybrid_beta == 1:
            raise ValueError("hybrid_beta = 1 makes the hybrid's matched part KL(q || p), which the teacher cache "
                             "(its top-k + tail mass) cannot bound: the teacher's mass on a string outside its top-k "
                             "may be ~0. Use 0 < hybrid_beta < 1 (GOLD's default 0.5)")
        if "hybrid" in LOSSES[self.loss].parts and self.hybrid_beta == 0:
            raise ValueError("hybrid_beta = 0 makes the hybrid's matched part KL(p || q), whose bound from the teacher "
                             "cache grows with log(1 / the student's smallest probability on a shared string): in "
                             "float32 that probability underflows to 0 and the bound (and the loss's midpoint) becomes "
                             "infinite. Use 0 < hybrid_beta < 1 (GOLD's default 0.5)")
        check_int(self.top_k, "top_k", 1, 4096, "a number of teacher probabilities kept per position")
        if not isinstance(self.data, str):
            raise ValueError(f"data must be the path of a JSON-lines file or '' (got {self.data!r})")
        check_int(self.max_new_tokens, "max_new_tokens", 1, 1024, "a number of tokens")
        check_int(self.prompts, "prompts", 0, None, "a number of prompts (0: all)")
        check_int(self.eval_prompts, "eval_prompts", 1, None, "a number of held-out prompts")
        check_int(self.batch_size, "batch_size", 1, 4096, "a number of answers per step")
        if not 0 < check_real(self.lr, "lr") <= 1:
            raise ValueError(f"lr must be in (0, 1] (got {self.lr}); 3e-3 suits the small student, 5e-5 a pretrained one")
        if not 0 <= check_real(self.min_lr_ratio, "min_lr_ratio") <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1] (got {self.min_lr_ratio})")
        check_int(self.warmup_steps, "warmup_steps", 0, None, "a number of steps")
        if check_real(self.weight_decay, "weight_decay") < 0:
            raise ValueError(f"weight_decay must be >= 0 (got {self.weight_decay})")
        if check_real(self.grad_clip, "grad_clip") < 0:
            raise ValueError(f"grad_clip must be >= 0 (0 turns clipping off; got {self.grad_clip})")
        check_int(self.max_steps, "max_steps", 1, 10_000_000, "a number of steps")
        check_int(self.seed, "seed", 0, 2**32 - 1, "a seed")
        check_int(self.eval_every, "eval_every", 1, None, "a number of steps")
        check_int(self.checkpoint_every, "checkpoint_every", 1, None, "a number of steps")
        check_int(self.keep_checkpoints, "keep_checkpoints", 1, None, "a number of checkpoints")
        check_int(self.probe_top_k, "probe_top_k", 1, 100, "a number of tokens")
        if not isinstance(self.probe_prompt, str) or not self.probe_prompt.strip():
            raise ValueError("probe_prompt must be a non-empty prompt")
        if not isinstance(self.fsdp, bool):
            raise ValueError(f"fsdp must be true or false (got {self.fsdp!r})")
        if self.fsdp and self.train_last_layers:
            raise ValueError("fsdp shards the whole student while train_last_layers trains only its top layers from "
                             "cached trunk states: use one or the other (train_last_layers 0 with fsdp)")
        need = LOSSES[self.loss].min_top_k
        if self.top_k < need:
            raise ValueError(f"top_k = {self.top_k} keeps too little of the teacher for {self.loss}: use >= {need} "
                             f"(256 by default)")

    @property
    def hybrid(self) -> HybridConfig:
        """The library's hybrid settings for ``loss="hybrid"``."""
        return HybridConfig(beta=self.hybrid_beta)

    def replace(self, **changes: Any) -> DistillConfig:
        """A copy with ``changes`` (validated again); unknown names are refused with the known ones."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown DistillConfig field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistillConfig:
        """Rebuild a config (e.g. from a run's ``config.json``); unknown keys are refused."""
        return cls().replace(**data)

    @classmethod
    def help(cls, name: str) -> str:
        return next(f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.name == name)


#: Named starting points; any field can be overridden (the CLI's flags, ``preset(name, **kw)``).
PRESETS: dict[str, dict[str, Any]] = {
    # 2 CPU cores, about 2 minutes: a small student with SmolLM2's real tokenizer learns 64 of the
    # Qwen2.5-Coder teacher's answers (32 more held out); on the answers it trains on, the loss falls
    # to 35-40 % of its start for each of seeds 0-4 in 200 steps (at 150, seed 3 reached 41.6 %, and
    # 50.2 % on earlier code: benchmarks/bench_cpu_demo_seeds.py, docs/benchmarks.md).
    "cpu-demo": dict(student_init="small", student_layers=2, student_hidden=128, prompts=96, eval_prompts=32,
                     batch_size=8, lr=5e-3, warmup_steps=10, max_steps=200, eval_every=25, checkpoint_every=50,
                     device="cpu", precision="fp32"),
    # 2 CPU cores, a few minutes: the real SmolLM2-135M-Instruct on cpu-demo's data (the shipped
    # Qwen2.5-Coder answers to the first 96 prompts, the same teacher cache), only its last 2 of 30
    # layers + final norm trained, from its frozen trunk's activations cached once: a step runs 2
    # layers + the answer rows' projection. lr 3e-4 measured best of 1e-4 / 3e-4 / 1e-3 (1e-3
    # memorises and raises held-out CE; the whole model at cpu-demo's 5e-3 falls apart); held-out
    # CE falls ~9% and top-1 agreement rises in 40 steps (docs/benchmarks.md).
    "cpu-pretrained": dict(student_init="pretrained", train_last_layers=2, prompts=96, eval_prompts=32, batch_size=8,
                           lr=3e-4, min_lr_ratio=0.1, warmup_steps=5, max_steps=40, eval_every=10,
                           checkpoint_every=20, device="cpu", precision="fp32"),
    # One GPU: the real SmolLM2-135M-Instruct from Qwen2.5-Coder-0.5B-Instruct, bf16 autocast.
    "gpu": dict(student_init="pretrained", batch_size=32, lr=5e-5, min_lr_ratio=0.1, warmup_steps=20,
                max_steps=300, eval_every=50, checkpoint_every=100, device="cuda", precision="bf16"),
}


def preset(name: str, **overrides: Any) -> DistillConfig:
    """The config of preset ``name`` (:data:`PRESETS`) with ``overrides`` applied.

    >>> preset("cpu-demo", loss="uld", max_steps=10).max_steps
    10
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return DistillConfig(**{**PRESETS[name], **overrides})
