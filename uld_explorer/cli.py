"""The ``uld-explorer`` command line: parse -> a library config -> the library -> print.

Options, their choices, defaults and help come from the library (:class:`~uld_explorer.compare.ComparisonConfig`,
:class:`~uld_explorer.PlaygroundConfig`, the registries :data:`~uld_explorer.text.ALIGNMENTS`,
:data:`~uld_explorer.text.MERGES`, :data:`~uld_explorer.costs.COSTS`,
:data:`~uld_explorer.hybrid.HYBRID_DIVERGENCES`, :data:`~uld_explorer.hybrid.HYBRID_WEIGHTINGS`),
all importable without torch: ``uld-explorer --help`` answers at once; a command loads torch,
POT and transformers only when it runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from .checks import check_text
from .compare.config import ComparisonConfig
from .costs import COSTS
from .distill.config import PRESETS, DistillConfig
from .hybrid import HYBRID_DIVERGENCES, HYBRID_WEIGHTINGS, HybridConfig
from .synthetic import PlaygroundConfig
from .text.align import ALIGNMENTS, MERGES
from .zoo.registry import DEFAULT_STUDENT, DEFAULT_TEACHER

__all__ = ["build_parser", "main"]


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` shows every default and keeps the descriptions' line breaks."""


def _strict_json(value: Any) -> Any:
    """JSON-safe: non-finite floats become None (strict JSON has no NaN / Infinity)."""
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _print_json(doc: Any) -> None:
    """Strict JSON; non-ASCII kept as is where stdout can encode it, else escaped (\\uXXXX)."""
    text = json.dumps(_strict_json(doc), indent=2, ensure_ascii=False, allow_nan=False)
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        text = json.dumps(_strict_json(doc), indent=2, ensure_ascii=True, allow_nan=False)
    print(text)


class _UsageError(ValueError):
    """A bad option value: one ``error:`` line, exit 2, before anything heavy is loaded."""


def _option_error(err: Exception, options: dict[str, str]) -> _UsageError:
    """The library's message, with the field it names spelled as the CLI option."""
    msg = str(err)
    for name, option in sorted(options.items(), key=lambda kv: -len(kv[0])):
        if msg.startswith(name + " "):
            msg = option + msg[len(name):]
            break
    return _UsageError(msg)


# --------------------------------------------------------------------------------------------
# app
# --------------------------------------------------------------------------------------------


def _cmd_app(args: argparse.Namespace) -> int:
    from .app import MAIN_SCRIPT  # the app ships inside the package: any install serves it

    if not MAIN_SCRIPT.is_file():  # pragma: no cover - a broken install
        raise _UsageError(f"the app's script {MAIN_SCRIPT} is missing from this install; reinstall uld-explorer")
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(MAIN_SCRIPT),
        "--server.address", args.address, "--server.port", str(args.port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
    ]
    if args.address not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.address}: the app is reachable from other machines", file=sys.stderr)
    if os.name == "posix":  # become the server: a signal to `uld-explorer app` (Ctrl-C, kill) stops it
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, cmd)
    return subprocess.call(cmd)  # pragma: no cover - no exec on Windows: a child the console stops too


# --------------------------------------------------------------------------------------------
# playground
# --------------------------------------------------------------------------------------------

_PLAYGROUND_OPTIONS = {
    "V_t": "--vt", "V_s": "--vs", "teacher_temperature": "--teacher-temperature",
    "student_temperature": "--student-temperature", "shift": "--shift", "noise": "--noise",
    "permute_student": "--permute", "seed": "--seed", "top_k": "--top-k",
}


