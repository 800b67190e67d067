"""Everything a run reads besides the student, built once per config: :func:`prepare` -> :class:`Prepared`.

Tokenizers (each side its own), the teacher's answers (shipped, cached or generated), the
examples (prompt + answer tokenized by both), the held-out split, the teacher cache (sorted top-k
+ tail per answer position, :mod:`.teacher_cache`) and the string match of the two vocabularies.
A loss whose registry entry needs one shared tokenizer (:attr:`~.losses.Loss.shared_tokenizer`)
is refused here, before anything trains, when the two tokenize differently.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import ExplorerError
from .config import DistillConfig
from .errors import DistillError
from .losses import LOSSES

__all__ = ["Prepared", "prepare", "check_context", "check_memory_for", "check_shared_tokenizer", "context_length",
           "model_bytes", "DATA_SPLIT_NOTE"]

#: How the examples are split (recorded in a run's ``config.json``).
DATA_SPLIT_NOTE = "held-out: the last eval_prompts answered prompts"


@dataclass
class Prepared:
    """Everything a run reads besides the student: built once per config by :func:`prepare`.

    ``train`` / ``eval`` are the examples (:class:`~.data.Example`) and ``train_rows`` /
    ``eval_rows`` their teacher cache rows; ``V_s`` the student's vocabulary size (its logits'
    width); ``teacher_bytes`` / ``student_bytes`` each vocabulary's token bytes; ``match`` their
    shared strings (:class:`~uld_explorer.text.vocab.StringMatch`). ``train_hidden`` /
    ``eval_hidden``: each example's frozen-trunk states, (L, H), once the student is known
    (:meth:`with_trunk`, ``train_last_layers > 0``), else None.
    """

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
    train_hidden: list[Any] | None = None  # tensors (L, H) per example
    eval_hidden: list[Any] | None = None
    trunk_fingerprint: str = ""

    def data_record(self) -> dict[str, Any]:
        """What ``config.json`` records about the data: sizes, the split, the fingerprints."""
        return {"train": len(self.train), "eval": len(self.eval), "split": DATA_SPLIT_NOTE,
                "teacher_cache": self.cache.fingerprint, "answers": self.answers_fingerprint,
                **({"trunk_cache": self.trunk_fingerprint} if self.trunk_fingerprint else {})}

    def with_trunk(self, model: Any, k: int, *, progress: bool = True) -> Prepared:
        """A copy holding ``model``'s frozen-trunk states for every example (``k`` layers on top;
        read from the cache or computed once: :func:`~.trunk_cache.load_or_build_trunk_cache`)."""
        from .trunk_cache import load_or_build_trunk_cache

        t0 = time.perf_counter()
        trunk = load_or_build_trunk_cache(model, k, [*self.train, *self.eval], progress=progress)
        n = len(self.train)
        return dataclasses.replace(self, train_hidden=[trunk.example(i) for i in range(n)],
                                   eval_hidden=[trunk.example(n + i) for i in range(len(self.eval))],
                                   trunk_fingerprint=trunk.fingerprint,
                                   timings={**self.timings, "trunk_cache_s": time.perf_counter() - t0})


def student_vocab_size(config: DistillConfig, tokenizer: Any) -> int:
    """The width of the student's logits: its tokenizer's size for the ``small`` student, the
    zoo's recorded vocabulary for a pretrained one (checked against the loaded model later)."""
    if config.student_init == "small":
        return len(tokenizer)
    from ..zoo.errors import UnknownModelError
    from ..zoo.registry import as_spec

    try:
        return as_spec(config.student).vocab_size
    except UnknownModelError:
        return len(tokenizer)  # checked against the loaded model's logits in build_student


def check_shared_tokenizer(config: DistillConfig, bytes_t: list[bytes], bytes_s: list[bytes]) -> None:
    """``DistillError`` when ``config.loss`` needs one shared tokenizer (its registry entry) and the
    two vocabularies (``bytes_t``, ``bytes_s``: each token's bytes) differ; the message names the
    losses made for different tokenizers."""
    if LOSSES[config.loss].shared_tokenizer and bytes_t != bytes_s:
        others = [k for k, loss in LOSSES.items() if loss.uses_teacher and not loss.shared_tokenizer]
        others = ", ".join(others[:-1]) + " or " + others[-1] if len(others) > 1 else "".join(others)
        raise DistillError(
            f"loss '{config.loss}' needs one shared tokenizer, but the teacher {config.teacher} ({len(bytes_t):,} "
            f"tokens) and the student {config.student} ({len(bytes_s):,} tokens) tokenize differently. Use --loss "
            f"{others} (made for different tokenizers), or a teacher with the "
            f"student's tokenizer (e.g. --teacher {config.student})")


