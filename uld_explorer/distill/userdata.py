"""A user's data file: JSON lines of prompts or conversations, with an optional reference answer.

One JSON object per line, one of:

- ``{"prompt": "..."}``, optionally with ``"answer"`` (or ``"reference"``): a reference answer;
- ``{"messages": [{"role": "system" | "user" | "assistant", "content": "..."}, ...]}``: a
  conversation; when its last turn is the assistant's, that turn is the reference answer and the
  turns before it are the prompt.

A Hugging Face dataset saved to disk (``Dataset.save_to_disk``; a DatasetDict's ``train`` split)
is read the same way, row by row (the columns ``prompt`` / ``messages`` / ``answer`` /
``reference`` / ``id``; rows named ``row N``; needs the ``datasets`` package).

An ``"id"`` field names the record (else ``"line N"``). :func:`read_records` reads the file and
refuses a bad one with ONE line that names the file, the line and the fix
(:class:`DataError`): a missing or empty file, text that is not UTF-8, a line that is not a JSON
object, a missing or empty field, a malformed turn, a prompt or an id given twice. Importable without torch.

>>> import os, tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     path = os.path.join(d, "data.jsonl")
...     with open(path, "w", encoding="utf-8") as f:
...         _ = f.write('{"prompt": "2 + 2?", "answer": "4"}\\n\\n')
...         _ = f.write('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}\\n')
...     [(r.id, r.text, r.answer) for r in read_records(path)]
[('line 1', '2 + 2?', '4'), ('line 3', 'Hi', 'Hello!')]
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ExplorerError

__all__ = ["DataError", "Record", "ROLES", "data_sha256", "read_records"]

#: The roles a conversation's turns may take.
ROLES = ("system", "user", "assistant")
#: The fields that hold a reference answer next to ``"prompt"``, in the order they are read.
ANSWER_FIELDS = ("answer", "reference")


class DataError(ExplorerError, ValueError):
    """A data file that cannot be used; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Record:
    """One prompt (or conversation) of a data file.

    Attributes
    ----------
    id : str
        The record's ``"id"``, else ``"line N"``.
    line : int
        Its line in the file (1-based).
    messages : tuple[dict[str, str], ...]
        The turns before the answer (a ``"prompt"`` is one user turn).
    answer : str | None
        The reference answer, when the record gives one.
    """

    id: str
    line: int
    messages: tuple[dict[str, str], ...]
    answer: str | None = None

    @property
    def text(self) -> str:
        """The last user turn's text (what a table shows for the record)."""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), self.messages[-1]["content"])

    def as_messages(self) -> list[dict[str, str]]:
        """The turns as a list of ``{"role", "content"}`` dicts (what a chat template reads)."""
        return [dict(m) for m in self.messages]


def data_sha256(path: str | os.PathLike) -> str:
    """sha256 of a data file's bytes, or of a saved dataset folder's files (relative names and
    bytes, in sorted order): what keys the teacher's answers to it."""
    import hashlib

    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            h.update(f.read_bytes())
    else:
        h.update(path.read_bytes())
    return h.hexdigest()


def _fail(path: Path, line: int | None, what: str, fix: str, unit: str = "line") -> DataError:
    where = f"{path}" + (f" {unit} {line}" if line else "")
    return DataError(f"{where}: {what}; {fix}")


def _text(value: Any, path: Path, line: int, name: str, unit: str = "line") -> str:
    if not isinstance(value, str):
        raise _fail(path, line, f"'{name}' is {type(value).__name__}, not text", f"give '{name}' as a string", unit)
    if not value.strip():
        raise _fail(path, line, f"'{name}' is empty", f"give it some text or remove the {unit}", unit)
    return value