def _cmd_playground(args: argparse.Namespace) -> int:
    try:
        cfg = PlaygroundConfig(
            V_t=args.vt, V_s=args.vs, teacher_temperature=args.teacher_temperature,
            student_temperature=args.student_temperature, shift=args.shift, noise=args.noise,
            permute_student=args.permute, seed=args.seed, top_k=args.top_k,
        )
    except ValueError as err:
        raise _option_error(err, _PLAYGROUND_OPTIONS) from None
    from .summary import divergence_summary

    summary = divergence_summary(*cfg.pair(), top_k=cfg.top_k, cost=args.cost)
    rows = summary.rows()
    if args.json:
        _print_json({"settings": {**asdict(cfg), "cost": args.cost}, "rows": rows})
        return 0
    print(f"playground: teacher V_t={cfg.V_t} T={cfg.teacher_temperature:g} | student V_s={cfg.V_s} "
          f"T={cfg.student_temperature:g} shift={cfg.shift} noise={cfg.noise:g}"
          f"{' permuted' if cfg.permute_student else ''} | seed={cfg.seed} top-k={cfg.top_k} cost={args.cost}")
    width = max(len(r["divergence"]) for r in rows)
    scale_w = max(len(r["scale"]) for r in rows)
    for r in rows:
        v = "undefined" if r["value"] is None else f"{r['value']:.6f}"
        print(f"{r['divergence']:<{width}}  {v:>10}  {r['scale']:<{scale_w}}  {r['note']}")
    return 0


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------


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
        _print_json({"cache_dir": str(zoo.cache_dir()), "models": [r.as_dict() for r in rows]})
        return 0
    table = [("name", "role", "vocab", "params", "license", "status", "disk")]
    for r in rows:
        table.append((r.name, r.role or "-", f"{r.vocab_size:,}", f"{r.params / 1e6:.0f}M", r.license,
                      r.status, _human_bytes(r.disk_bytes) if r.disk_bytes else "-"))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"cache: {zoo.cache_dir()}  (set {zoo.CACHE_ENV} to move it)")
    if any(r.status in ("unverified", "damaged") for r in rows):
        print("unverified: a file changed (or was never checked here) since its sha256 last matched; the next "
              "load re-hashes it, or run `uld-explorer models verify NAME`. damaged: `uld-explorer models "
              "verify NAME` says which file; nothing is deleted.")
    return 0


def _cmd_models_fetch(args: argparse.Namespace) -> int:
    from . import zoo

    if args.all and args.names:
        raise _UsageError("give model names or --all, not both")
    if not args.all and not args.names:
        raise _UsageError(f"name a model to fetch ({', '.join(zoo.MODELS)}) or pass --all")
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


def _cmd_models_verify(args: argparse.Namespace) -> int:
    import time

    from . import zoo
    from .zoo.cache import folder_bytes

    if args.all and args.names:
        raise _UsageError("give model names or --all, not both")
    if not args.all and not args.names:
        raise _UsageError(f"name a model to verify ({', '.join(zoo.MODELS)}) or pass --all")
    names = [n for n in zoo.MODELS if zoo.is_cached(n)] if args.all else [zoo.resolve_name(n) for n in args.names]
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


# --------------------------------------------------------------------------------------------
# tokenizers
# --------------------------------------------------------------------------------------------


def _cmd_tokenizers_list(args: argparse.Namespace) -> int:
    from .zoo import cache_dir, vocabs

    rows = vocabs.list_tokenizers()
    if args.json:
        _print_json({"cache_dir": str(cache_dir()), "source": vocabs.LLAMA_CPP_SDIST.requirement,
                     "tokenizers": [r.as_dict() for r in rows]})
        return 0
    table = [("name", "family", "algorithm", "vocab", "len", "vs original", "status", "disk")]
    for r in rows:
        table.append((r.name, r.family, r.algorithm, f"{r.vocab_size:,}", f"{r.tokenizer_size:,}",
                      f"{r.reference[0]}/{r.reference[1]}" if r.reference[1] else "-", r.status,
                      _human_bytes(r.disk_bytes) if r.disk_bytes else "-"))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"cache: {cache_dir() / 'tokenizers'}  (tokenizers only, no weights; all from "
          f"{vocabs.LLAMA_CPP_SDIST.requirement}: `uld-explorer tokenizers fetch --all` is one download)")
    print("vocab: tokens of the GGUF vocabulary; len: len(tokenizer) after conversion; vs original: llama.cpp's "
          "reference strings whose token ids (made by the original tokenizer) the converted one reproduces. "
          "Zoo models' tokenizers load too: uld_explorer.load_tokenizer(MODEL).")
    if any(r.status in ("unverified", "damaged") for r in rows):
        print("unverified: a file changed since its sha256 last matched (the next load re-hashes it). damaged: "
              "the next load names the file; `uld-explorer tokenizers fetch NAME --force` rebuilds it. "
              "Nothing is deleted.")
    return 0


