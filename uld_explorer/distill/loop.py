"""The training loop, on Hugging Face Accelerate: CPU, one GPU (bf16 autocast), DDP over processes.

Read it top to bottom (nanoGPT style): :func:`prepare` (tokenizers, the teacher's answers, the
examples, the teacher cache, the string match), :func:`train` (resume, then per step: eval and
probe on eval steps, lr, student forward on the answer rows, loss, backward, clip, step,
``zero_grad(set_to_none=True)``, log, checkpoint). The same code runs under
``accelerate launch --multi_gpu --num_processes N`` on GPUs, ``torchrun --nproc_per_node N`` on CPU
processes (DDP): each process takes its share of the
global batch and the loss is divided by the GLOBAL token / pair counts, so the gradients equal the
one-process gradients on the same global batch.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..memory import is_out_of_memory
from .config import DistillConfig
from .runs import append_jsonl, checkpoints, latest_checkpoint, truncate_jsonl, write_status

__all__ = ["DistillError", "Prepared", "prepare", "train", "batch_indices", "lr_at", "load_checkpoint_model"]

DATA_SPLIT_NOTE = "held-out: the last eval_prompts answered prompts"


class DistillError(RuntimeError):
    """A run cannot start or continue; the message says why and what to do (the CLI prints it alone)."""


@dataclass
class Prepared:
    """Everything a run reads besides the student: built once per config by :func:`prepare`."""

    config: DistillConfig
    train: list[Any]  # Example
    eval: list[Any]
    train_rows: list[slice]  # teacher cache rows of each example
    eval_rows: list[slice]
    cache: Any  # TeacherCache
    teacher_tokenizer: Any
    student_tokenizer: Any
    V_s: int
    teacher_bytes: list[bytes]
    student_bytes: list[bytes]
    match: Any  # StringMatch
    answers_fingerprint: str
    timings: dict[str, float] = field(default_factory=dict)


def _student_vocab_size(config: DistillConfig, tokenizer: Any) -> int:
    if config.student_init == "small":
        return len(tokenizer)
    from ..zoo.errors import UnknownModelError
    from ..zoo.registry import as_spec

    try:
        return as_spec(config.student).vocab_size
    except UnknownModelError:
        return len(tokenizer)  # checked against the loaded model's logits in train()


def prepare(config: DistillConfig, *, progress: bool = True) -> Prepared:
    """Tokenizers, answers (shipped / cached / generated), examples, teacher cache, string match."""
    from ..text.vocab import match_strings, vocab_bytes
    from ..zoo.vocabs import load_tokenizer
    from .data import answers_fingerprint, build_examples, load_answers, load_prompts
    from .teacher_cache import load_or_build_teacher_cache

    t0 = time.perf_counter()
    tok_t = load_tokenizer(config.teacher, progress=progress)
    tok_s = load_tokenizer(config.student, progress=progress)
    answers = load_answers(config.teacher, config.max_new_tokens, progress=progress)
    t1 = time.perf_counter()
    examples = build_examples(load_prompts(config.prompts), answers, tok_t, tok_s)
    if len(examples) < config.eval_prompts + 2:
        raise DistillError(f"only {len(examples)} answered prompts for {config.eval_prompts} held-out ones plus "
                           f"training: lower eval_prompts or raise prompts (0 = all)")
    fp = answers_fingerprint(config.teacher, config.max_new_tokens)
    cache = load_or_build_teacher_cache(config.teacher, examples, fp, config.teacher_temperature, config.top_k,
                                        config.probe_prompt, progress=progress)
    t2 = time.perf_counter()
    V_s = _student_vocab_size(config, tok_s)
    bytes_t, bytes_s = vocab_bytes(tok_t, cache.vocab_size), vocab_bytes(tok_s, V_s)
    if config.loss == "kl" and bytes_t != bytes_s:
        raise DistillError(
            f"loss 'kl' needs one shared tokenizer, but the teacher {config.teacher} ({len(bytes_t):,} tokens) and "
            f"the student {config.student} ({len(bytes_s):,} tokens) tokenize differently. Use --loss uld, ce+uld "
            f"or hybrid (made for different tokenizers), or a teacher with the student's tokenizer "
            f"(e.g. --teacher {config.student})")
    match = match_strings(bytes_t, bytes_s)
    rows = [cache.rows(e) for e in range(len(examples))]
    n_eval = config.eval_prompts
    return Prepared(config, examples[:-n_eval], examples[-n_eval:], rows[:-n_eval], rows[-n_eval:], cache, tok_t,
                    tok_s, V_s, bytes_t, bytes_s, match, fp,
                    {"answers_s": t1 - t0, "teacher_cache_s": t2 - t1, "prepare_s": time.perf_counter() - t0})


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """The global batch of step ``step``: positions ``step*B .. step*B + B - 1`` of the stream of
    epochs, each epoch a permutation of ``range(n)`` drawn from ``seed`` and its number. A pure
    function of its arguments (resume needs no data-loader state)."""
    out: list[int] = []
    pos = step * batch_size
    while len(out) < batch_size:
        epoch, off = divmod(pos + len(out), n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        take = min(batch_size - len(out), n - off)
        out += perm[off : off + take].tolist()
    return out


def lr_at(config: DistillConfig, step: int) -> float:
    """Linear warm-up to ``lr``, then cosine down to ``lr * min_lr_ratio`` at ``max_steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(config.max_steps - config.warmup_steps, 1)
    t = min(max(step - config.warmup_steps, 0) / span, 1.0)
    lo = config.lr * config.min_lr_ratio
    return lo + 0.5 * (config.lr - lo) * (1 + math.cos(math.pi * t))


