"""``uld-explorer playground``: every measure of a synthetic pair (the app's Playground, same defaults)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from ..costs import COSTS
from ..synthetic import PlaygroundConfig
from .common import Formatter, print_json
from .flags import add_config_flags, config_from_args

__all__ = ["add_parser"]

#: What to turn down when the command runs out of memory.
MEMORY_KNOBS = "--vt / --vs (vocabulary sizes) or --top-k"


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(PlaygroundConfig, args)
    from .. import summary

    s = summary.divergence_summary(*cfg.pair(), top_k=cfg.top_k, cost=args.cost,
                                   sinkhorn_epsilon=cfg.sinkhorn_epsilon)
    rows = s.rows()
    if args.json:
        print_json({"settings": {**asdict(cfg), "cost": args.cost}, "rows": rows})
        return 0
    print(f"playground: teacher V_t={cfg.V_t} T={cfg.teacher_temperature:g} | student V_s={cfg.V_s} "
          f"T={cfg.student_temperature:g} shift={cfg.shift} noise={cfg.noise:g}"
          f"{' permuted' if cfg.permute_student else ''} | seed={cfg.seed} top-k={cfg.top_k} cost={args.cost}"
          f" sinkhorn-epsilon={cfg.sinkhorn_epsilon}")
    width = max(len(r["divergence"]) for r in rows)
    scale_w = max(len(r["scale"]) for r in rows)
    for r in rows:
        v = "undefined" if r["value"] is None else f"{r['value']:.6f}"
        print(f"{r['divergence']:<{width}}  {v:>10}  {r['scale']:<{scale_w}}  {r['note']}")
    return 0


def add_parser(sub: Any) -> None:
    pg = sub.add_parser(
        "playground", formatter_class=Formatter,
        help="every divergence for a synthetic teacher/student pair (the app's Playground, same defaults)",
        description="A synthetic teacher p and student q drawn from shared token scores (the app's Playground "
                    "page, same defaults), and every divergence of them: KL (if one vocabulary), ULD, exact "
                    "OT in value, rank and token space, the hybrid ULD. Each row says its scale.",
    )
    add_config_flags(pg, PlaygroundConfig)
    pg.add_argument("--cost", choices=list(COSTS), default="string",
                    help="token-space OT ground cost: " + "; ".join(f"{k}: {v.description}" for k, v in COSTS.items()))
    pg.add_argument("--json", action="store_true", help="print JSON (settings and rows) instead of a table")
    pg.set_defaults(func=run, memory_knobs=MEMORY_KNOBS)
