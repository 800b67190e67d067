"""The distillation data: the project's prompts, the teacher's greedy answers, tokenized examples.

The paper's recipe (Boizard et al. 2024, §4): the TEACHER generates the answers to the task
prompts; teacher and student each tokenize prompt and answer with their own tokenizer; the loss
covers the answer tokens only. Here:

- :func:`load_prompts` reads ``data/prompts.jsonl`` (320 short questions, instructions, code and
  multilingual prompts written for this project);
- :func:`load_answers` returns the teacher's greedy answers (at most ``max_new_tokens`` new
  tokens, the teacher's chat template), keyed by a fingerprint of (teacher weights, prompts,
  generation settings): the default teacher's answers ship in ``data/answers/``, others are
  generated once (:func:`generate_answers`) and cached under ``<cache>/distill/answers/``.
  Regenerate the shipped file with ``uld-explorer answers --out uld_explorer/distill/data/answers/``;
- :func:`build_examples` tokenizes ``(rendered prompt, answer)`` for both sides with exact byte
  spans (:func:`~uld_explorer.text.tokenize_with_offsets`: the prompt is context, the answer's
  tokens are the ones scored).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = [
    "ANSWERS_FORMAT", "Prompt", "Example", "prompts_path", "load_prompts", "render_prompt",
    "answers_fingerprint", "shipped_answers_dir", "load_answers", "generate_answers", "write_answers",
    "build_examples", "answers_filename", "teacher_identity",
]

ANSWERS_FORMAT = 1


@dataclass(frozen=True)
class Prompt:
    """One prompt: the project's (``kind`` question | instruction | code | multilingual) or a line
    of the user's data (``kind`` ``"data"``: its conversation in ``messages``, its reference answer,
    if given, in ``reference``)."""

    id: str
    kind: str
    lang: str
    prompt: str
    messages: tuple[dict[str, str], ...] = ()
    reference: str | None = None

    @property
    def chat(self) -> str | tuple[dict[str, str], ...]:
        """What :func:`render_prompt` renders: the conversation, else the prompt's text."""
        return self.messages or self.prompt


@dataclass(frozen=True)
class Example:
    """One prompt and the teacher's answer, tokenized by both sides.

    ``teacher`` / ``student`` are :class:`~uld_explorer.text.Tokenized` of the answer with the
    side's rendered prompt as context: ``tok.ids`` are the answer's tokens (the scored ones),
    ``tok.context_ids`` what the model reads before them.
    """

    prompt: Prompt
    answer: str
    teacher: Any
    student: Any


def prompts_path() -> Path:
    return Path(str(resources.files("uld_explorer.distill") / "data" / "prompts.jsonl"))


def shipped_answers_dir() -> Path:
    return Path(str(resources.files("uld_explorer.distill") / "data" / "answers"))