# ---------------------------------------------------------------------------- checkpoints


def _save_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    from safetensors.torch import save_file

    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    save_file(tensors, str(path), metadata={"param_groups": json.dumps(sd["param_groups"]), "scalars": json.dumps(scalars)})


def _load_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    from safetensors import safe_open

    state: dict[int, dict[str, Any]] = {}
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        for key in f.keys():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = f.get_tensor(key)
    for key, v in json.loads(meta["scalars"]).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})


def _save_checkpoint(run_dir: Path, step: int, model: Any, opt: torch.optim.Optimizer, tokenizer: Any,
                     trainer: dict[str, Any], keep: int) -> Path:
    """Write ``checkpoints/step-NNNNNN`` under a temporary name, then rename it: a checkpoint
    exists complete or not at all. Older ones beyond ``keep`` are deleted afterwards."""
    root = run_dir / "checkpoints"
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        from ..zoo.hf import transformers_progress

        with transformers_progress(False):  # no "Writing model shards" bar at every checkpoint
            model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _save_optimizer(opt, tmp / "optimizer.safetensors")
        (tmp / "trainer.json").write_text(json.dumps(trainer), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        last = latest_checkpoint(run_dir)
        raise DistillError(f"could not write the checkpoint of step {step} in {root} ({err.strerror or err}); "
                           f"the last good checkpoint is {last.name if last else 'none'}. Free disk space, then "
                           f"resume with --resume") from None
    for old in checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint_model(ckpt: Path, model: Any) -> None:
    """Load ``model.safetensors`` of a checkpoint into ``model`` (tied weights may be absent)."""
    from safetensors.torch import load_file

    sd = load_file(str(ckpt / "model.safetensors"))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    if unexpected or set(missing) - tied:
        raise DistillError(f"checkpoint {ckpt} does not fit the student (missing {sorted(missing)[:3]}, "
                           f"unexpected {sorted(unexpected)[:3]}): the run's config changed?")
    if tied:
        model.tie_weights()


# ---------------------------------------------------------------------------- eval and probe


@torch.no_grad()
def evaluate(net: Any, prep: Prepared, device: torch.device, autocast: Any, *, seen: bool = False) -> dict[str, float]:
    """Metrics on held-out answers (``eval_*``): the loss and its parts, CE, ULD (from the cache,
    with its bound) over the training alignment's pairs; KL on the shared strings and top-1
    agreement with the teacher by token string over the answer tokens both tokenizers cut alike
    (the same bytes as one token each side: there the student can match the teacher's token). ``seen=True``: the same (without KL) on the first ``eval_prompts``
    TRAINING answers (``seen_*``), to see what the student fits apart from what generalises."""
    from .losses import combine, loss_sums, make_batch, shared_kl_sum

    cfg = prep.config
    parts = ["ce", "uld"] + [p for p in ("kl", "hybrid") if cfg.loss == p]
    tot: dict[str, float] = {}
    n_tok = n_pair = n_same = agree = 0
    kl_shared = 0.0
    pad = prep.student_tokenizer.pad_token_id or 0
    examples, rows_of = (prep.train, prep.train_rows) if seen else (prep.eval, prep.eval_rows)
    n = min(len(examples), cfg.eval_prompts)
    for a in range(0, n, cfg.batch_size):
        b = min(a + cfg.batch_size, n)
        batch = make_batch(examples[a:b], rows_of[a:b], cfg.alignment, cfg.merge, pad)
        with autocast():
            logits = net(batch.input_ids.to(device), batch.attention_mask.to(device), batch.positions.to(device))
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
    means = {k: v / (n_tok if k == "ce" else n_pair) for k, v in tot.items()}
    loss, _ = combine({k: torch.tensor(v) for k, v in tot.items()}, n_tok, n_pair, cfg)
    pre = "seen_" if seen else "eval_"
    out = {f"{pre}loss": float(loss), f"{pre}ce": means["ce"], f"{pre}uld": means["uld"],
           f"{pre}uld_bound": means["uld_bound"], f"{pre}top1": agree / max(n_same, 1)}
    if not seen:
        out["eval_kl_shared"] = kl_shared / max(n_same, 1)
    for p in ("kl", "hybrid"):
        if p in means:
            out[f"{pre}{p}"] = means[p]
    return out


@torch.no_grad()
def probe(net: Any, prep: Prepared, ctx: list[int], device: torch.device, autocast: Any) -> dict[str, Any]:
    """The student's and the teacher's top-k next tokens after the probe prompt."""
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


# ---------------------------------------------------------------------------- the loop


class _StopFlag:
    """SIGINT / SIGTERM ask the loop to stop after the current step (checkpoint, then exit); a
    second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread (a notebook thread, Streamlit): no handler
            pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _device_and_precision(config: DistillConfig) -> tuple[bool, str]:
    cuda = torch.cuda.is_available()
    if config.device == "cuda" and not cuda:
        raise DistillError("device 'cuda' asked for but no CUDA GPU is visible: use --device cpu (or auto), "
                           "e.g. with --preset cpu-demo")
    use_cuda = cuda and config.device in ("auto", "cuda")
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if use_cuda else "fp32"
    return (not use_cuda), ("bf16" if precision == "bf16" else "no")


def train(config: DistillConfig, run_dir: str | os.PathLike, *, resume: bool = False, preset: str | None = None,
          progress: bool = True, prepared: Prepared | None = None,
          on_step: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train the student; write the run directory as it goes (see :mod:`.runs`).

    Parameters
    ----------
    config : DistillConfig
        With ``resume=True`` the run's own ``config.json`` is used, except ``max_steps`` (pass a
        larger one to continue a finished run; the cosine schedule then follows the new length).
    run_dir : path
        Created if missing. Without ``resume`` it must not hold a run already.
    resume : bool
        Continue from the last complete checkpoint; the metrics lines after it are rewritten, so a
        run stopped at step k and resumed gives the metrics of an uninterrupted run.
    prepared : Prepared, optional
        Reuse :func:`prepare`'s output (tests, notebooks: several runs on one dataset).
    on_step : callable, optional
        Called with every metrics line (main process).

    Returns
    -------
    dict
        The last metrics line, plus ``"state"`` (finished | stopped) and ``"checkpoint"``.

    Raises
    ------
    DistillError
        With a message naming the problem and the fix (bad run dir, no CUDA, out of memory, disk
        full: the last good checkpoint is kept).
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from .losses import combine, loss_sums, make_batch
    from .student import AnswerLogits, small_student
    from .teacher_cache import probe_context

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    ckpt = None
    if resume:
        if not cfg_path.is_file():
            raise DistillError(f"nothing to resume in {run_dir}: it has no config.json (start a run there without --resume)")
        saved = json.loads(cfg_path.read_text(encoding="utf-8"))
        preset = saved.get("preset")
        config = DistillConfig.from_dict({**saved["config"], "max_steps": config.max_steps})
        ckpt = latest_checkpoint(run_dir)
    elif cfg_path.exists():
        raise DistillError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --run-dir")
    cpu, mixed = _device_and_precision(config)
    accelerator = Accelerator(cpu=cpu, mixed_precision=mixed)
    main = accelerator.is_main_process
    world, rank = accelerator.num_processes, accelerator.process_index
    if config.batch_size < world:
        raise DistillError(f"batch_size {config.batch_size} < {world} processes: every process needs an answer per step")
    device = accelerator.device
    prep = prepared if prepared is not None else prepare(config, progress=progress and main)
    if prepared is not None:
        prep = Prepared(**{**prep.__dict__, "config": config})

    # 1. the student
    tok_s = prep.student_tokenizer
    if config.student_init == "small":
        model = small_student(tok_s, prep.V_s, config.student_layers, config.student_hidden, config.seed)
    else:
        from ..zoo.loader import load

        model = load(config.student, progress=progress and main).model
        if model.get_output_embeddings().weight.shape[0] != prep.V_s:
            raise DistillError(f"the student's logits have {model.get_output_embeddings().weight.shape[0]:,} entries, "
                               f"its tokenizer {prep.V_s:,}")
    start = 0
    elapsed0 = 0.0
    if ckpt is not None:
        load_checkpoint_model(ckpt, model)
        trainer_state = json.loads((ckpt / "trainer.json").read_text(encoding="utf-8"))
        start, elapsed0 = int(trainer_state["step"]), float(trainer_state.get("elapsed_s", 0.0))
    model.train()
    net = AnswerLogits(model)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay)
    if ckpt is not None:
        _load_optimizer(opt, ckpt / "optimizer.safetensors")
    net, opt_p = accelerator.prepare(net, opt)
    unwrapped = accelerator.unwrap_model(net)
    autocast = accelerator.autocast

    # 2. the run directory
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            cfg_path.write_text(json.dumps({"config": config.to_dict(), "preset": preset, "created": time.time(),
                                            "data": {"train": len(prep.train), "eval": len(prep.eval),
                                                     "split": DATA_SPLIT_NOTE,
                                                     "teacher_cache": prep.cache.fingerprint,
                                                     "answers": prep.answers_fingerprint}}, indent=1),
                                encoding="utf-8")
        else:
            saved["config"]["max_steps"] = config.max_steps
            cfg_path.write_text(json.dumps(saved, indent=1), encoding="utf-8")
        truncate_jsonl(run_dir / "metrics.jsonl", start)
        truncate_jsonl(run_dir / "probe.jsonl", start)
        write_status(run_dir, "running", step=start, max_steps=config.max_steps, world=world,
                     device=str(device), message="")
    probe_ctx = probe_context(tok_s, config.probe_prompt)
    pad = tok_s.pad_token_id or 0
    n_train = len(prep.train)
    last_ckpt = ckpt
    line: dict[str, Any] = {}
    state = "finished"
    elapsed = elapsed0
    bar = tqdm(total=config.max_steps, initial=start, desc=f"distill {config.loss}", unit="step",
               disable=not (progress and main))
    try:
        with _StopFlag() as stop:
            for step in range(start, config.max_steps + 1):
                if stop.requested:  # (a Ctrl-C before the first step stops before it: nothing new to save)
                    state = "stopped"
                    break
                line = {"step": step}
                # 3. held-out metrics and the probe (the student after `step` updates)
                if main and (step % config.eval_every == 0 or step == config.max_steps):
                    t0 = time.perf_counter()
                    net.eval()
                    line.update(evaluate(unwrapped, prep, device, autocast))
                    line.update(evaluate(unwrapped, prep, device, autocast, seen=True))
                    pr = probe(unwrapped, prep, probe_ctx, device, autocast)
                    net.train()
                    line["eval_s"] = time.perf_counter() - t0
                    append_jsonl(run_dir / "probe.jsonl", {"step": step, **pr})
                # 4. this step's global batch, this process's share
                idx = batch_indices(n_train, config.batch_size, config.seed, step)[rank::world]
                batch = make_batch([prep.train[i] for i in idx], [prep.train_rows[i] for i in idx], config.alignment,
                                   config.merge, pad)
                counts = torch.tensor([batch.n_tokens, batch.n_pairs], dtype=torch.float64, device=device)
                n_tok, n_pair = (int(x) for x in accelerator.reduce(counts, "sum").tolist())
                training = step < config.max_steps
                lr = lr_at(config, step)
                for g in opt.param_groups:
                    g["lr"] = lr
                t0 = time.perf_counter()
                # 5. student forward on the answer rows, the loss, backward, clip, step
                with torch.set_grad_enabled(training), autocast():
                    logits = net(batch.input_ids.to(device), batch.attention_mask.to(device), batch.positions.to(device))
                sums = loss_sums(logits, batch, prep.cache, config, prep.match)
                loss, _ = combine(sums, n_tok, n_pair, config)
                if not torch.isfinite(loss.detach()):
                    raise DistillError(f"the loss is {float(loss)} at step {step}: training diverged; lower --lr "
                                       f"(now {config.lr:g}) and resume from the last checkpoint with --resume, or "
                                       f"start again")
                grad_norm = None
                if training:
                    accelerator.backward(loss * world)  # DDP averages over processes: undo it
                    # the global gradient's norm (clipped to grad_clip when > 0), logged
                    grad_norm = float(accelerator.clip_grad_norm_(net.parameters(), config.grad_clip or math.inf))
                    opt_p.step()
                    opt_p.zero_grad(set_to_none=True)
                dt = time.perf_counter() - t0
                # 6. log: global means of every part
                keys = sorted(sums)
                reduced = accelerator.reduce(torch.stack([sums[k].detach().double() for k in keys]).to(device), "sum")
                total, parts = combine(dict(zip(keys, reduced)), n_tok, n_pair, config)
                elapsed += dt
                line.update({"loss": float(total), **parts, "grad_norm": grad_norm, "lr": lr if training else None,
                             "tokens": n_tok,
                             "tokens_per_s": n_tok / dt if training else None, "step_s": dt if training else None,
                             "elapsed_s": elapsed})
                if main:
                    append_jsonl(run_dir / "metrics.jsonl", line)
                    if on_step is not None:
                        on_step(line)
                    bar.set_postfix(loss=f"{line['loss']:.3f}")
                if not training:
                    break
                bar.update(1)
                # 7. checkpoint (the student after step + 1 updates)
                done = step + 1
                if done % config.checkpoint_every == 0 or done == config.max_steps or stop.requested:
                    accelerator.wait_for_everyone()
                    if main:
                        last_ckpt = _save_checkpoint(run_dir, done, accelerator.unwrap_model(net).model, opt, tok_s,
                                                     {"step": done, "elapsed_s": elapsed}, config.keep_checkpoints)
                        write_status(run_dir, "running", step=done, max_steps=config.max_steps, world=world,
                                     device=str(device), message="")
    except DistillError as err:
        if main:
            write_status(run_dir, "failed", step=line.get("step", start), max_steps=config.max_steps, message=str(err))
        raise
    except (RuntimeError, MemoryError) as err:
        if not is_out_of_memory(err):
            if main:
                write_status(run_dir, "failed", step=line.get("step", start), max_steps=config.max_steps,
                             message=f"{type(err).__name__}: {err}")
            raise
        msg = (f"out of memory at step {line.get('step', start)} ({type(err).__name__}); the last good checkpoint "
               f"is {last_ckpt.name if last_ckpt else 'none'}. Lower --batch-size (now {config.batch_size}) or the "
               f"student's size, then resume with --resume")
        if main:
            write_status(run_dir, "failed", step=line.get("step", start), max_steps=config.max_steps, message=msg)
        raise DistillError(msg) from None
    except OSError as err:
        msg = (f"could not write to {run_dir} ({err.strerror or err}); the last good checkpoint is "
               f"{last_ckpt.name if last_ckpt else 'none'}. Free disk space, then resume with --resume")
        if main:
            try:
                write_status(run_dir, "failed", step=line.get("step", start), max_steps=config.max_steps, message=msg)
            except OSError:
                pass
        raise DistillError(msg) from None
    finally:
        bar.close()
    if main:
        # a stopped run's step is the checkpoint's: the updates done (the last line logged is one before)
        done = int(last_ckpt.name.split("-")[1]) if state == "stopped" and last_ckpt else line.get("step", start)
        msg = "" if state == "finished" else f"stopped at step {done}: continue with --resume"
        write_status(run_dir, state, step=done, max_steps=config.max_steps, world=world,
                     device=str(device), message=msg)
    accelerator.wait_for_everyone()
    return {**line, "state": state, "checkpoint": str(last_ckpt) if last_ckpt else None}
