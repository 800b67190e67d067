"""The checks on what each model reads and what is scored: chat template, BOS, EOS, the shift and
the prompt mask.

Each check re-derives what should hold from the tokenizer itself and compares it with what the
runner builds (:func:`~uld_explorer.distill.data.render_prompt`,
:func:`~uld_explorer.text.tokenize_with_offsets`, :func:`~uld_explorer.distill.batch.make_batch`):

- **template**: the data hold no chat markup of either tokenizer (else the template is applied a
  second time on top of it); the rendered prompt ends with the template's generation prompt
  (:func:`generation_marker`) and holds it once;
- **bos**: the context starts with exactly one BOS when the tokenizer adds one by default
  (:func:`~uld_explorer.text.adds_bos`) or its template writes it, and with none otherwise;
- **eos**: both sides' scored answers end the same way (with the end-of-turn token, or not);
- **context**: prompt + answer fit each model's context (``max_position_embeddings``);
- **shift**: in the batch, the logits at input position ``i`` are scored against the token at
  ``i + 1``; **mask**: exactly the answer tokens are scored, no prompt token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..text.tokenize import adds_bos
from .findings import Finding

__all__ = ["Side", "end_of_turn_ids", "generation_marker", "markup_strings", "check_template", "check_bos",
           "check_context", "check_eos", "check_shift_and_mask"]

SHOWN = 3  # record ids named per finding


@dataclass(frozen=True)
class Side:
    """One side of the pair as the checks see it: ``role`` (teacher | student), its name, its tokenizer
    and whether its chat template is applied."""

    role: str
    name: str
    tokenizer: Any
    chat_template: bool

    @property
    def templated(self) -> bool:
        return bool(self.chat_template and getattr(self.tokenizer, "chat_template", None))

    def __str__(self) -> str:
        return f"{self.role} ({self.name})"


def _ids_named(ids: Sequence[str], n: int) -> str:
    more = f", +{n - len(ids[:SHOWN])} more" if n > SHOWN else ""
    return ", ".join(ids[:SHOWN]) + more


def generation_marker(tokenizer: Any) -> str | None:
    """The text a chat template appends for the assistant's turn (``"<|im_start|>assistant\\n"``),
    None without a template or when it cannot be told apart."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    m = [{"role": "user", "content": "x"}]
    with_gen = tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
    without = tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=False)
    return with_gen[len(without):] if with_gen.startswith(without) and len(with_gen) > len(without) else None


def markup_strings(tokenizer: Any) -> tuple[str, ...]:
    """The tokenizer's special and added-special token strings (its chat markup: ``<|im_start|>``,
    ``<s>``, ...), longest first; strings under 3 characters are left out (they occur in prose)."""
    found = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(tok, "special", False):
            found.add(str(tok.content))
    return tuple(sorted((s for s in found if len(s) >= 3), key=lambda s: (-len(s), s)))


def end_of_turn_ids(tokenizer: Any) -> set[int]:
    """Ids that end an answer: ``eos_token_id`` and the first token the chat template writes after an
    assistant turn (``<|im_end|>``, ``<|end|>``)."""
    out = {int(tokenizer.eos_token_id)} if getattr(tokenizer, "eos_token_id", None) is not None else set()
    if getattr(tokenizer, "chat_template", None):
        mark = "ULDAUDITANSWER"
        text = tokenizer.apply_chat_template([{"role": "user", "content": "x"}, {"role": "assistant", "content": mark}],
                                             tokenize=False)
        tail = text.split(mark, 1)[1] if mark in text else ""
        ids = tokenizer(tail, add_special_tokens=False)["input_ids"] if tail.strip() else []
        if ids:
            out.add(int(ids[0]))
    return out


