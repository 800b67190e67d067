"""The distillation prompt set (uld_explorer/distill/data/prompts.jsonl): written for this project,
one JSON object a line with keys id / kind / lang / prompt; short, unique prompts of four kinds in
several languages, the probe prompt first. Reads the file only (no models, no package import)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

PROMPTS = Path(__file__).resolve().parents[1] / "uld_explorer" / "distill" / "data" / "prompts.jsonl"
KINDS = {"question", "instruction", "code", "multilingual"}
PROBE = {"id": "p0001", "kind": "question", "lang": "en", "prompt": "What is the capital of France?"}


def _rows() -> list[dict]:
    return [json.loads(line) for line in PROMPTS.read_text(encoding="utf-8").splitlines()]


def test_file_is_utf8_and_ends_with_a_newline():
    raw = PROMPTS.read_bytes()
    raw.decode("utf-8")  # raises if not valid UTF-8
    assert raw.endswith(b"\n") and not raw.endswith(b"\n\n")
    assert b"\r" not in raw


def test_every_line_is_an_object_with_the_four_keys():
    lines = PROMPTS.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 300
    for n, line in enumerate(lines, 1):
        row = json.loads(line)
        assert isinstance(row, dict), n
        assert set(row) == {"id", "kind", "lang", "prompt"}, n
        assert all(isinstance(v, str) for v in row.values()), n


def test_first_line_is_the_probe():
    first = PROMPTS.read_text(encoding="utf-8").splitlines()[0]
    assert json.loads(first) == PROBE
    assert first == json.dumps(PROBE, ensure_ascii=False)


def test_ids_are_unique_and_sequential():
    ids = [row["id"] for row in _rows()]
    assert ids == [f"p{i:04d}" for i in range(1, len(ids) + 1)]


def test_kinds_and_languages():
    rows = _rows()
    kinds = Counter(row["kind"] for row in rows)
    assert set(kinds) == KINDS
    assert min(kinds.values()) >= 40, kinds
    langs = Counter(row["lang"] for row in rows)
    assert all(re.fullmatch(r"[a-z]{2}", lang) for lang in langs), langs
    assert len(langs) >= 6, langs
    # only the multilingual prompts are in another language than English
    assert all(row["lang"] == "en" for row in rows if row["kind"] != "multilingual")
    assert all(row["lang"] != "en" for row in rows if row["kind"] == "multilingual")


def test_prompts_are_short_stripped_and_unique():
    prompts = [row["prompt"] for row in _rows()]
    for p in prompts:
        assert p and p == p.strip() and len(p) <= 200, p
    normalised = [" ".join(p.casefold().split()) for p in prompts]
    dupes = [p for p, n in Counter(normalised).items() if n > 1]
    assert not dupes, dupes