def _cmd_tokenizers_fetch(args: argparse.Namespace) -> int:
    from .zoo import vocabs

    if args.all and args.names:
        raise _UsageError("give tokenizer names or --all, not both")
    if not args.all and not args.names:
        raise _UsageError(f"name a tokenizer to fetch ({', '.join(vocabs.TOKENIZERS)}) or pass --all")
    try:
        names = None if args.all else [vocabs.resolve_tokenizer_name(n) for n in args.names]
        folders = vocabs.fetch_tokenizers(names, progress=not args.quiet, force=args.force,
                                          keep_sources=args.keep_sources)
        for folder in folders.values():
            print(folder)
    except vocabs.ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing half-written was kept, run the same command to resume", file=sys.stderr)
        return 130
    return 0


# --------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------

_COMPARE_OPTIONS = {
    "alignment": "--alignment", "merge": "--merge", "teacher_temperature": "--teacher-temperature",
    "student_temperature": "--student-temperature", "top_k": "--top-k", "edit_top_k": "--edit-top-k",
    "costs": "--costs", "max_tokens": "--max-tokens", "chunk_rows": "--chunk-rows", "hybrid divergence": "--hybrid-divergence",
    "hybrid beta": "--hybrid-beta", "hybrid weighting": "--hybrid-weighting",
    "hybrid matched_weight": "--hybrid-weights", "hybrid unmatched_weight": "--hybrid-weights",
    "hybrid weighting 'fixed'": "--hybrid-weighting fixed",
    "hybrid matched_weight / unmatched_weight": "--hybrid-weights",
    "hybrid clamp": "--hybrid-clamp",
}


def _fmt(v: float | None, width: int = 7, digits: int = 4) -> str:
    if v is None:
        return "-".rjust(width)
    if v != v:  # NaN
        return "nan".rjust(width)
    if v in (math.inf, -math.inf):
        return ("inf" if v > 0 else "-inf").rjust(width)
    return f"{v:.{digits}f}".rjust(width)


def _label(s: str, w: int) -> str:
    """Quoted, so leading spaces show; control characters escaped (a newline prints as \\n);
    split UTF-8 characters already read '\\xe6' (backslashreplace), so no repr() here."""
    r = "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in s) + "'"
    return (r if len(r) <= w else r[: w - 4] + "...'").ljust(w)


def _print_comparison(table) -> None:
    """One line per aligned position: what it predicts, the top-1 of each side, the divergences."""
    cfg = table.config
    print(f"teacher: {table.teacher_name} (V_t={table.V_t:,})   student: {table.student_name} (V_s={table.V_s:,})")
    print(f"alignment: {cfg.alignment}   merge: {cfg.merge}   rows: {len(table)}   shared token strings: "
          f"{table.shared_strings:,}   temperatures: teacher {cfg.teacher_temperature:g}, student "
          f"{cfg.student_temperature:g}")
    h = cfg.hybrid
    print(f"hybrid: {h.divergence}" + (f" beta={h.beta:g}" if h.divergence == "jsd" else "")
          + f", weights {table.hybrid_weights[0]:.3g} matched / {table.hybrid_weights[1]:.3g} unmatched ({h.weighting})"
          + (f", clamp {h.clamp:g} (GOLD)" if h.clamp is not None else ""))
    if table.prompt:
        print(f"prompt (read, not scored): {_label(table.prompt, 60).rstrip()}")
    for note in table.notes:
        print(f"note: {note}")
    if not len(table):
        print("no aligned position: the text is too short (without BOS or a prompt nothing predicts the first token)")
        return
    head = (f"{'#':>3}  {'predicts':<16} {'span':<4} {'teacher top-1':<16} {'student top-1':<16} "
            f"{'p_t(x)':>7} {'q_s(x)':>7} {'KL_shared':>9} {'cov_t':>5} {'cov_s':>5} {'ULD':>7} {'n*W1':>7} "
            f"{'hybrid':>7} | {'ULD/2':>7} {'OT_str':>7} {'OT_edit':>7}")
    print(head)
    print("-" * len(head))
    marks: list[str] = []
    for r in table:
        span = "=" if r.same_span else "!="
        mark = ""
        if r.notes:
            marks.append(f"[{len(marks) + 1}] row {r.index}: " + " | ".join(r.notes))
            mark = f" [{len(marks)}]"
        print(f"{r.index:>3}  {_label(r.label, 16)} {span:<4} {_label(r.teacher_top1, 16)} {_label(r.student_top1, 16)} "
              f"{_fmt(r.teacher_prob)} {_fmt(r.student_prob)} {_fmt(r.kl_shared, 9)} "
              f"{_fmt(r.kl_teacher_coverage, 5, 2)} {_fmt(r.kl_student_coverage, 5, 2)} {_fmt(r.uld)} "
              f"{_fmt(r.value_ot)} {_fmt(r.hybrid)} | {_fmt(r.uld_half)} {_fmt(r.token_ot_string)} "
              f"{_fmt(r.token_ot_edit)}{mark}")
    print("-" * len(head))
    token_rows = [r for r in table if r.kind == "token"]
    if token_rows:
        print(f"mean ULD over the text's {len(token_rows)} rows: {sum(r.uld for r in token_rows) / len(token_rows):.4f}"
              f"   same-span rows {sum(r.same_span for r in token_rows)}/{len(token_rows)}")
    for m in marks:
        print(m)
    print("predicts: the text whose probability the row compares (row j uses the logits BEFORE it); "
          "'(next token)': both models' prediction after the whole text; span '!=': the two predicted "
          "tokens cover different bytes (positional misalignment)")
    print("p_t(x), q_s(x): probability of the actual token(s) (chain rule for a group); KL_shared: KL(p||q) "
          "in nats on the shared token strings, cov_t/cov_s = mass covered; ULD: sorted-L1 closed form, in "
          "[0, 2]; n*W1: exact value-space OT (POT), equals ULD; hybrid: GOLD's hybrid ULD")
    print(f"right of '|', all in [0, 1]: ULD/2 (relabelling-free token OT, a lower bound of OT_str without "
          f"truncation); OT_str / OT_edit: exact token-space OT on top-{cfg.top_k} / top-{cfg.edit_top_k} "
          f"+ rest bucket, string-identity / edit-distance cost")


