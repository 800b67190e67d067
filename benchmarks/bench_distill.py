"""The distillation runner on this machine: cpu-demo steps/s and tokens/s, the ULD loss's share of a
training step, and the teacher cache against running the teacher every step. Side by side, in
one run (interleaved repeats, medians):

    python benchmarks/bench_distill.py [--steps 30] [--repeats 5] [--only-steps]

1. a cpu-demo training step (batch of the preset) under ``ce``, ``ce+uld``, ``uld`` and ``hybrid``,
   interleaved: seconds/step, answer tokens/s; the ULD part's share = its own forward + backward
   time within a ``ce+uld`` step (timed separately on the same rows) over the step; the hybrid
   step (``hybrid_top_k`` from the cache) against the ULD step (the target: at most 1.5x);
2. the teacher's part of a step: reading the cached rows (sorted top-k + tail) vs running the
   teacher (Qwen2.5-Coder-0.5B) forward on the same batch's answers and taking its top-k;
3. a whole cpu-demo run (``--steps`` steps, evals included) through ``train``: steps/s, tokens/s;
4. the cpu-pretrained preset (SmolLM2-135M-Instruct, its last ``train_last_layers`` layers trained
   from the cached trunk activations) next to cpu-demo, interleaved on the same batch indices:
   seconds per step (``ce``, ``ce+uld``), the same model trained whole and the frozen model's
   forward alone (the floor of any method that runs the trunk every step, LoRA included), the
   trunk cache's one-time build; then the preset's whole run through ``train`` (``--loss ce``,
   ``--pretrained-steps``): held-out CE / top-1 before -> after, wall time.

    python benchmarks/bench_distill.py --only pretrained    # section 4 alone
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from machine import cpu_name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30, help="steps of the whole-run measurement")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repeats of the step measurements")
    ap.add_argument("--pretrained-steps", type=int, default=0, help="steps of the cpu-pretrained run (0: the preset's)")
    ap.add_argument("--only", choices=["demo", "pretrained"], help="run sections 1-3 (demo) or 4 (pretrained) only")
    ap.add_argument("--only-steps", action="store_true", help="measure the steps only (1., and 4. without its run)")
    args = ap.parse_args()
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads; torch {torch.__version__}; "
          f"load average {' '.join(f'{x:.1f}' for x in _load())}")
    if args.only != "pretrained":
        demo(args)
    if args.only != "demo":
        pretrained(args)
    print(f"\nload average at the end {' '.join(f'{x:.1f}' for x in _load())}")


def _load() -> tuple[float, ...]:
    try:
        import os

        return os.getloadavg()
    except OSError:
        return ()


def _uld_part(net, b, prep, cfg) -> float:
    """Seconds of the ULD part of a step alone: ``loss_sums(..., parts=["uld"])`` (what the step runs
    for it: the pairs' rows of the logits, the teacher's cached rows, the estimate) forward and
    backward into the logits, from the model's logits computed beforehand without a graph."""
    from uld_explorer.distill.losses import loss_sums

    with torch.no_grad():
        z = net(b.input_ids, b.attention_mask, b.positions, b.hidden if net.train_last_layers else None).float()
    z.requires_grad_(True)
    t = time.perf_counter()
    loss_sums(z, b, prep.cache, cfg, prep.match, parts=["uld"])["uld"].backward()
    return time.perf_counter() - t


def _uld_probs_part(net, b, prep, cfg) -> float:
    """The same pairs' ULD estimate from their probabilities (``uld_top_k`` on ``torch.softmax`` of
    the rows, computed beforehand), forward and backward into the probabilities: what the part
    from logits is held against (the goal: within 1.3x)."""
    from uld_explorer import uld_top_k

    with torch.no_grad():
        z = net(b.input_ids, b.attention_mask, b.positions, b.hidden if net.train_last_layers else None).float()
        q = torch.softmax(z[b.pair_s] / cfg.student_temperature, -1)
    q.requires_grad_(True)
    values, tail = prep.cache.values[b.pair_t], prep.cache.tail[b.pair_t]
    t = time.perf_counter()
    uld_top_k(values, tail, q, student_temperature=cfg.student_temperature).value.sum().backward()
    return time.perf_counter() - t


