"""``uld-explorer tokenizers list | fetch``: real tokenizer families without weights, offline."""

from __future__ import annotations

import argparse
from typing import Any

from .common import Formatter, UsageError, human_bytes, print_json, table_lines
from .models import RESUME_HINT

__all__ = ["add_parser"]


def list_(args: argparse.Namespace) -> int:
    from ..zoo import cache_dir, vocabs

    rows = vocabs.list_tokenizers()
    if args.json:
        print_json({"cache_dir": str(cache_dir()), "source": vocabs.LLAMA_CPP_SDIST.requirement,
                    "tokenizers": [r.as_dict() for r in rows]})
        return 0
    table = [("name", "family", "algorithm", "vocab", "len", "vs original", "status", "disk")]
    for r in rows:
        table.append((r.name, r.family, r.algorithm, f"{r.vocab_size:,}", f"{r.tokenizer_size:,}",
                      f"{r.reference[0]}/{r.reference[1]}" if r.reference[1] else "-", r.status,
                      human_bytes(r.disk_bytes) if r.disk_bytes else "-"))
    for line in table_lines(table):
        print(line)
    print(f"cache: {cache_dir() / 'tokenizers'}  (tokenizers only, no weights; all from "
          f"{vocabs.LLAMA_CPP_SDIST.requirement}: `uld-explorer tokenizers fetch --all` is one download)")
    print("vocab: tokens of the GGUF vocabulary; len: len(tokenizer) after conversion; vs original: llama.cpp's "
          "reference strings whose token ids (made by the original tokenizer) the converted one reproduces. "
          "Zoo models' tokenizers load too: uld_explorer.load_tokenizer(MODEL).")
    if any(r.status in ("unverified", "damaged") for r in rows):
        print("unverified: a file changed since its sha256 last matched (the next load re-hashes it). damaged: a "
              "file or the folder's marker is missing or wrong, or the last load found a bad sha256: the next "
              "load names the file; `uld-explorer tokenizers fetch NAME --force` rebuilds it. Nothing is deleted.")
    return 0


def fetch(args: argparse.Namespace) -> int:
    from ..zoo import vocabs

    if args.all and args.names:
        raise UsageError("give tokenizer names or --all, not both")
    if not args.all and not args.names:
        raise UsageError(f"name a tokenizer to fetch ({', '.join(vocabs.TOKENIZERS)}) or pass --all")
    names = None if args.all else [vocabs.resolve_tokenizer_name(n) for n in args.names]
    # a ZooError or a Ctrl-C: one line (cli.main), nothing half-written kept
    for folder in vocabs.fetch_tokenizers(names, progress=not args.quiet, force=args.force,
                                          keep_sources=args.keep_sources).values():
        print(folder)
    return 0


def add_parser(sub: Any) -> None:
    toks = sub.add_parser("tokenizers", formatter_class=Formatter,
                          help="tokenizers without weights: list and fetch real tokenizer families offline")
    tsub = toks.add_subparsers(dest="tokenizers_command", required=True)
    tl = tsub.add_parser("list", formatter_class=Formatter,
                         help="tokenizer-only entries: family, vocabulary, fidelity to the original, status, disk")
    tl.add_argument("--json", action="store_true", help="print JSON instead of a table")
    tl.set_defaults(func=list_)
    tf = tsub.add_parser(
        "fetch", formatter_class=Formatter,
        help="download (package registry) the pinned archive once, verify and convert tokenizers into the cache",
        description="Download the pinned llama-cpp-python source archive with pip (never built, installed or "
                    "imported), check its sha256, read the tokenizers' GGUF vocabularies out of it (each sha256 "
                    "checked) and convert each once to a Hugging Face tokenizer folder in the cache. --all "
                    "publishes every entry from one download. Prints each tokenizer's folder.",
    )
    tf.add_argument("names", nargs="*", metavar="NAME", help="tokenizer name(s), see `uld-explorer tokenizers list`")
    tf.add_argument("--all", action="store_true", help="fetch every tokenizer-only entry (one download)")
    tf.add_argument("--keep-sources", action="store_true", help="keep the archive and the GGUF files after conversion")
    tf.add_argument("--force", action="store_true", help="rebuild even if already cached")
    tf.add_argument("--quiet", action="store_true", help="no progress bars")
    tf.set_defaults(func=fetch, interrupt_hint=RESUME_HINT)
