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
