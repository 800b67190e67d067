"""Training only the student's last k layers from cached trunk activations (``train_last_layers``).

Fast: a tiny random Llama (GQA, tied embeddings, RoPE): the last-k forward from the cache equals
the full model's logits at the answer rows of a right-padded batch; only the top gets gradients;
the fingerprint follows the frozen weights, k and the inputs, not the trained top; the file is
read back, a damaged one rebuilt; an architecture that cannot be split exactly is refused.
Slow (the real SmolLM2-135M-Instruct and the shipped Qwen answers): the same equality on real
examples, and a 4-step ``cpu-pretrained`` run (8 answers held out): its step-0 metrics are the
untrained model's, its held-out CE does not rise, Ctrl-C + resume continues exactly, and its
final checkpoint, loaded whole by transformers, reproduces the metrics the run logged from the
cache.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import signal
import types

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel

from uld_explorer.distill.batch import make_batch
from uld_explorer.distill.config import PRESETS, DistillConfig, preset
from uld_explorer.distill.errors import DistillError
from uld_explorer.distill.student import AnswerLogits, top_parameters
from uld_explorer.distill.trunk_cache import build_trunk_cache, load_or_build_trunk_cache, trunk_fingerprint


def tiny_llama(layers: int = 3, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=61, hidden_size=64, intermediate_size=96, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                      max_position_embeddings=64, rope_theta=100.0)
    return LlamaForCausalLM(cfg).eval()


def example(ids: list[int], context: int):
    """What the trunk cache and make_batch read of an Example: the student's input ids, its context
    length and answer ids (the teacher side: one token per answer token, for the alignment)."""
    from uld_explorer.text.tokenize import Tokenized

    answer = ids[context:]
    s = Tokenized(text="x" * len(answer), ids=tuple(answer), strings=("x",) * len(answer),
                  byte_spans=tuple((i, i + 1) for i in range(len(answer))), bos_id=None, prompt="p",
                  prompt_ids=tuple(ids[:context]))
    return types.SimpleNamespace(student=s, teacher=s)


@pytest.fixture
def examples():
    g = torch.Generator().manual_seed(3)
    return [example(torch.randint(3, 61, (n,), generator=g).tolist(), c) for n, c in ((7, 3), (12, 5), (9, 2))]


def batch_of(examples, cache=None):
    rows, r = [], 0
    for ex in examples:
        rows.append(slice(r, r + len(ex.teacher.ids)))
        r += len(ex.teacher.ids)
    hidden = [cache.example(i) for i in range(len(examples))] if cache is not None else None
    return make_batch(examples, rows, "positional", "observed", 0, hidden)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_the_last_k_layers_from_the_cache_give_the_full_models_logits(examples, k):
    model = tiny_llama()
    whole = AnswerLogits(copy.deepcopy(model))
    cache = build_trunk_cache(model, k, examples, progress=False)
    assert cache.hidden.shape == (sum(len(e.student.model_input_ids) for e in examples), 64)
    # built from one right-padded batch = built one example at a time, unpadded
    alone = build_trunk_cache(model, k, examples, batch_size=1, progress=False)
    torch.testing.assert_close(cache.hidden, alone.hidden, rtol=1e-5, atol=1e-6)
    assert cache.offsets.tolist() == alone.offsets.tolist()
    net = AnswerLogits(model, k)
    b = batch_of(examples, cache)
    assert b.hidden.shape == (*b.input_ids.shape, 64) and not b.hidden[0, 7:].any()  # right padding: zeros
    want = whole(b.input_ids, b.attention_mask, b.positions)
    got = net(b.input_ids, b.attention_mask, b.positions, b.hidden)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # what trains: the last k layers and the final norm; not the embeddings (= the tied head)
    got.logsumexp(-1).sum().backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert grads == {n for n, p in model.named_parameters() if p.requires_grad}
    assert grads == {n for n, _ in model.named_parameters()
                     if n == "model.norm.weight" or any(n.startswith(f"model.layers.{i}.") for i in range(3 - k, 3))}


def test_the_fingerprint_follows_the_frozen_weights_k_and_the_inputs_not_the_top(examples):
    model = tiny_llama()
    fp = trunk_fingerprint(model, 1, examples)
    assert trunk_fingerprint(model, 1, examples) == fp
    assert trunk_fingerprint(model, 2, examples) != fp
    assert trunk_fingerprint(model, 1, examples[:2]) != fp
    with torch.no_grad():
        model.model.layers[2].mlp.up_proj.weight.add_(1.0)  # the trained top: the cache stays valid
        assert trunk_fingerprint(model, 1, examples) == fp
        model.model.layers[0].mlp.up_proj.weight.add_(1.0)  # the trunk: another cache
        assert trunk_fingerprint(model, 1, examples) != fp


def test_the_cache_is_read_back_and_a_damaged_file_rebuilt(examples, tmp_path, monkeypatch):
    from uld_explorer.zoo.cache import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    model = tiny_llama()
    first = load_or_build_trunk_cache(model, 2, examples, progress=False)
    path = tmp_path / "distill" / "trunk" / f"{first.fingerprint}.safetensors"
    assert path.is_file()
    stamp = path.stat().st_mtime_ns
    again = load_or_build_trunk_cache(model, 2, examples, progress=False)
    assert path.stat().st_mtime_ns == stamp and torch.equal(again.hidden, first.hidden)
    path.write_bytes(b"not safetensors")
    rebuilt = load_or_build_trunk_cache(model, 2, examples, progress=False)
    assert torch.equal(rebuilt.hidden, first.hidden) and path.stat().st_size > 100


class DoublingModel(LlamaModel):
    """A decoder whose forward does more than embed -> layers -> norm: it scales its input."""

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **kw):
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        return super().forward(inputs_embeds=2 * inputs_embeds, attention_mask=attention_mask, **kw)


def test_an_architecture_that_cannot_be_split_exactly_is_refused(examples):
    model = tiny_llama()
    doubling = DoublingModel(model.config)
    doubling.load_state_dict(model.model.state_dict())
    model.model = doubling
    with pytest.raises(DistillError, match="--train-last-layers 0"):
        build_trunk_cache(model, 1, examples, progress=False)


def test_train_last_layers_is_checked():
    assert DistillConfig().train_last_layers == 0  # every weight trains, as before
    with pytest.raises(ValueError, match="train_last_layers"):
        DistillConfig(train_last_layers=-1)
    with pytest.raises(ValueError, match="at most 2"):
        DistillConfig(student_init="small", student_layers=2, train_last_layers=3)
    with pytest.raises(DistillError, match="has 3 decoder layers"):
        top_parameters(tiny_llama(), 4)
    cfg = preset("cpu-pretrained")
    assert (cfg.student_init, cfg.device, cfg.precision) == ("pretrained", "cpu", "fp32")
    assert cfg.train_last_layers > 0 and "cpu-pretrained" in PRESETS


# ------------------------------------------------------------------ the real SmolLM2 (slow)


@pytest.fixture(scope="module")
def pretrained_prep(default_models):
    from uld_explorer.distill.prepare import prepare

    return prepare(preset("cpu-pretrained", eval_prompts=8), progress=False)  # 8 held out: quick evaluations


@pytest.mark.slow
def test_real_smollm2_last_k_equals_the_full_model(pretrained_prep):
    from uld_explorer.zoo import load

    model = load(pretrained_prep.config.student, progress=False).model
    k = pretrained_prep.config.train_last_layers
    examples = pretrained_prep.eval[:3]
    whole = AnswerLogits(copy.deepcopy(model))
    cache = build_trunk_cache(model, k, examples, progress=False)
    b = make_batch(examples, pretrained_prep.eval_rows[:3], "positional", "observed", 2,
                   [cache.example(i) for i in range(3)])
    with torch.no_grad():
        want = whole(b.input_ids, b.attention_mask, b.positions)
        got = AnswerLogits(model, k)(b.input_ids, b.attention_mask, b.positions, b.hidden)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_a_short_cpu_pretrained_run_learns_resumes_and_checkpoints_the_whole_model(pretrained_prep, tmp_path):
    from transformers import AutoModelForCausalLM

    from uld_explorer.distill import runs
    from uld_explorer.distill.evaluate import evaluate
    from uld_explorer.distill.loop import train
    from uld_explorer.distill.rundir import RunDir
    from uld_explorer.zoo import load

    cfg = preset("cpu-pretrained", loss="ce", max_steps=4, eval_every=2, checkpoint_every=100, eval_prompts=8)
    prep = dataclasses.replace(pretrained_prep, config=cfg)
    whole = train(cfg, tmp_path / "whole", prepared=prep, progress=False)
    m = runs.read_metrics(tmp_path / "whole")
    assert whole["state"] == "finished" and [d["step"] for d in m] == list(range(5))

    # step 0 is the untrained student, measured the slow way (the whole model, no cache)
    untrained = AnswerLogits(load(cfg.student, progress=False).model).eval()
    before = evaluate(untrained, prep, torch.device("cpu"), contextlib.nullcontext)
    for key in ("eval_ce", "eval_uld", "eval_top1", "eval_kl_shared"):
        assert m[0][key] == pytest.approx(before[key], rel=1e-4, abs=1e-5), key
    assert m[-1]["eval_ce"] <= m[0]["eval_ce"], [d.get("eval_ce") for d in m]

    # the final checkpoint is the whole model: transformers loads it, and it gives what the run logged
    ckpt = RunDir(tmp_path / "whole").latest_checkpoint()
    loaded = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    after = evaluate(AnswerLogits(loaded).eval(), prep, torch.device("cpu"), contextlib.nullcontext)
    for key in ("eval_ce", "eval_top1"):
        assert m[-1][key] == pytest.approx(after[key], rel=1e-4, abs=1e-5), key
    assert load(ckpt).model.config.num_hidden_layers == 30
    trained = dict(loaded.named_parameters())
    original = dict(untrained.model.named_parameters())
    k = cfg.train_last_layers
    for name, p in original.items():
        changed = not torch.equal(p, trained[name])
        assert changed == (name == "model.norm.weight" or any(name.startswith(f"model.layers.{i}.")
                                                               for i in range(30 - k, 30))), name

    # Ctrl-C at step 1, then --resume: the metrics of the uninterrupted run
    def interrupt(line):
        if line["step"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    assert train(cfg, tmp_path / "split", prepared=prep, progress=False, on_step=interrupt)["state"] == "stopped"
    assert train(cfg, tmp_path / "split", resume=True, prepared=prep, progress=False)["state"] == "finished"
    drop = {"tokens_per_s", "step_s", "elapsed_s", "eval_s"}
    assert ([{k: v for k, v in d.items() if k not in drop} for d in runs.read_metrics(tmp_path / "split")]
            == [{k: v for k, v in d.items() if k not in drop} for d in m])