def check_template(side: Side, examples: Sequence[Any]) -> list[Finding]:
    """Chat markup in the data (the template would be applied twice) and the rendered prompt's end.

    ``examples``: objects with ``id``, ``messages`` (the turns, dicts), ``answer`` (str or None) and
    the side's :class:`~uld_explorer.text.Tokenized` as ``.teacher`` / ``.student`` (its ``prompt``
    is the rendered prompt)."""
    out = []
    marks = markup_strings(side.tokenizer)
    hit: dict[str, list[str]] = {}
    for ex in examples:
        texts = [m["content"] for m in ex.messages] + ([ex.answer] if ex.answer else [])
        mark = next((m for m in marks for t in texts if m in t), None)
        if mark is not None:
            hit.setdefault(mark, []).append(ex.id)
    if hit:
        mark, ids = max(hit.items(), key=lambda kv: len(kv[1]))
        n = sum(len(v) for v in hit.values())
        out.append(Finding(
            "error", "template",
            f"{side}: {n} of {len(examples)} records already hold its chat markup ({mark!r}; {_ids_named(ids, n)}): "
            f"the template is applied again on top of it",
            "give the raw text (or 'messages'), not an already rendered prompt", tuple(ids[:SHOWN])))
    marker = generation_marker(side.tokenizer) if side.templated else None
    if marker:
        flagged = {i for ids in hit.values() for i in ids}  # already said: markup in the data
        bad = [ex.id for ex in examples if ex.id not in flagged and (not getattr(ex, side.role).prompt.endswith(marker)
               or getattr(ex, side.role).prompt.count(marker) != 1)]
        if bad:
            out.append(Finding(
                "error", "template",
                f"{side}: the rendered prompt does not end with the generation prompt {marker!r} exactly once in "
                f"{len(bad)} of {len(examples)} examples ({_ids_named(bad, len(bad))})",
                "render each prompt once with apply_chat_template(..., add_generation_prompt=True)", tuple(bad[:SHOWN])))
    if not out:
        how = (f"its chat template, applied once, ending with {marker!r}" if marker else
               "its chat template" if side.templated else "the plain 'Question: ... Answer: ' prompt")
        out.append(Finding("info", "template", f"{side}: reads {how}"))
    return out


def _leading(ids: Sequence[int], bos: int | None) -> int:
    n = 0
    while bos is not None and n < len(ids) and ids[n] == bos:
        n += 1
    return n


def check_bos(side: Side, examples: Sequence[Any]) -> list[Finding]:
    """BOS exactly once at the start of the context when the tokenizer adds one by default or the
    template writes it; none otherwise."""
    tok = side.tokenizer
    bos = getattr(tok, "bos_token_id", None)
    bos_text = getattr(tok, "bos_token", None)
    by_default = adds_bos(tok) is not None
    rendered = [getattr(ex, side.role) for ex in examples]
    by_template = bool(side.templated and bos_text and rendered and rendered[0].prompt.startswith(bos_text))
    expected = by_default or by_template
    lead = [_leading(t.context_ids, bos) for t in rendered]
    missing = [ex.id for ex, n in zip(examples, lead) if expected and n == 0]
    twice = [ex.id for ex, n in zip(examples, lead) if n >= 2]
    extra = [ex.id for ex, n in zip(examples, lead) if not expected and n == 1]
    N = len(examples)
    out = []
    if missing:
        out.append(Finding(
            "error", "bos", f"{side}: no BOS ({bos_text!r}) before the prompt in {len(missing)} of {N} examples "
            f"({_ids_named(missing, len(missing))}); the tokenizer adds it by default, so the model was trained with it",
            "prepend bos_token_id (tokenize with add_special_tokens=True)", tuple(missing[:SHOWN])))
    if twice:
        out.append(Finding(
            "error", "bos", f"{side}: BOS ({bos_text!r}) twice at the start in {len(twice)} of {N} examples "
            f"({_ids_named(twice, len(twice))}): the chat template writes it and the tokenizer adds it again",
            "tokenize the rendered prompt with add_special_tokens=False (or drop the BOS from the template)",
            tuple(twice[:SHOWN])))
    if extra:
        out.append(Finding(
            "warning", "bos", f"{side}: starts with {bos_text!r} in {len(extra)} of {N} examples, which neither the "
            f"tokenizer nor its template puts there", "drop the leading BOS", tuple(extra[:SHOWN])))
    if not out:
        why = "its template writes it" if by_template else "the tokenizer adds it by default"
        out.append(Finding("info", "bos", f"{side}: BOS {bos_text!r} once at the start ({why})" if expected
                           else f"{side}: no BOS, as the tokenizer expects"))
    return out


def check_eos(teacher: Side, student: Side, examples: Sequence[Any]) -> list[Finding]:
    """Both sides' scored answers end the same way: with an end-of-turn token, or neither."""
    et, es = end_of_turn_ids(teacher.tokenizer), end_of_turn_ids(student.tokenizer)
    ends_t = [bool(ex.teacher.ids) and ex.teacher.ids[-1] in et for ex in examples]
    ends_s = [bool(ex.student.ids) and ex.student.ids[-1] in es for ex in examples]
    differ = [ex.id for ex, a, b in zip(examples, ends_t, ends_s) if a != b]
    N = len(examples)
    if differ:
        return [Finding(
            "warning", "eos", f"the scored answer ends with the end-of-turn token on the teacher side in {sum(ends_t)} "
            f"and on the student side in {sum(ends_s)} of {N} examples ({_ids_named(differ, len(differ))}): the last "
            f"pairs compare a stop with a word", "end both answers the same way (each side's end-of-turn token, or none)",
            tuple(differ[:SHOWN]))]
    if not any(ends_t):
        return [Finding("info", "eos", f"neither side scores an end-of-turn token in {N} examples: the student is not "
                        f"taught where an answer stops (fine for measuring; to ship a chat student, end each answer "
                        f"with each side's end-of-turn token)")]
    return [Finding("info", "eos", f"both sides score their end-of-turn token at the end of {sum(ends_t)} of {N} answers")]