def _compare_config(args: argparse.Namespace) -> ComparisonConfig:
    try:
        weights = args.hybrid_weights or (None, None)
        hybrid = HybridConfig(
            divergence=args.hybrid_divergence, beta=args.hybrid_beta,
            weighting="fixed" if args.hybrid_weights else args.hybrid_weighting,
            matched_weight=weights[0], unmatched_weight=weights[1], clamp=args.hybrid_clamp,
        )
        return ComparisonConfig(
            alignment=args.alignment, merge=args.merge, teacher_temperature=args.teacher_temperature,
            student_temperature=args.student_temperature, top_k=args.top_k, edit_top_k=args.edit_top_k,
            costs=tuple(args.costs), hybrid=hybrid, max_tokens=args.max_tokens, chunk_rows=args.chunk_rows,
            value_ot=not args.no_value_ot,
        )
    except ValueError as err:
        raise _option_error(err, _COMPARE_OPTIONS) from None


def _cmd_compare(args: argparse.Namespace) -> int:
    try:  # every input checked before any model is loaded
        check_text(args.text, "--text")
        check_text(args.prompt, "--prompt", allow_empty=True)
    except ValueError as err:
        raise _UsageError(str(err)) from None
    config = _compare_config(args)
    import warnings

    from . import zoo
    from .compare import compare_text

    try:
        teacher = zoo.load(args.teacher, progress=not args.json)
        student = zoo.load(args.student, progress=not args.json)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = compare_text(teacher, student, args.text, prompt=args.prompt, config=config)
        for w in caught:  # e.g. truncation to the model context: shown, never silent
            print(f"warning: {w.message}", file=sys.stderr)
    except zoo.ZooError as err:
        raise _UsageError(str(err)) from None
    if args.json:
        _print_json(table.as_dict())
    else:
        _print_comparison(table)
    return 0


# --------------------------------------------------------------------------------------------
# the parser
# --------------------------------------------------------------------------------------------


def _int_or_none(text: str) -> int | None:
    """An integer option that also takes ``none`` (no limit); the config checks the range."""
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None