def demo(args: argparse.Namespace) -> None:

    from uld_explorer.distill.config import preset
    from uld_explorer.distill.batch import make_batch
    from uld_explorer.distill.loop import batch_indices, train
    from uld_explorer.distill.losses import combine, loss_sums
    from uld_explorer.distill.prepare import prepare
    from uld_explorer.distill.student import AnswerLogits, small_student
    from uld_explorer.zoo import load

    cfg = preset("cpu-demo")
    t0 = time.perf_counter()
    prep = prepare(cfg, progress=False)
    print(f"prepare (tokenizers, answers, examples, teacher cache read): {time.perf_counter() - t0:.2f} s; "
          f"{len(prep.train)} training answers, batch {cfg.batch_size}")

    # 1. one training step under ce and ce+uld, interleaved
    model = small_student(prep.student_tokenizer, prep.V_s, cfg.student_layers, cfg.student_hidden, 0)
    net = AnswerLogits(model)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    batches = [make_batch([prep.train[i] for i in idx], [prep.train_rows[i] for i in idx], cfg.alignment, cfg.merge, 0)
               for idx in (batch_indices(len(prep.train), cfg.batch_size, 0, s) for s in range(args.repeats))]

    def step(loss: str, b) -> float:
        c = cfg.replace(loss=loss)
        t = time.perf_counter()
        logits = net(b.input_ids, b.attention_mask, b.positions)
        total, _ = combine(loss_sums(logits, b, prep.cache, c, prep.match), b.n_tokens, b.n_pairs, c)
        total.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    def uld_part(b) -> float:
        return _uld_part(net, b, prep, cfg.replace(loss="ce+uld"))

    step("ce+uld", batches[0])  # warm-up
    step("hybrid", batches[0])
    times: dict[str, list[float]] = {"ce": [], "ce+uld": [], "uld part": [], "uld from probs": [], "uld": [],
                                     "hybrid": []}
    for b in batches:
        times["ce"].append(step("ce", b))
        times["ce+uld"].append(step("ce+uld", b))
        times["uld part"].append(uld_part(b))
        times["uld from probs"].append(_uld_probs_part(net, b, prep, cfg))
        times["uld"].append(step("uld", b))
        times["hybrid"].append(step("hybrid", b))
    tokens = statistics.median(b.n_tokens for b in batches)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n1. one step, batch {cfg.batch_size} (~{tokens:.0f} answer tokens), median of {args.repeats}:")
    print(f"   ce      {med['ce']:.3f} s/step  {tokens / med['ce']:7.0f} tokens/s")
    print(f"   ce+uld  {med['ce+uld']:.3f} s/step  {tokens / med['ce+uld']:7.0f} tokens/s  ({med['ce+uld'] / med['ce']:.2f}x ce)")
    print(f"   the ULD part (loss_sums' uld from the logits rows, forward + backward): {med['uld part']:.3f} s = "
          f"{med['uld part'] / med['ce+uld']:.0%} of a ce+uld step")
    ratios = [a / b for a, b in zip(times["uld part"], times["uld from probs"])]
    print(f"   the same pairs from their probabilities (uld_top_k on the rows' softmax, forward + backward): "
          f"{med['uld from probs']:.3f} s; from logits / from probabilities, per batch: median "
          f"{statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}; goal <= 1.3)")
    print(f"   uld     {med['uld']:.3f} s/step  {tokens / med['uld']:7.0f} tokens/s")
    print(f"   hybrid  {med['hybrid']:.3f} s/step  {tokens / med['hybrid']:7.0f} tokens/s  "
          f"({med['hybrid'] / med['uld']:.2f}x uld; hybrid_top_k from the cache, target <= 1.5x)")
    if args.only_steps:
        return

    # 2. the teacher: cache rows vs a forward per step
    teacher = load(cfg.teacher, progress=False)
    b, idx = batches[0], batch_indices(len(prep.train), cfg.batch_size, 0, 0)
    t = time.perf_counter()
    for _ in range(100):
        prep.cache.values.index_select(0, b.pair_t), prep.cache.tail.index_select(0, b.pair_t)
    cached = (time.perf_counter() - t) / 100
    fw = []
    for _ in range(max(2, args.repeats // 2)):
        t = time.perf_counter()
        with torch.inference_mode():
            for i in idx:  # what the cache replaces: the teacher on each answer, softmax, top-k
                ex = prep.train[i]
                z = teacher.model(input_ids=torch.tensor([ex.teacher.model_input_ids])).logits[0]
                torch.topk(torch.softmax(z.float(), -1), cfg.top_k)
        fw.append(time.perf_counter() - t)
    live = statistics.median(fw)
    print(f"\n2. the teacher's part of one step ({len(idx)} answers): cache rows {cached * 1e3:.2f} ms vs teacher "
          f"forward {live:.2f} s ({live / cached:,.0f}x); with the live teacher a ce+uld step would take "
          f"{med['ce+uld'] + live:.2f} s ({(med['ce+uld'] + live) / med['ce+uld']:.1f}x)")
    del teacher

    # 3. a whole cpu-demo run, evals included
    with tempfile.TemporaryDirectory() as d:
        c = cfg.replace(max_steps=args.steps, eval_every=max(args.steps // 3, 1), checkpoint_every=args.steps)
        t = time.perf_counter()
        train(c, Path(d) / "run", prepared=prep, progress=False)
        wall = time.perf_counter() - t
        from uld_explorer.distill.runs import read_metrics

        m = read_metrics(Path(d) / "run")
    tps = statistics.median(x["tokens_per_s"] for x in m if x.get("tokens_per_s"))
    evals = sum(x.get("eval_s", 0.0) for x in m)
    print(f"\n3. cpu-demo, {args.steps} steps through train(): {wall:.1f} s wall = {args.steps / wall:.2f} steps/s, "
          f"median {tps:.0f} answer tokens/s per step; {evals:.1f} s of it in {sum('eval_s' in x for x in m)} evals; "
          f"the preset's {cfg.max_steps} steps: ~{wall / args.steps * cfg.max_steps:.0f} s")



def pretrained(args: argparse.Namespace) -> None:
    """Section 4: cpu-pretrained next to cpu-demo (one step each, interleaved), then its run."""
    import copy

    from uld_explorer.distill.batch import make_batch
    from uld_explorer.distill.config import preset
    from uld_explorer.distill.loop import batch_indices, train
    from uld_explorer.distill.losses import combine, loss_sums
    from uld_explorer.distill.prepare import prepare
    from uld_explorer.distill.runs import read_metrics
    from uld_explorer.distill.student import AnswerLogits, small_student
    from uld_explorer.distill.trunk_cache import build_trunk_cache
    from uld_explorer.zoo import load

    cfg = preset("cpu-pretrained")
    demo_cfg = preset("cpu-demo")
    k = cfg.train_last_layers
    prep = prepare(cfg, progress=False)
    model = load(cfg.student, progress=False).model
    t = time.perf_counter()
    build_trunk_cache(model, k, [*prep.train, *prep.eval], progress=False)
    built = time.perf_counter() - t
    whole_model = copy.deepcopy(model)
    t = time.perf_counter()
    prep = prep.with_trunk(model, k, progress=False)  # read back (or built and saved)
    read = time.perf_counter() - t
    print(f"\n4. cpu-pretrained: {cfg.student}, its last {k} of {model.config.num_hidden_layers} layers + final norm "
          f"train from cached trunk activations; batch {cfg.batch_size} (cpu-demo: {demo_cfg.batch_size})")
    print(f"   trunk cache, once per student and dataset ({len(prep.train) + len(prep.eval)} answers): built in "
          f"{built:.1f} s; fingerprint + read back + check {read:.1f} s at every run's start")
    net = AnswerLogits(model, k)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=cfg.lr)
    whole = AnswerLogits(whole_model)
    whole_opt = torch.optim.AdamW(whole.parameters(), lr=cfg.lr)
    small = AnswerLogits(small_student(prep.student_tokenizer, prep.V_s, demo_cfg.student_layers,
                                       demo_cfg.student_hidden, 0))
    small_opt = torch.optim.AdamW(small.parameters(), lr=demo_cfg.lr)
    pad = prep.student_tokenizer.pad_token_id or 0

    def batch(step: int, size: int, hidden: bool):
        idx = batch_indices(len(prep.train), size, 0, step)
        return make_batch([prep.train[i] for i in idx], [prep.train_rows[i] for i in idx], cfg.alignment, cfg.merge,
                          pad, [prep.train_hidden[i] for i in idx] if hidden else None)

    def step(net, opt, loss: str, b) -> float:
        c = cfg.replace(loss=loss)
        t = time.perf_counter()
        logits = net(b.input_ids, b.attention_mask, b.positions, b.hidden if net.train_last_layers else None)
        total, _ = combine(loss_sums(logits, b, prep.cache, c, prep.match), b.n_tokens, b.n_pairs, c)
        total.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    def forward_only(b) -> float:
        t = time.perf_counter()
        with torch.no_grad():
            whole.model.base_model(input_ids=b.input_ids, attention_mask=b.attention_mask)
        return time.perf_counter() - t

    rows = {"cpu-demo, ce": [], "cpu-pretrained, ce": [], "cpu-pretrained, ce+uld": [],
            "cpu-pretrained, the ULD part of ce+uld": [],
            "SmolLM2 whole model trained, ce": [], "SmolLM2 frozen forward alone (no grad)": []}
    step(net, opt, "ce", batch(0, cfg.batch_size, True))  # warm-up
    step(small, small_opt, "ce", batch(0, demo_cfg.batch_size, False))
    for r in range(args.repeats):
        b = batch(r, cfg.batch_size, True)
        rows["cpu-demo, ce"].append(step(small, small_opt, "ce", batch(r, demo_cfg.batch_size, False)))
        rows["cpu-pretrained, ce"].append(step(net, opt, "ce", b))
        rows["cpu-pretrained, ce+uld"].append(step(net, opt, "ce+uld", b))
        rows["cpu-pretrained, the ULD part of ce+uld"].append(_uld_part(net, b, prep, cfg.replace(loss="ce+uld")))
        rows["SmolLM2 frozen forward alone (no grad)"].append(forward_only(b))
        if r < 2:  # seconds each: two are enough
            rows["SmolLM2 whole model trained, ce"].append(step(whole, whole_opt, "ce", b))
    b = batch(0, cfg.batch_size, True)
    print(f"   one step, median of {args.repeats} interleaved (2 for the whole model), batch {cfg.batch_size} "
          f"(~{b.n_tokens} answer tokens, {tuple(b.input_ids.shape)} inputs):")
    base = statistics.median(rows["cpu-demo, ce"])
    for name, v in rows.items():
        med = statistics.median(v)
        print(f"   {name:42s} {med:7.3f} s/step  {med / base:6.1f}x cpu-demo")
    share = statistics.median(rows["cpu-pretrained, the ULD part of ce+uld"]) / statistics.median(
        rows["cpu-pretrained, ce+uld"])
    print(f"   the ULD part is {share:.0%} of a cpu-pretrained ce+uld step")
    whole_opt.state.clear()  # its AdamW moments: 1 GB
    if args.only_steps:
        return

    steps = args.pretrained_steps or cfg.max_steps
    with tempfile.TemporaryDirectory() as d:
        c = cfg.replace(loss="ce", max_steps=steps, checkpoint_every=steps)
        t = time.perf_counter()
        train(c, Path(d) / "run", prepared=prep, progress=False)
        wall = time.perf_counter() - t
        m = read_metrics(Path(d) / "run")
    ev = [x for x in m if "eval_ce" in x]
    first, last = ev[0], ev[-1]
    print(f"\n   the preset's run, --loss ce, {steps} steps through train(): {wall:.0f} s wall (evals "
          f"{sum(x.get('eval_s', 0.0) for x in m):.0f} s, median step "
          f"{statistics.median(x['step_s'] for x in m if x.get('step_s')):.2f} s)")
    print("   held-out (32 answers): " + "; ".join(
        f"{key} {first[key]:.3f} -> {last[key]:.3f}" for key in ("eval_ce", "eval_top1", "eval_uld", "eval_kl_shared")))
    print("   trained answers:       " + "; ".join(f"{key} {first[key]:.3f} -> {last[key]:.3f}"
                                                 for key in ("seen_ce", "seen_top1")))
    print("   curve: " + ", ".join(f"step {x['step']}: CE {x['eval_ce']:.3f} top-1 {x['eval_top1']:.3f}" for x in ev))


if __name__ == "__main__":
    main()