def check_shift_and_mask(examples: Sequence[Any], make_batch: Callable[..., Any], pad_id: int,
                         alignment: str = "positional", merge: str = "observed") -> list[Finding]:
    """Build the student's batch as the runner does (``make_batch``, a seam for tests) and check the
    shift (logits at input position ``i`` score token ``i + 1``) and the mask (exactly the answer
    tokens are scored; no prompt token is)."""
    import torch

    rows, off = [], 0
    for ex in examples:  # the teacher cache's rows, as the cache lays them out
        rows.append(slice(off, off + len(ex.teacher.ids)))
        off += len(ex.teacher.ids)
    N = len(examples)
    try:
        batch = make_batch(examples, rows, alignment, merge, pad_id)
    except (ValueError, IndexError, RuntimeError) as e:
        return [Finding("error", "shift", f"the runner cannot build a batch of the first {N} examples: {e}",
                        "give every example a prompt (the first answer token needs a position that predicts it)")]
    B, L = batch.input_ids.shape  # (B, L)
    flat = batch.input_ids.reshape(-1)
    pos, labels = batch.positions, batch.labels  # (R,), (R,)
    col = pos % L
    out = []

    def scored_against(d: int) -> float:
        ok = (col + d >= 0) & (col + d < L)
        hit = torch.zeros_like(ok)
        hit[ok] = flat[pos[ok] + d] == labels[ok]
        return float(hit.float().mean()) if len(pos) else 1.0

    right = scored_against(1)
    if right < 1.0:
        other = next((d for d in (0, 2, -1) if scored_against(d) == 1.0), None)
        where = (f"the logits at position i are scored against token i{'+' if other > 0 else '-' if other < 0 else ''}"
                 f"{abs(other) if other else ''} (a shift off by {abs(other - 1)}); it must be i+1"
                 if other is not None else f"{1 - right:.0%} of the scored labels are not the next input token")
        out.append(Finding("error", "shift", f"in the student's batch of the first {N} examples, {where}",
                           "score logits[:, :-1] against input_ids[:, 1:] (position c + j - 1 predicts answer token j)"))
    expected = set()
    prompt_hits = 0
    for b, ex in enumerate(examples):
        c = len(ex.student.context_ids)
        expected |= {b * L + c + j - 1 for j in range(len(ex.student.ids))}
    got = pos.tolist()
    for p in got:
        b, i = divmod(p, L)
        if i + 1 < len(examples[b].student.context_ids):
            prompt_hits += 1
    missing = len(expected - set(got))
    twice = len(got) - len(set(got))
    if prompt_hits or missing or twice:
        parts = [f"{prompt_hits} scored positions predict prompt tokens"] * bool(prompt_hits) + \
                [f"{missing} answer tokens are not scored"] * bool(missing) + [f"{twice} are scored twice"] * bool(twice)
        out.append(Finding("error", "mask", f"in the student's batch of the first {N} examples: {'; '.join(parts)}",
                           "mask the prompt (labels -100 up to the answer) and score every answer token once"))
    if not out:
        out.append(Finding("info", "shift", f"the student's batch of the first {N} examples scores position i against "
                           f"token i+1 and exactly the {len(got)} answer tokens (no prompt token)"))
    return out


def check_context(side: Side, examples: Sequence[Any], n_ctx: int | None) -> list[Finding]:
    """Every example's context + answer within the side's context of ``n_ctx`` tokens (None: the
    model's context cannot be told, e.g. a tokenizer-only entry: no finding)."""
    if n_ctx is None:
        return []
    sizes = [(ex.id, len(getattr(ex, side.role).model_input_ids)) for ex in examples]
    over = [(i, n) for i, n in sizes if n > n_ctx]
    if not over:
        return []
    longest = max(over, key=lambda x: x[1])
    return [Finding("error", "context", f"{side}: {len(over)} of {len(examples)} examples need more than its context "
                    f"of {n_ctx:,} tokens (longest: {longest[0]}, {longest[1]:,} tokens)",
                    "shorten or remove them", tuple(i for i, _ in over[:SHOWN]))]