def load_prompts(limit: int = 0, data: str = "") -> list[Prompt]:
    """The prompts in file order (``limit > 0``: the first ``limit``): the project's, or with
    ``data`` the user's JSON-lines file (:func:`~uld_explorer.distill.userdata.read_records`: a bad
    file is refused with one line naming the line and the fix)."""
    if data:
        from .userdata import read_records

        return [Prompt(r.id, "data", "", r.text, tuple(r.messages), r.answer) for r in read_records(data, limit)]
    out = []
    with open(prompts_path(), encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            out.append(Prompt(d["id"], d["kind"], d["lang"], d["prompt"]))
    return out[:limit] if limit > 0 else out


def render_prompt(tokenizer: Any, prompt: str | Sequence[dict[str, str]]) -> str:
    """The text a model reads before its answer.

    ``prompt`` is the user's text, or a conversation (``[{"role": ..., "content": ...}, ...]``,
    ending before the answer). With a chat template: the template with the generation prompt.
    Without one: ``"Question: ...\\nAnswer: "`` (a conversation's turns as ``System:`` /
    ``Question:`` / ``Answer:`` lines).

    >>> render_prompt(None, "2 + 2?")
    'Question: 2 + 2?\\nAnswer: '
    """
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    names = {"system": "System", "user": "Question", "assistant": "Answer"}
    turns = "".join(f"{names.get(m['role'], m['role'].capitalize())}: {m['content']}\n" for m in messages)
    return f"{turns}Answer: "


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def teacher_identity(teacher: str) -> dict[str, Any]:
    """What pins a teacher's weights: a zoo model's pinned GGUF sha256, else its name or folder."""
    from ..zoo.errors import UnknownModelError
    from ..zoo.registry import as_spec

    try:
        spec = as_spec(teacher)
        return {"teacher": spec.name, "weights_sha256": spec.sha256}
    except UnknownModelError:
        return {"teacher": os.fspath(teacher), "weights_sha256": None}


def answers_fingerprint(teacher: str, max_new_tokens: int, data: str = "") -> str:
    """sha256 (16 hex digits) of (teacher weights, the prompts file or the user's ``data`` file, the
    generation settings)."""
    from .userdata import data_sha256

    key = {
        **teacher_identity(teacher),
        "prompts_sha256": data_sha256(data) if data else _sha256_bytes(prompts_path().read_bytes()),
        "generation": {"greedy": True, "max_new_tokens": int(max_new_tokens), "template": "chat"},
        "format": ANSWERS_FORMAT,
    }
    return _sha256_bytes(json.dumps(key, sort_keys=True).encode())[:16]


def answers_filename(teacher: str, max_new_tokens: int, data: str = "") -> str:
    """The answers file's name: ``<teacher>-<max_new_tokens>.jsonl`` for the project's prompts,
    ``<teacher>-<max_new_tokens>-<data file>-<fingerprint>.jsonl`` for the user's data."""
    name = teacher_identity(teacher)["teacher"]
    safe = lambda x: "".join(c if c.isalnum() or c in "-._" else "_" for c in x)  # noqa: E731
    if data:
        return f"{safe(Path(name).name)}-{max_new_tokens}-{safe(Path(data).stem)}-{answers_fingerprint(teacher, max_new_tokens, data)}.jsonl"
    return f"{safe(Path(name).name)}-{max_new_tokens}.jsonl"


def _read_answers(path: Path, fingerprint: str) -> dict[str, str] | None:
    try:
        with open(path, encoding="utf-8") as f:
            header = json.loads(f.readline())
            if header.get("fingerprint") != fingerprint:
                return None
            return {d["id"]: d["answer"] for d in map(json.loads, f)}
    except (OSError, ValueError, KeyError):
        return None


def write_answers(path: Path, answers: dict[str, str], teacher: str, max_new_tokens: int, data: str = "") -> Path:
    """Write ``answers`` (prompt id -> text) with a header line naming their fingerprint and
    the command that regenerates them; atomic (a temporary file renamed)."""
    header = {
        "fingerprint": answers_fingerprint(teacher, max_new_tokens, data),
        **teacher_identity(teacher),
        "max_new_tokens": max_new_tokens,
        **({"data": os.fspath(data)} if data else {}),
        "regenerate": (f"uld-explorer distill --data {data} (generated on first use)" if data else
                       f"uld-explorer answers --teacher {teacher} --max-new-tokens {max_new_tokens}"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(header, ensure_ascii=False) + "\n")
        for pid, text in answers.items():
            f.write(json.dumps({"id": pid, "answer": text}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def generate_answers(
    loaded: Any, prompts: Sequence[Prompt], max_new_tokens: int, *, batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, str]:
    """The teacher's greedy answers: ``prompt id -> answer text`` (special tokens dropped, stripped).

    Batched with left padding; at most ``max_new_tokens`` new tokens each. An empty answer is
    left out (a prompt the teacher answers with EOS at once).
    """
    import torch

    from ..text.tokenize import tokenize_with_offsets

    tok, model = loaded.tokenizer, loaded.model
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out: dict[str, str] = {}
    for b0 in range(0, len(prompts), batch_size):
        chunk = prompts[b0 : b0 + batch_size]
        rows = [list(tokenize_with_offsets(tok, "x", prompt=render_prompt(tok, p.chat)).context_ids) for p in chunk]
        L = max(map(len, rows))
        ids = torch.tensor([[pad] * (L - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (L - len(r)) + [1] * len(r) for r in rows])
        with torch.inference_mode():
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=pad)
        for p, g in zip(chunk, gen[:, L:]):
            text = tok.decode(g, skip_special_tokens=True).strip()
            if text:
                out[p.id] = text
        if progress is not None:
            progress(min(b0 + batch_size, len(prompts)), len(prompts))
    return out


def load_answers(teacher: str, max_new_tokens: int, *, progress: bool = True, data: str = "",
                 prompts: Sequence[Prompt] | None = None) -> dict[str, str]:
    """The teacher's answers to the prompts: shipped, cached, or generated now (then cached).

    Returns ``prompt id -> answer``. ``data``: the user's JSON-lines file (its ``prompts``, read
    once by the caller, else read here); its answers are generated on first use and cached under
    ``<cache>/distill/answers/``, keyed by the file's sha256. Generation loads the teacher (a bar
    with the ETA); ~1-3 minutes for the project's 320 prompts on two CPU cores with the default
    teacher; once per fingerprint.
    """
    from ..zoo.cache import cache_dir

    fp = answers_fingerprint(teacher, max_new_tokens, data)
    name = answers_filename(teacher, max_new_tokens, data)
    places = ([] if data else [shipped_answers_dir() / name]) + [cache_dir() / "distill" / "answers" / name]
    for path in places:
        found = _read_answers(path, fp)
        if found is not None:
            return found
    from tqdm.auto import tqdm

    from ..zoo.loader import load

    loaded = load(teacher, progress=progress)
    prompts = list(prompts) if prompts is not None else load_prompts(data=data)
    with tqdm(total=len(prompts), desc=f"teacher answers ({loaded.name})", unit="prompt", disable=not progress) as bar:
        answers = generate_answers(loaded, prompts, max_new_tokens, progress=lambda d, n: bar.update(d - bar.n))
    write_answers(cache_dir() / "distill" / "answers" / name, answers, teacher, max_new_tokens, data=data)
    return answers


def build_examples(prompts: Sequence[Prompt], answers: dict[str, str], teacher_tokenizer: Any,
                   student_tokenizer: Any) -> list[Example]:
    """Tokenize every answered prompt for both sides (prompts without an answer are skipped)."""
    from ..text.tokenize import tokenize_with_offsets

    out = []
    for p in prompts:
        a = answers.get(p.id)
        if not a:
            continue
        t = tokenize_with_offsets(teacher_tokenizer, a, prompt=render_prompt(teacher_tokenizer, p.chat), who="teacher")
        s = tokenize_with_offsets(student_tokenizer, a, prompt=render_prompt(student_tokenizer, p.chat), who="student")
        out.append(Example(p, a, t, s))
    return out