def _field_help(cls: type, name: str) -> str:
    return next(f.metadata.get("help", "") for f in fields(cls) if f.name == name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uld-explorer", formatter_class=_Formatter,
        description="KL vs exact optimal transport vs the ULD closed form, teacher first, student second.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    app = sub.add_parser("app", help="start the Streamlit app (bound to 127.0.0.1 by default)", formatter_class=_Formatter)
    app.add_argument("--address", default="127.0.0.1", help="interface to bind")
    app.add_argument("--port", type=int, default=8501, help="port")
    app.set_defaults(func=_cmd_app)

    d = PlaygroundConfig()
    pg = sub.add_parser(
        "playground", formatter_class=_Formatter,
        help="every divergence for a synthetic teacher/student pair (the app's Playground, same defaults)",
        description="A synthetic teacher p and student q drawn from shared token scores (the app's Playground "
                    "page, same defaults), and every divergence of them: KL (if one vocabulary), ULD, exact "
                    "OT in value, rank and token space, the hybrid ULD. Each row says its scale.",
    )
    pg.add_argument("--vt", type=int, default=d.V_t, help="teacher vocabulary size V_t")
    pg.add_argument("--vs", type=int, default=d.V_s, help="student vocabulary size V_s")
    pg.add_argument("--teacher-temperature", type=float, default=d.teacher_temperature, help="teacher T > 0")
    pg.add_argument("--student-temperature", type=float, default=d.student_temperature, help="student T > 0")
    pg.add_argument("--shift", type=int, default=d.shift, help="move the student's preferences by this many tokens")
    pg.add_argument("--noise", type=float, default=d.noise, help="Gaussian noise (std >= 0) on the student's scores")
    pg.add_argument("--permute", action="store_true", default=d.permute_student,
                    help="shuffle the student's probabilities (identity blindness)")
    pg.add_argument("--seed", type=int, default=d.seed, help="random seed (>= 0)")
    pg.add_argument("--top-k", type=int, default=d.top_k, help="tokens per side for token-space OT")
    pg.add_argument("--cost", choices=list(COSTS), default="string",
                    help="token-space OT ground cost: " + "; ".join(f"{k}: {v.description}" for k, v in COSTS.items()))
    pg.add_argument("--json", action="store_true", help="print JSON (settings and rows) instead of a table")
    pg.set_defaults(func=_cmd_playground)

    models = sub.add_parser("models", help="the offline model zoo: list and fetch real pretrained models",
                            formatter_class=_Formatter)
    msub = models.add_subparsers(dest="models_command", required=True)
    ml = msub.add_parser("list", help="zoo models: vocabulary, size, license, cached or not, disk size",
                         formatter_class=_Formatter)
    ml.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ml.set_defaults(func=_cmd_models_list)
    mf = msub.add_parser(
        "fetch", help="download (package registry), verify sha256 and convert zoo models into the cache",
        description="Download the pinned wheels with pip, assemble and verify the GGUF, convert it once "
                    "to a safetensors folder in the cache. Prints each model's folder.",
        formatter_class=_Formatter,
    )
    mf.add_argument("names", nargs="*", metavar="NAME", help="zoo model name(s), see `uld-explorer models list`")
    mf.add_argument("--all", action="store_true", help="fetch every zoo model")
    mf.add_argument("--keep-sources", action="store_true", help="keep the wheels and the GGUF after conversion")
    mf.add_argument("--force", action="store_true", help="rebuild even if already cached")
    mf.add_argument("--quiet", action="store_true", help="no progress bars")
    mf.set_defaults(func=_cmd_models_fetch)
    mv = msub.add_parser(
        "verify", help="re-hash every file of cached zoo models against the sha256 recorded at fetch",
        description="Re-hash every file of each cached model against the sha256 recorded when it was "
                    "built. Loads re-hash only the files written since they were last verified; this "
                    "checks everything. Nothing is ever deleted: a damaged model is named with its file "
                    "and the command that rebuilds it. Exit 2 when a model is damaged.",
        formatter_class=_Formatter,
    )
    mv.add_argument("names", nargs="*", metavar="NAME", help="zoo model name(s)")
    mv.add_argument("--all", action="store_true", help="every cached zoo model")
    mv.set_defaults(func=_cmd_models_verify)

    toks = sub.add_parser("tokenizers", formatter_class=_Formatter,
                          help="tokenizers without weights: list and fetch real tokenizer families offline")
    tsub = toks.add_subparsers(dest="tokenizers_command", required=True)
    tl = tsub.add_parser("list", formatter_class=_Formatter,
                         help="tokenizer-only entries: family, vocabulary, fidelity to the original, status, disk")
    tl.add_argument("--json", action="store_true", help="print JSON instead of a table")
    tl.set_defaults(func=_cmd_tokenizers_list)
    tf = tsub.add_parser(
        "fetch", formatter_class=_Formatter,
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
    tf.set_defaults(func=_cmd_tokenizers_fetch)

    c, h = ComparisonConfig(), HybridConfig()
    cmp_ = sub.add_parser(
        "compare", formatter_class=_Formatter,
        help="teacher vs student on a text, position by position: KL (shared strings), ULD, hybrid, exact OT",
        description="Run a teacher and a student on the same (prompt +) text and print, for every aligned "
                    "position of the text and for the token after it, the text it predicts, both top-1 "
                    "tokens, KL on the shared token strings (with the mass covered), ULD, exact value-space OT "
                    "(= ULD), GOLD's hybrid ULD, and on one [0, 1] scale ULD/2 next to exact token-space OT "
                    "(string and edit costs). Models are zoo names (see `uld-explorer models list`), local "
                    "folders or Hugging Face ids.",
    )
    cmp_.add_argument("--teacher", default=DEFAULT_TEACHER, help="teacher model")
    cmp_.add_argument("--student", default=DEFAULT_STUDENT, help="student model")
    cmp_.add_argument("--text", required=True, help="the text both models read and are scored on")
    cmp_.add_argument("--prompt", default="",
                      help="read before the text, not scored (the text's first token is then scored too)")
    cmp_.add_argument("--alignment", choices=list(ALIGNMENTS), default=c.alignment,
                      help=_field_help(ComparisonConfig, "alignment"))
    cmp_.add_argument("--merge", choices=list(MERGES), default=c.merge, help=_field_help(ComparisonConfig, "merge"))
    cmp_.add_argument("--top-k", type=int, default=c.top_k, help=_field_help(ComparisonConfig, "top_k"))
    cmp_.add_argument("--edit-top-k", type=int, default=c.edit_top_k, help=_field_help(ComparisonConfig, "edit_top_k"))
    cmp_.add_argument("--costs", nargs="*", choices=list(COSTS), default=list(c.costs), metavar="COST",
                      help=_field_help(ComparisonConfig, "costs"))
    cmp_.add_argument("--teacher-temperature", type=float, default=c.teacher_temperature,
                      help=_field_help(ComparisonConfig, "teacher_temperature"))
    cmp_.add_argument("--student-temperature", type=float, default=c.student_temperature,
                      help=_field_help(ComparisonConfig, "student_temperature"))
    cmp_.add_argument("--max-tokens", type=_int_or_none, default=c.max_tokens, metavar="N|none",
                      help=_field_help(ComparisonConfig, "max_tokens"))
    cmp_.add_argument("--no-value-ot", action="store_true",
                      help="skip the n*W1 column (exact value-space OT, equal to ULD: an independent check)")
    cmp_.add_argument("--chunk-rows", type=int, default=c.chunk_rows, help=_field_help(ComparisonConfig, "chunk_rows"))
    cmp_.add_argument("--hybrid-divergence", choices=list(HYBRID_DIVERGENCES), default=h.divergence,
                      help="hybrid: the matched strings' divergence; "
                           + "; ".join(f"{k}: {v}" for k, v in HYBRID_DIVERGENCES.items()))
    cmp_.add_argument("--hybrid-beta", type=float, default=h.beta, help="hybrid: the JSD's beta, in [0, 1]")
    cmp_.add_argument("--hybrid-weighting", choices=list(HYBRID_WEIGHTINGS), default=h.weighting,
                      help="hybrid: " + "; ".join(f"{k}: {v}" for k, v in HYBRID_WEIGHTINGS.items()))
    cmp_.add_argument("--hybrid-weights", type=float, nargs=2, metavar=("W_MATCHED", "W_UNMATCHED"), default=None,
                      help="hybrid: fixed weights (implies --hybrid-weighting fixed)")
    cmp_.add_argument("--hybrid-clamp", type=float, default=h.clamp, metavar="C",
                      help="hybrid: clamp the matched masses at C inside the logs, as GOLD does (1e-8 reproduces "
                           "GOLD's numbers); default: exact")
    cmp_.add_argument("--json", action="store_true", help="print strict JSON (settings, tokenizations, rows)")
    cmp_.set_defaults(func=_cmd_compare)
    _add_distill_parsers(sub)
    return parser


# --------------------------------------------------------------------------------------------
# distillation: distill, runs list, answers
# --------------------------------------------------------------------------------------------

#: DistillConfig fields the ``distill`` command takes as flags (``--uld-weight``, ``--lam`` alias).
_DISTILL_FLAGS = [f.name for f in fields(DistillConfig) if f.name not in ("max_steps", "seed", "loss")]


def _cmd_distill(args: argparse.Namespace) -> int:
    from .distill.loop import DistillError, train
    from .distill.runs import default_runs_dir, new_run_name

    run_dir = None
    overrides = {name: getattr(args, name) for name in ["loss", "max_steps", "seed", *_DISTILL_FLAGS]
                 if getattr(args, name, None) is not None}
    try:
        from .distill.config import preset

        config = preset(args.preset, **overrides)
        if args.run_dir:
            run_dir = args.run_dir
        elif args.resume:
            raise ValueError("--resume needs --run-dir DIR (the run to continue; `uld-explorer runs list` shows them)")
        else:
            runs = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
            run_dir = os.path.join(runs, new_run_name(config.loss, runs))
        if args.resume and getattr(args, "max_steps", None) is None:  # continue to the run's own length
            saved = json.loads(open(os.path.join(run_dir, "config.json"), encoding="utf-8").read()) \
                if os.path.isfile(os.path.join(run_dir, "config.json")) else None
            if saved:
                config = config.replace(max_steps=int(saved["config"]["max_steps"]))
        print(f"run directory: {run_dir}", file=sys.stderr)
        last = train(config, run_dir, resume=args.resume, preset=args.preset, progress=not args.no_progress)
    except DistillError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a Ctrl-C while loading, or a second one: the checkpoint before it stands
        from .distill.runs import latest_checkpoint

        ckpt = latest_checkpoint(run_dir) if run_dir and os.path.isfile(os.path.join(run_dir, "config.json")) else None
        print("interrupted; " + (f"continue from {ckpt.name} with: uld-explorer distill --resume --run-dir {run_dir}"
                                 if ckpt else "no checkpoint was written yet: start the run again"), file=sys.stderr)
        return 130
    if args.json:
        _print_json(last)
    else:
        ev = "" if last.get("eval_top1") is None else (
            f", held-out CE {last['eval_ce']:.3f}, ULD {last['eval_uld']:.3f}, top-1 {last['eval_top1']:.1%}")
        print(f"{last['state']} at step {last['step']}: loss {last['loss']:.4f}{ev}; checkpoint {last['checkpoint']}")
        if last["state"] == "stopped":
            print(f"continue it with: uld-explorer distill --resume --run-dir {run_dir}")
    return 130 if last["state"] == "stopped" else 0


def _cmd_runs_list(args: argparse.Namespace) -> int:
    from .distill.runs import default_runs_dir, list_runs

    runs = list_runs(args.runs_dir)
    if args.json:
        _print_json([r.to_dict() for r in runs])
        return 0
    if not runs:
        print(f"no runs in {args.runs_dir or default_runs_dir()} (start one: uld-explorer distill --preset cpu-demo)")
        return 0
    print(f"{'run':34} {'loss':7} {'state':9} {'step':>11} {'loss':>8} {'eval CE':>8} {'eval ULD':>8} {'top-1':>6}")
    for r in runs:
        d = r.to_dict()
        print(f"{r.name[:34]:34} {r.loss:7} {r.state:9} {f'{r.step}/{r.max_steps}':>11} {_fmt(d['loss_value'], 8)} "
              f"{_fmt(d['eval_ce'], 8)} {_fmt(d['eval_uld'], 8)} "
              f"{'' if d['eval_top1'] is None else format(d['eval_top1'], '.1%'):>6}")
    return 0


def _cmd_answers(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .distill.data import _answers_filename, generate_answers, load_prompts, write_answers
    from .zoo.cache import cache_dir
    from .zoo.loader import load

    loaded = load(args.teacher)
    prompts = load_prompts()
    with tqdm(total=len(prompts), desc=f"teacher answers ({loaded.name})", unit="prompt") as bar:
        answers = generate_answers(loaded, prompts, args.max_new_tokens, batch_size=args.batch_size,
                                   progress=lambda d, n: bar.update(d - bar.n))
    out = args.out or os.path.join(cache_dir(), "distill", "answers")
    path = write_answers(__import__("pathlib").Path(out) / _answers_filename(args.teacher, args.max_new_tokens),
                         answers, args.teacher, args.max_new_tokens)
    print(f"{len(answers)} answers of {len(prompts)} prompts -> {path}")
    return 0


def _add_distill_parsers(sub: Any) -> None:
    dd = DistillConfig()
    ds = sub.add_parser(
        "distill", formatter_class=_Formatter,
        help="train a student on the teacher's answers (CE, ULD, CE + ULD, KL, hybrid); writes a run directory",
        description="Distill a teacher into a student and write a run directory (config.json, metrics.jsonl, "
                    "probe.jsonl, safetensors checkpoints) that the app's Distillation page shows live.\n\n"
                    + "\n".join(f"preset {k}: {', '.join(f'{a}={b}' for a, b in v.items())}" for k, v in PRESETS.items()),
    )
    ds.add_argument("--preset", choices=list(PRESETS), default="cpu-demo", help="starting point; flags override it")
    ds.add_argument("--loss", choices=list(__import__("uld_explorer.distill.config", fromlist=["LOSSES"]).LOSSES),
                    default=argparse.SUPPRESS, help=f"{_field_help(DistillConfig, 'loss')} (default: {dd.loss})")
    ds.add_argument("--max-steps", type=int, default=argparse.SUPPRESS, help="optimizer steps (default: the preset's)")
    ds.add_argument("--run-dir", default=None, help="the run directory (None: <runs dir>/<loss>-<date>-<time>)")
    ds.add_argument("--runs-dir", default=None, help="where new runs go when --run-dir is not given "
                                                     "(None: $ULD_EXPLORER_RUNS or ./runs)")
    ds.add_argument("--seed", type=int, default=argparse.SUPPRESS,
                    help="seed: the student's initialisation and the batch order (default: the preset's, else 0)")
    ds.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    ds.add_argument("--lam", dest="uld_weight", type=float, default=argparse.SUPPRESS, help="alias of --uld-weight")
    for name in _DISTILL_FLAGS:
        f = next(x for x in fields(DistillConfig) if x.name == name)
        flag = "--" + name.replace("_", "-")
        kind = type(f.default)
        ds.add_argument(flag, dest=name, type=kind, default=argparse.SUPPRESS,
                        help=f"{f.metadata.get('help', '')} (default: the preset's, else {f.default!r})")
    ds.add_argument("--json", action="store_true", help="print the last metrics line as JSON")
    ds.add_argument("--no-progress", action="store_true", help="no progress bar")
    ds.set_defaults(func=_cmd_distill)

    runs = sub.add_parser("runs", help="distillation runs: list them", formatter_class=_Formatter)
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    rl = rsub.add_parser("list", help="every run directory: state, step, loss, held-out metrics", formatter_class=_Formatter)
    rl.add_argument("--runs-dir", default=None, help="default: $ULD_EXPLORER_RUNS or ./runs")
    rl.add_argument("--json", action="store_true", help="one JSON array")
    rl.set_defaults(func=_cmd_runs_list)

    an = sub.add_parser("answers", formatter_class=_Formatter,
                        help="generate the teacher's greedy answers to the project's prompts (the distillation data)")
    an.add_argument("--teacher", default=DEFAULT_TEACHER, help="zoo name, model folder or hub id")
    an.add_argument("--max-new-tokens", type=int, default=dd.max_new_tokens, help="new tokens per answer at most")
    an.add_argument("--batch-size", type=int, default=16, help="prompts generated together")
    an.add_argument("--out", default=None, help="directory for the answers file (default: the cache; the shipped "
                                                "default-teacher file lives in uld_explorer/distill/data/answers)")
    an.set_defaults(func=_cmd_answers)


#: What to turn down when a command runs out of memory, by command.
_MEMORY_KNOBS = {
    "compare": "--max-tokens (text tokens per side), --chunk-rows (rows computed at once), --top-k / "
               "--edit-top-k, or a smaller model",
    "playground": "--vt / --vs (vocabulary sizes) or --top-k",
    "distill": "--batch-size or the student's size (--student-hidden, --student-layers)",
}


def _out_of_memory(err: BaseException) -> bool:
    """NumPy and Python raise MemoryError; torch's CPU allocator a RuntimeError that says so."""
    if isinstance(err, MemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input or out of memory, 130 interrupted,
    141 closed pipe)."""
    for stream in (sys.stdout, sys.stderr):  # an ASCII terminal shows 'caf\xe9', never a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        args = build_parser().parse_args(argv)
        try:
            code = int(args.func(args) or 0)
        except (ValueError, TypeError) as err:  # bad input: one line, no traceback
            print(f"error: {err}", file=sys.stderr)
            code = 2
        except (MemoryError, RuntimeError) as err:
            if not _out_of_memory(err):
                raise
            knobs = _MEMORY_KNOBS.get(args.command, "the sizes of the inputs")
            print(f"error: out of memory while running `{args.command}` ({type(err).__name__}: "
                  f"{str(err)[:200] or 'no detail'}); lower {knobs}", file=sys.stderr)
            code = 2
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return code
    except BrokenPipeError:
        # the reader went away (`... | head -1`): stop quietly, as Unix tools do on SIGPIPE
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