def _record(obj: Any, path: Path, line: int, unit: str = "line") -> Record:
    if not isinstance(obj, dict):
        raise _fail(path, line, f"is a JSON {type(obj).__name__}, not an object",
                    'give one object per line, e.g. {"prompt": "..."}', unit)
    rid = str(obj["id"]) if obj.get("id") not in (None, "") else f"{unit} {line}"
    if "messages" in obj:
        turns = obj["messages"]
        if not isinstance(turns, list) or not turns:
            raise _fail(path, line, "'messages' is not a non-empty list of turns",
                        'give [{"role": "user", "content": "..."}, ...]', unit)
        messages = []
        for i, t in enumerate(turns):
            if not isinstance(t, dict) or "role" not in t or "content" not in t:
                raise _fail(path, line, f"messages[{i}] needs 'role' and 'content'",
                            'give each turn as {"role": "user", "content": "..."}', unit)
            if t["role"] not in ROLES:
                raise _fail(path, line, f"messages[{i}] has role {t['role']!r}", f"use one of {', '.join(ROLES)}", unit)
            messages.append({"role": t["role"], "content": _text(t["content"], path, line, f"messages[{i}].content", unit)})
        answer = None
        if messages[-1]["role"] == "assistant":
            answer = messages.pop()["content"]
        if not any(m["role"] == "user" for m in messages):
            raise _fail(path, line, "the conversation has no user turn before the answer",
                        "add the user's turn the answer replies to", unit)
        return Record(rid, line, tuple(messages), answer)
    if "prompt" not in obj:
        raise _fail(path, line, f"has neither 'prompt' nor 'messages' (fields: {', '.join(map(str, obj)) or 'none'})",
                    'give {"prompt": "..."} or {"messages": [...]}', unit)
    prompt = _text(obj["prompt"], path, line, "prompt", unit)
    name = next((f for f in ANSWER_FIELDS if obj.get(f) is not None), None)
    answer = _text(obj[name], path, line, name, unit) if name else None
    return Record(rid, line, ({"role": "user", "content": prompt},), answer)


def _dataset_rows(path: Path) -> Any:
    """The rows of a Hugging Face ``datasets`` folder (``save_to_disk``): a Dataset, or a
    DatasetDict's ``train`` split."""
    try:
        import datasets
    except ImportError:
        raise _fail(path, None, "is a folder, read as a Hugging Face dataset (load_from_disk), but the datasets "
                    "package is not installed", "pip install datasets (or pip install 'uld-explorer[hf]')") from None
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as err:
        raise _fail(path, None, f"is a folder but not a dataset saved with save_to_disk ({str(err)[:160]})",
                    "give a JSON-lines file or a folder written by Dataset.save_to_disk") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise _fail(path, None, f"is a DatasetDict without a 'train' split (splits: {', '.join(ds)})",
                        "save the split to use on its own, or name one 'train'")
        ds = ds["train"]
    return ds


def read_records(path: str | os.PathLike, limit: int = 0) -> list[Record]:
    """Every record of a JSON-lines data file (blank lines skipped), or of a Hugging Face dataset
    saved to disk (``Dataset.save_to_disk``: a folder; a DatasetDict's ``train`` split; rows named
    ``row N``); ``limit > 0``: the first ``limit``.

    Raises
    ------
    DataError
        One line naming the file, the line (row) and the fix: the file is missing or empty, it is
        not UTF-8, a line is not a JSON object or lacks its fields, a prompt or an id repeats; a
        folder that is not a saved dataset.
    """
    path = Path(path)
    if not path.exists():
        raise _fail(path, None, "no such file", "give the path of a JSON-lines file or of a saved dataset's folder")
    if path.is_dir():
        rows = _dataset_rows(path)
        if len(rows) == 0:
            raise _fail(path, None, "is an empty dataset", "give it rows with a 'prompt' or 'messages' column")
        objs = ((n, {k: v for k, v in row.items() if v is not None}) for n, row in enumerate(rows, start=1))
        return _collect(objs, path, "row", limit)
    raw = path.read_bytes()
    if not raw.strip():
        raise _fail(path, None, "is empty", 'give one JSON object per line, e.g. {"prompt": "..."}')
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise _fail(path, line, f"is not UTF-8 (byte {e.start})", "save the file as UTF-8") from None

    def objects():
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as e:
                raise _fail(path, n, f"is not JSON ({e.msg}, column {e.colno})",
                            "write one JSON object per line (JSON lines)") from None

    return _collect(objects(), path, "line", limit)


def _collect(objs: Any, path: Path, unit: str, limit: int) -> list[Record]:
    """Records of ``(number, object)`` pairs, refusing a prompt or an id given twice."""
    records: list[Record] = []
    seen: dict[tuple, int] = {}
    ids: dict[str, int] = {}
    for n, obj in objs:
        r = _record(obj, path, n, unit)
        key = tuple((m["role"], m["content"]) for m in r.messages)
        if key in seen:
            raise _fail(path, n, f"repeats the prompt of {unit} {seen[key]}",
                        "remove the duplicate (it would count twice and could leak into the held-out prompts)", unit)
        seen[key] = n
        if r.id in ids:
            raise _fail(path, n, f"repeats the id {r.id!r} of {unit} {ids[r.id]}", "give every record its own id", unit)
        ids[r.id] = n
        records.append(r)
        if 0 < limit <= len(records):
            break
    return records
