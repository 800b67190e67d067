"""The `uld-explorer` CLI: prints what the library computes, with the library's defaults and choices."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from uld_explorer import (
    COSTS,
    HYBRID_DIVERGENCES,
    HYBRID_WEIGHTINGS,
    PlaygroundConfig,
    divergence_summary,
    synthetic_pair,
)
from uld_explorer.cli import main
from uld_explorer.text import ALIGNMENTS, MERGES


def _strict(text: str):
    """json.loads that refuses NaN / Infinity (Python's json accepts them by default)."""
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def _cli(*args: str) -> list[str]:
    exe = shutil.which("uld-explorer") or os.path.join(os.path.dirname(sys.executable), "uld-explorer")
    return [exe, *args]


def test_playground_json_matches_library(capsys):
    assert main(["playground", "--vt", "9", "--vs", "6", "--shift", "1", "--seed", "4", "--noise", "0", "--json"]) == 0
    doc = _strict(capsys.readouterr().out)
    rows = {r["key"]: r["value"] for r in doc["rows"]}
    expected = divergence_summary(*synthetic_pair(9, 6, shift=1, seed=4), top_k=PlaygroundConfig().top_k)
    assert rows["uld"] == pytest.approx(expected.uld, abs=1e-12)
    assert rows["uld_half"] == pytest.approx(expected.uld / 2, abs=1e-9)
    assert rows["kl"] is None  # different vocabularies
    assert rows["token_ot_string"] == pytest.approx(expected.token_ot.value, abs=1e-12)
    assert rows["hybrid"] == pytest.approx(float(expected.hybrid.value), abs=1e-12)
    assert {r["scale"] for r in doc["rows"]} >= {"[0, 2]", "[0, 1]"}


def test_playground_defaults_are_the_apps(capsys):
    """No options: the app's Playground pair (PlaygroundConfig), settings echoed in the JSON."""
    assert main(["playground", "--json"]) == 0
    doc = _strict(capsys.readouterr().out)
    assert {k: v for k, v in doc["settings"].items() if k != "cost"} == asdict(PlaygroundConfig())
    cfg = PlaygroundConfig()
    expected = divergence_summary(*cfg.pair(), top_k=cfg.top_k)
    rows = {r["key"]: r["value"] for r in doc["rows"]}
    assert rows["uld"] == pytest.approx(expected.uld, abs=1e-12)
    assert rows["kl_shared"] == pytest.approx(expected.kl_shared, abs=1e-12)


def test_playground_table_has_a_settings_header_and_scales(capsys):
    assert main(["playground", "--vt", "10", "--vs", "10", "--permute", "--seed", "2", "--noise", "0", "--shift", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("playground: teacher V_t=10") and "permuted" in out[0] and "seed=2" in out[0]
    uld_line = next(line for line in out if line.startswith("ULD (closed form)"))
    assert float(uld_line.split()[3]) == pytest.approx(0.0, abs=1e-9) and "[0, 2]" in uld_line
    kl_line = next(line for line in out if line.startswith("KL(p||q)  "))  # not "... on shared strings"
    assert float(kl_line.split()[1]) > 0.1


def test_playground_json_is_strict_at_a_tiny_temperature(capsys):
    """A near-one-hot student makes KL infinite: strict JSON says null, never Infinity."""
    assert main(["playground", "--vt", "8", "--vs", "8", "--student-temperature", "0.001", "--shift", "3", "--json"]) == 0
    doc = _strict(capsys.readouterr().out)
    kl = next(r for r in doc["rows"] if r["key"] == "kl")
    assert kl["value"] is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["--vt", "0"], "error: --vt must be a positive integer"),
        (["--vs", "2000000"], "error: --vs must be a positive integer vocabulary size between 1 and 1,000,000"),
        (["--noise", "-1"], "error: --noise must be a finite number >= 0"),
        (["--noise", "nan"], "error: --noise must be a finite number"),
        (["--seed", "-1"], "error: --seed must be a non-negative integer"),
        (["--top-k", "1000000"], "error: --top-k must be a positive integer between 1 and 4,999"),
        (["--teacher-temperature", "0"], "error: --teacher-temperature must be a finite number > 0"),
    ],
)
def test_playground_bad_input_names_the_option(capsys, args, message):
    assert main(["playground", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err


def test_help_shows_defaults_and_library_choices(capsys):
    with pytest.raises(SystemExit):
        main(["playground", "--help"])
    out = capsys.readouterr().out
    d = PlaygroundConfig()
    assert f"(default: {d.V_t})" in out and f"(default: {d.noise})" in out
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in (*ALIGNMENTS, *MERGES, *COSTS, *HYBRID_DIVERGENCES, *HYBRID_WEIGHTINGS):
        assert name in out, name
    assert "(default: positional)" in out and "(default: observed)" in out and "(default: 500)" in out


def test_help_loads_no_heavy_library():
    """`uld-explorer --help` builds every parser without importing torch, POT or transformers
    (what makes it answer at once; the timing is in docs/benchmarks.md)."""
    code = (
        "import sys; from uld_explorer.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'ot', 'transformers', 'scipy', 'streamlit') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("args", [["playground", "--json"], ["playground"], ["models", "list", "--json"]])
def test_output_into_a_closed_pipe_exits_quietly(args):
    """`uld-explorer ... | head -1` once head has gone: no BrokenPipeError traceback, exit 141
    (128 + SIGPIPE, as Unix tools). Deterministic: stdout is a pipe whose reader is closed."""
    code = (
        "import os, sys; r, w = os.pipe(); os.close(r); os.dup2(w, 1); "
        f"from uld_explorer.cli import main; sys.exit(main({args!r}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stderr == "" and proc.returncode == 141, (proc.returncode, proc.stderr)


def test_json_piped_into_head_in_a_shell():
    cmd = " ".join(_cli("playground", "--json")) + " | head -1"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "{" and proc.stderr == "", proc.stderr


def test_console_script_is_installed():
    out = subprocess.run(_cli("--help"), capture_output=True, text=True, check=True).stdout
    assert "playground" in out and "app" in out and "compare" in out


def test_out_of_memory_is_one_line_with_the_knob_to_turn():
    """A real MemoryError: the child caps its address space just above what it uses after the
    imports, then asks for a 5000 x 5000 token-space OT (several 200 MB float64 arrays)."""
    code = (
        "import resource, sys\n"
        "import uld_explorer, uld_explorer.summary\n"
        "from uld_explorer.cli import main\n"
        "size = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
        "hard = resource.getrlimit(resource.RLIMIT_AS)[1]  # keep the hard limit a shell may have set\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + 300 * 2**20, hard))\n"
        "sys.exit(main(['playground', '--vt', '1000000', '--vs', '1000000', '--top-k', '4999']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert proc.stderr.startswith("error: out of memory while running `playground`")
    assert "lower --vt / --vs (vocabulary sizes) or --top-k" in proc.stderr and "Traceback" not in proc.stderr


# sizes stay small enough to run in a blink when valid (huge ones are refused: tested above)
_ANY = st.one_of(st.sampled_from(["0", "-1", "1", "2", "nan", "inf", "1e-300", "1e9", "x", "0.5", "300", "4999",
                                  "1000000000", "2000000"]),
                 st.integers(-10, 3000).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr))


@st.composite
def _playground_args(draw):
    args = ["playground"]
    for opt in draw(st.lists(st.sampled_from(["--vt", "--vs", "--teacher-temperature", "--student-temperature",
                                              "--shift", "--noise", "--seed", "--top-k"]), unique=True, max_size=4)):
        args += [opt, draw(_ANY)]
    args += draw(st.lists(st.sampled_from(["--permute", "--json"]), unique=True))
    if draw(st.booleans()):
        args += ["--cost", draw(st.sampled_from(["string", "edit", "l2"]))]
    return args


@settings(max_examples=80, deadline=None)
@given(args=_playground_args())
def test_playground_fuzz_exit_0_or_2_never_a_traceback_json_strict(args):
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code
    event(f"exit {code}")
    assert code in (0, 2), (args, code, err.getvalue()[-500:])
    assert "Traceback" not in err.getvalue(), (args, err.getvalue()[-2000:])
    if code == 0 and "--json" in args:
        _strict(out.getvalue())


def test_torch_cpu_out_of_memory_is_one_line_too(monkeypatch, capsys):
    """torch's CPU allocator says 'can't allocate memory' in a RuntimeError, not a MemoryError:
    the same one line. The error is a real one (a 1 PiB tensor), raised where the summary runs."""
    import torch

    import uld_explorer.summary as summary

    try:
        torch.empty(2**50, dtype=torch.uint8)
    except RuntimeError as err:
        real = err
    monkeypatch.setattr(summary, "divergence_summary", lambda *a, **k: (_ for _ in ()).throw(real))
    assert main(["playground"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory while running `playground` (RuntimeError")
    assert "lower --vt / --vs" in err and "Traceback" not in err


@pytest.mark.parametrize("value, expected", [("none", None), ("None", None), ("64", 64)])
def test_max_tokens_takes_none_for_the_model_context(value, expected):
    from uld_explorer.cli import build_parser

    assert build_parser().parse_args(["compare", "--text", "x", "--max-tokens", value]).max_tokens == expected