def context_length(name: str) -> int | None:
    """A model's context (``max_position_embeddings`` of its ``config.json``): a zoo model's folder
    or a local folder; None when it cannot be told (not fetched yet, a hub id)."""
    import json
    from pathlib import Path

    from ..zoo.errors import UnknownModelError

    try:
        from ..zoo.cache import model_dir

        folder = model_dir(name)
    except UnknownModelError:
        folder = Path(name)
    try:
        n = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("max_position_embeddings")
    except (OSError, ValueError):
        return None
    return int(n) if isinstance(n, int) and n > 0 else None


def model_bytes(name: str) -> int | None:
    """The bytes a model's weights take loaded in float32: a zoo model's parameters x 4, a local
    folder's safetensors files (x 2 when stored in 16 bits); None when it cannot be told."""
    import json
    from pathlib import Path

    from ..zoo.errors import UnknownModelError
    from ..zoo.registry import as_spec

    try:
        return as_spec(name).params * 4
    except UnknownModelError:
        pass
    folder = Path(name)
    files = list(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return None
    try:
        dtype = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("torch_dtype", "float32")
    except (OSError, ValueError):
        dtype = "float32"
    return sum(f.stat().st_size for f in files) * (2 if dtype in ("bfloat16", "float16") else 1)


def check_memory_for(config: DistillConfig, available: int | None = None, processes: int = 1) -> None:
    """``DistillError`` before anything loads when the teacher (loaded for its answers and cache) or
    the student in training (weights, gradients and AdamW's two moments: 4x its float32 weights;
    1.2x with ``train_last_layers``, whose trunk is frozen; divided by the processes under
    ``fsdp``, which shards them) would not fit in ``available`` bytes (default: what the kernel says
    is available; no check where unknown), once per process on this machine (``processes``:
    each loads its own teacher and student). The message says what each needs and what to change."""
    from ..memory import available_memory_bytes

    available = available_memory_bytes() if available is None else available
    teacher = model_bytes(config.teacher)
    student = model_bytes(config.student) if config.student_init == "pretrained" else None
    if available is None:
        return
    gib = lambda n: f"{n / 2**30:.1f} GiB"  # noqa: E731
    each = f" for each of {processes} processes" if processes > 1 else ""
    if teacher is not None and 1.2 * teacher * processes > 0.9 * available:
        raise DistillError(f"the teacher {config.teacher} needs about {gib(1.2 * teacher)} in float32{each} and "
                           f"{gib(available)} is available: free memory, use fewer processes or pick a smaller teacher")
    if student is not None:
        factor = 1.2 if config.train_last_layers else 4.0
        shards = processes if config.fsdp else 1
        need = lambda f: (1.0 + (f - 1.0) / shards) * student * processes  # noqa: E731 - weights whole once gathered
        if need(factor) > 0.9 * available:
            hint = ("; --train-last-layers 2 trains only the top layers (about "
                    f"{gib(need(1.2))})" if not config.train_last_layers and need(1.2) <= 0.9 * available else "")
            raise DistillError(f"training the student {config.student} needs about {gib(need(factor))} (weights, "
                               f"gradients, AdamW's moments{', sharded' if shards > 1 else ''}){f' in all for its {processes} processes' if processes > 1 else ''} and {gib(available)} is "
                               f"available{hint}; or a smaller student (--student-init small)")


def check_context(config: DistillConfig, prompts: list[Any], tokenizers: tuple[Any, Any]) -> None:
    """``DistillError`` naming the first prompt whose rendered form leaves no room for the answer
    (``max_new_tokens``) in a model's context, before anything is generated."""
    from ..text.tokenize import tokenize_with_offsets
    from .data import render_prompt

    for (role, name), tok in zip((("teacher", config.teacher), ("student", config.student)), tokenizers):
        n_ctx = context_length(name)
        if n_ctx is None:
            continue
        for p in prompts:
            n = len(tokenize_with_offsets(tok, "x", prompt=render_prompt(tok, p.chat)).context_ids)
            if n + config.max_new_tokens > n_ctx:
                where = f"{config.data} {p.id}" if config.data else f"prompt {p.id}"
                raise DistillError(f"{where}: the prompt is {n:,} tokens for the {role} ({name}) and the answer may "
                                   f"take {config.max_new_tokens}, beyond its context of {n_ctx:,} tokens; shorten "
                                   f"or remove it")


def prepare(config: DistillConfig, *, progress: bool = True, processes: Any = None) -> Prepared:
    """Tokenizers, answers (shipped / cached / generated), examples, teacher cache, string match.

    Under several ``processes`` (:class:`~.teacher_cache.Processes`; every one calls this) the main
    process reads or generates the answers first and the others then read them; the teacher cache
    is built by all, each on its share of the answers.

    Raises
    ------
    DistillError
        A teacher or student the zoo cannot load (the message names the option); too few
        answered prompts for the held-out split; a loss that needs one shared tokenizer
        on two that differ (the message names the losses made for different tokenizers).
    """
    from ..text.vocab import match_strings, vocab_bytes
    from .data import answers_fingerprint, build_examples
    from .teacher_cache import Processes, load_or_build_teacher_cache

    processes = processes or Processes()
    t0 = time.perf_counter()
    check_memory_for(config, processes=_local_processes(processes.world))
    if not processes.main:
        processes.wait()  # the main process goes first: it fetches, converts and generates what is missing
    try:
        tok_t, tok_s, prompts, answers = _answers(config, progress)
    finally:
        if processes.main:
            processes.wait()
    t1 = time.perf_counter()
    examples = build_examples(prompts, answers, tok_t, tok_s)
    where = f"{config.data}" if config.data else "the project's prompts"
    if len(examples) < config.eval_prompts + 2:
        raise DistillError(f"only {len(examples)} answered prompts in {where} for {config.eval_prompts} held-out ones "
                           f"plus training (at least 2): lower --eval-prompts or give more prompts"
                           + ("" if config.data else " (--prompts 0 = all)"))
    fp = answers_fingerprint(config.teacher, config.max_new_tokens, config.data)
    cache = load_or_build_teacher_cache(config.teacher, examples, fp, config.teacher_temperature, config.top_k,
                                        config.probe_prompt, progress=progress, processes=processes)
    t2 = time.perf_counter()
    V_s = student_vocab_size(config, tok_s)
    bytes_t, bytes_s = vocab_bytes(tok_t, cache.vocab_size), vocab_bytes(tok_s, V_s)
    check_shared_tokenizer(config, bytes_t, bytes_s)
    match = match_strings(bytes_t, bytes_s)
    rows = [cache.rows(e) for e in range(len(examples))]
    n_eval = config.eval_prompts
    return Prepared(config, examples[:-n_eval], examples[-n_eval:], rows[:-n_eval], rows[-n_eval:], cache, tok_t,
                    tok_s, V_s, bytes_t, bytes_s, match, fp,
                    {"answers_s": t1 - t0, "teacher_cache_s": t2 - t1, "prepare_s": time.perf_counter() - t0})


def _local_processes(world: int) -> int:
    """The processes on this machine (each loads its own models): torchrun's LOCAL_WORLD_SIZE."""
    import os

    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    except ValueError:
        return world


def _answers(config: DistillConfig, progress: bool) -> tuple[Any, Any, list[Any], Any]:
    """The two tokenizers, the prompts and the teacher's answers (shipped, cached or generated now),
    after the checks that need no model: the prompts' count and each one's room in the contexts."""
    from ..zoo.vocabs import load_tokenizer
    from .data import load_answers, load_prompts

    tokenizers = []
    for option, name in (("--teacher", config.teacher), ("--student", config.student)):
        try:
            tokenizers.append(load_tokenizer(name, progress=progress))
        except (ExplorerError, ValueError) as err:  # a name the zoo does not know, a folder that is not one
            raise DistillError(f"{option} {name}: {err}") from None
    tok_t, tok_s = tokenizers
    prompts = load_prompts(config.prompts, data=config.data)
    where = f"{config.data}" if config.data else "the project's prompts"
    if len(prompts) < config.eval_prompts + 2:  # said before the teacher generates anything
        raise DistillError(f"only {len(prompts)} prompts in {where} for {config.eval_prompts} held-out ones plus "
                           f"training (at least 2): lower --eval-prompts or give more prompts")
    check_context(config, prompts, (tok_t, tok_s))
    answers = load_answers(config.teacher, config.max_new_tokens, progress=progress, data=config.data,
                           prompts=load_prompts(data=config.data) if config.data else None)
    return tok_t, tok_s, prompts, answers
