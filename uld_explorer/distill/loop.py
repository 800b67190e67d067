"""The training loop, on Hugging Face Accelerate: CPU, one GPU (bf16 autocast), DDP over processes.

Read :func:`train` top to bottom (nanoGPT's ``train.py`` style): the config (a resumed run's
own), the data (:func:`~.prepare.prepare`), the student and its optimizer (from the last
checkpoint when resuming), then one flat loop over the steps: eval and probe on eval steps,
this step's batch, lr, forward on the answer rows, loss, backward, clip, step, log, checkpoint.
The run directory and the failures are :class:`~.rundir.RunDir`'s (``with run.training(...)``
writes the statuses and turns out-of-memory, a full disk or a diverged loss into one message
naming the fix); :func:`batch_indices` and :func:`lr_at` are the loop's two pure functions.

The same code runs under ``accelerate launch --multi_gpu --num_processes N`` on GPUs and
``torchrun --nproc_per_node N`` (or ``accelerate launch`` with ``docs/accelerate/cpu-2-processes.yaml``)
on CPU processes (DDP): each process takes its share of the global batch and the loss is divided
by the GLOBAL token / pair counts, so the gradients equal the one-process gradients on the same
global batch. With ``fsdp`` the student is sharded instead of copied (:mod:`.sharding`: FSDP2),
and every process runs the eval (a sharded forward is collective). The teacher cache is built
sharded too: each process runs the teacher on its share of the answers (:mod:`.teacher_cache`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from typing import Any, Callable

import torch

from .config import DistillConfig
from .errors import DistillError
from .prepare import Prepared, prepare
from .rundir import RunDir

__all__ = ["train", "batch_indices", "lr_at", "device_and_precision"]


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """The global batch of step ``step``: positions ``step*B`` to ``step*B + B - 1`` of the stream of
    epochs, each epoch a permutation of ``range(n)`` drawn from ``seed`` and its number. A pure
    function of its arguments (resume needs no data-loader state).

    >>> sorted(batch_indices(4, 2, seed=0, step=0) + batch_indices(4, 2, seed=0, step=1))  # one epoch
    [0, 1, 2, 3]
    """
    out: list[int] = []
    pos = step * batch_size
    while len(out) < batch_size:
        epoch, off = divmod(pos + len(out), n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        take = min(batch_size - len(out), n - off)
        out += perm[off : off + take].tolist()
    return out


def lr_at(config: DistillConfig, step: int) -> float:
    """The learning rate of step ``step``: linear warm-up to ``lr``, then cosine down to
    ``lr * min_lr_ratio`` at ``max_steps``, then flat.

    >>> cfg = DistillConfig(lr=1e-2, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    >>> [round(lr_at(cfg, s), 6) for s in (0, 9, 60, 110, 500)]
    [0.001, 0.01, 0.0055, 0.001, 0.001]
    """
    lo = config.lr * config.min_lr_ratio
    # 1) linear warm-up for warmup_steps steps
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    # 2) after max_steps, the minimum
    if step > config.max_steps:
        return lo
    # 3) in between, cosine decay down to the minimum
    ratio = (step - config.warmup_steps) / max(config.max_steps - config.warmup_steps, 1)
    return lo + 0.5 * (config.lr - lo) * (1.0 + math.cos(math.pi * ratio))


def device_and_precision(config: DistillConfig) -> tuple[bool, str]:
    """Accelerate's ``(cpu, mixed_precision)`` for the config's device and precision.

    Raises
    ------
    DistillError
        ``device="cuda"`` without a visible CUDA GPU.
    """
    cuda = torch.cuda.is_available()
    if config.device == "cuda" and not cuda:
        raise DistillError("device 'cuda' asked for but no CUDA GPU is visible: use --device cpu (or auto), "
                           "e.g. with --preset cpu-demo")
    use_cuda = cuda and config.device in ("auto", "cuda")
    precision = config.precision if config.precision != "auto" else ("bf16" if use_cuda else "fp32")
    return (not use_cuda), ("bf16" if precision == "bf16" else "no")


def train(config: DistillConfig, run_dir: str | os.PathLike | RunDir, *, resume: bool = False, force: bool = False,
          preset: str | None = None, progress: bool = True, prepared: Prepared | None = None,
          on_step: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train the student; write the run directory as it goes (:class:`~.rundir.RunDir`), holding
    its lock throughout (:meth:`~.rundir.RunDir.lock`: one trainer per run directory).

    Parameters
    ----------
    config : DistillConfig
        With ``resume=True`` the run's own config is used (:meth:`~.rundir.RunDir.resumed`),
        except ``max_steps`` (pass a larger one to continue a finished run; the cosine schedule
        then follows the new length).
    run_dir : path or RunDir
        Created if missing. Without ``resume`` it must not hold a run already, nor files the
        runner did not write (:meth:`~.rundir.RunDir.check_new`).
    resume : bool
        Continue from the newest complete checkpoint (verified against its manifest; a damaged
        newer one is set aside and said so: stderr, the status, ``"note"``); the metrics lines
        after it are rewritten, so a run stopped at step k and resumed gives the metrics of an
        uninterrupted run.
    force : bool
        Start a new run even in a folder holding files the runner did not write.
    preset : str, optional
        Recorded in ``config.json`` (where the config came from).
    prepared : Prepared, optional
        Reuse :func:`~.prepare.prepare`'s output (tests, notebooks: several runs on one dataset).
    on_step : callable, optional
        Called with every metrics line (main process).

    Returns
    -------
    dict
        The last metrics line, plus ``"state"`` (finished | stopped), ``"checkpoint"`` (the last
        one), ``"resumed_from"`` (the checkpoint a resumed run started from) and ``"note"``.

    Raises
    ------
    DistillError
        With a message naming the problem and the fix (another trainer holds the run, bad run
        dir, no complete checkpoint, no CUDA, out of memory, disk full: the last good checkpoint
        is kept; a diverged loss).
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    # one trainer per run: the main process holds the lock, from before it reads anything to the end
    with run.lock(main=os.environ.get("RANK", "0") in ("", "0")):
        ckpt, damaged = None, []
        if resume:  # the run's own config (only max_steps may change), its newest complete checkpoint
            config, preset = run.resumed(config.max_steps)
            ckpt, damaged = run.resume_checkpoint()
        else:
            run.check_new(force=force)
        return _train(config, run, resume=resume, ckpt=ckpt, damaged=damaged, preset=preset, progress=progress,
                      prepared=prepared, on_step=on_step)


def _train(config: DistillConfig, run: RunDir, *, resume: bool, ckpt: Any, damaged: list, preset: str | None,
           progress: bool, prepared: Prepared | None,
           on_step: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    """:func:`train` once the run is locked, its config known and, resuming, its checkpoint chosen."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from .batch import make_batch
    from .evaluate import evaluate, probe
    from .losses import combine, loss_sums
    from .student import AnswerLogits, build_student
    from .teacher_cache import probe_context

    from .trackers import PROJECT, hyperparameters, loggable, trackers_for

    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        raise DistillError("the Accelerate config asks for DeepSpeed, which this runner does not drive: use "
                           "--fsdp (or docs/accelerate/fsdp-2-processes.yaml) to shard the weights, gradients and "
                           "optimizer state (FSDP2 shards all three, as ZeRO-3 does), or a config without DeepSpeed")
    cpu, mixed = device_and_precision(config)
    trackers = trackers_for(config.report_to, run.path)
    accelerator = Accelerator(cpu=cpu, mixed_precision=mixed, log_with=trackers or None, project_dir=str(run.path))
    if trackers:
        accelerator.init_trackers(PROJECT, config=hyperparameters(config))
    main, world, rank, device = (accelerator.is_main_process, accelerator.num_processes, accelerator.process_index,
                                 accelerator.device)
    # FSDP2 (.sharding) under several processes: --fsdp, or an Accelerate config of distributed_type FSDP
    # (Accelerate itself keeps FSDP for GPU process groups; its launcher still says so in the environment)
    by_accelerate = (str(accelerator.distributed_type).endswith("FSDP")
                     or os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true")
    fsdp = world > 1 and (config.fsdp or by_accelerate)
    if fsdp and not config.fsdp:
        try:
            config = config.replace(fsdp=True)  # recorded in config.json: a resume shards again
        except ValueError as err:
            raise DistillError(f"the Accelerate config asks for FSDP: {err}") from None
    if config.batch_size < world:
        raise DistillError(f"batch_size {config.batch_size} < {world} processes: every process needs an answer per step")
    if prepared is None:  # rank 0 builds the answers first; the teacher cache is built in shards by all
        from .teacher_cache import Processes

        prep = prepare(config, progress=progress and main,
                       processes=Processes(rank, world, accelerator.wait_for_everyone))
    else:
        prep = dataclasses.replace(prepared, config=config)
    tok_s = prep.student_tokenizer

    # the student and its optimizer, from the chosen checkpoint when resuming; with
    # train_last_layers = k, its frozen trunk's states per example (cached) and only its top trains
    model = build_student(config, tok_s, prep.V_s, progress=progress and main)
    start, elapsed = run.load_model(ckpt, model) if ckpt else (0, 0.0)
    if config.train_last_layers:
        prep = prep.with_trunk(model, config.train_last_layers, progress=progress and main)
    model.train()
    net = AnswerLogits(model, config.train_last_layers)
    if fsdp:  # else Accelerate's DDP
        from .sharding import full_model_state, full_optimizer_state, load_full_optimizer_state, local_norm, \
            shard_student

        net = shard_student(net.to(device), device, world)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=config.lr, betas=(0.9, 0.95),
                            weight_decay=config.weight_decay)
    if ckpt and fsdp:
        load_full_optimizer_state(net, opt, run.read_optimizer(ckpt))
    elif ckpt:
        run.load_optimizer(ckpt, opt)
    if fsdp:
        student, opt_p = net, opt
    else:
        net, opt_p = accelerator.prepare(net, opt)
        student = accelerator.unwrap_model(net)
    autocast = accelerator.autocast
    probe_ctx, pad = probe_context(tok_s, config.probe_prompt), tok_s.pad_token_id or 0

    line: dict[str, Any] = {}
    with run.training(config, preset=preset, data=prep.data_record(), resume=resume, start=start, checkpoint=ckpt,
                      damaged=damaged, main=main, world=world, device=device) as session, \
            tqdm(total=config.max_steps, initial=start, desc=f"distill {config.loss}", unit="step",
                 disable=not (progress and main)) as bar:
        if session.note:
            print(f"note: {session.note}", file=sys.stderr)
        for step in session.steps():  # start .. max_steps; a Ctrl-C ends it before a step (state stopped)
            line = {"step": step}
            # held-out metrics and the probe: the student after `step` updates
            if (main or fsdp) and (step % config.eval_every == 0 or step == config.max_steps):  # fsdp: all, collective
                t0 = time.perf_counter()
                net.eval()
                line.update(evaluate(student, prep, device, autocast))
                line.update(evaluate(student, prep, device, autocast, seen=True))
                probed = probe(student, prep, probe_ctx, device, autocast)
                if main:
                    run.append_probe({"step": step, **probed})
                net.train()
                line["eval_s"] = time.perf_counter() - t0
            # this step's global batch, this process's share; the global token and pair counts
            idx = batch_indices(len(prep.train), config.batch_size, config.seed, step)[rank::world]
            batch = make_batch([prep.train[i] for i in idx], [prep.train_rows[i] for i in idx], config.alignment,
                               config.merge, pad, [prep.train_hidden[i] for i in idx] if prep.train_hidden else None)
            counts = torch.tensor([batch.n_tokens, batch.n_pairs], dtype=torch.float64, device=device)
            n_tok, n_pair = (int(x) for x in accelerator.reduce(counts, "sum").tolist())
            training = step < config.max_steps  # the last line only measures the final student
            lr = lr_at(config, step)
            for g in opt.param_groups:
                g["lr"] = lr
            # forward on the answer rows, the loss, backward, clip, step
            t0 = time.perf_counter()
            with torch.set_grad_enabled(training), autocast():
                logits = net(batch.input_ids.to(device), batch.attention_mask.to(device), batch.positions.to(device),
                             batch.hidden_on(device))
            sums = loss_sums(logits, batch, prep.cache, config, prep.match)
            loss, _ = combine(sums, n_tok, n_pair, config)
            session.check_finite(float(loss.detach()))
            grad_norm = None
            if training:
                accelerator.backward(loss * world)  # DDP averages over processes: undo it
                # the global gradient's norm (clipped to grad_clip when > 0), logged
                if fsdp:
                    grad_norm = local_norm(torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip or math.inf))
                else:
                    grad_norm = float(accelerator.clip_grad_norm_(net.parameters(), config.grad_clip or math.inf))
                opt_p.step()
                opt_p.zero_grad(set_to_none=True)
            dt = time.perf_counter() - t0
            elapsed += dt
            # log: the global means of every part
            keys = sorted(sums)
            reduced = accelerator.reduce(torch.stack([sums[k].detach().double() for k in keys]).to(device), "sum")
            total, parts = combine(dict(zip(keys, reduced)), n_tok, n_pair, config)
            line.update({"loss": float(total), **parts, "grad_norm": grad_norm, "lr": lr if training else None,
                         "tokens": n_tok, "tokens_per_s": n_tok / dt if training else None,
                         "step_s": dt if training else None, "elapsed_s": elapsed})
            if trackers:
                accelerator.log(loggable(line), step=step)
            if main:
                run.append_metrics(line)
                if on_step is not None:
                    on_step(line)
                bar.set_postfix(loss=f"{line['loss']:.3f}")
            if not training:
                break
            bar.update(1)
            # checkpoint: the student after step + 1 updates
            done = step + 1
            if done % config.checkpoint_every == 0 or done == config.max_steps or session.stop_requested:
                accelerator.wait_for_everyone()
                if fsdp:  # the whole tensors, gathered on the main process (collective)
                    state, opt_state = full_model_state(net), full_optimizer_state(net, opt)
                    session.save_checkpoint(done, student.model, opt_state, tok_s, elapsed, model_state=state)
                else:
                    session.save_checkpoint(done, accelerator.unwrap_model(net).model, opt, tok_s, elapsed)
    accelerator.wait_for_everyone()
    if trackers:
        accelerator.end_training()
    if main and session.state == "finished" and session.checkpoint:  # the student as a HF folder, with its card
        from .card import model_card

        run.write_final(session.checkpoint, model_card(config, prep.data_record(), line, preset))
    return {**line, "state": session.state, "checkpoint": str(session.checkpoint) if session.checkpoint else None,
            "resumed_from": str(ckpt) if ckpt else None, "note": session.note}
