"""The fault matrix: every command, driven into the faults a careful user meets (bad input, files
that are not what they should be, Ctrl-C), in a real subprocess. Each answers with one line that
names the file or the option, exits 2 (or 130 for Ctrl-C), and never prints a traceback;
``--debug`` shows the traceback on purpose.

The zoo's own faults (a damaged marker, an unwritable cache, a weights file that is not
safetensors) have their tests next to the code they check (test_zoo.py); so do the runner's that
need a run (two trainers on one run, a truncated checkpoint, a stranger's pid: test_distill_*).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

#: Runs ``main(argv)`` in a fresh interpreter; with ``INTERRUPT_S`` set, a real SIGINT (what Ctrl-C
#: sends) arrives that many seconds after the start, wherever the command is then. SIGINT gets
#: Python's own handler first, as in a terminal: a child inherits an ignored SIGINT from its parent
#: (a test runner may ignore it), and Python then installs none, so the signal would do nothing.
PRELUDE = (
    "import os, signal, sys, threading\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "t = float(os.environ.get('INTERRUPT_S', '0'))\n"
    "if t: threading.Timer(t, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
    "from uld_explorer.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def cli(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRELUDE, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})


def assert_one_line(r: subprocess.CompletedProcess, code: int, *names: str) -> None:
    """Exit ``code``; stderr's last line is the message and names each of ``names``; no traceback."""
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    for name in names:
        assert name in last, (name, last)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    (root / "a_file").write_text("not a folder")
    (root / "not_json.json").write_text("{ nope")
    for name, config in (("not_json_run", "{ nope"), ("not_a_run", '{"loss": "uld"}')):
        (root / name).mkdir()
        (root / name / "config.json").write_text(config)
    (root / "mine").mkdir()
    (root / "mine" / "metrics.jsonl").write_text('{"step": 0, "loss": 1.0}\n')
    (root / "mine" / "notes.txt").write_text("my notes")
    return root


@pytest.mark.parametrize("args, names", [
    (["compare", "--teacher", "{root}/nowhere", "--text", "hi"], ["no such model folder", "nowhere"]),
    (["compare", "--teacher", "{root}/a_file", "--text", "hi"], ["a_file"]),
    (["compare", "--text", "hi", "--teacher-temperature", "1e-300"], ["--teacher-temperature", "too small"]),
    (["compare", "--text", "hi", "--student-temperature", "nan"], ["--student-temperature"]),
    (["compare", "--text", "   "], ["--text", "empty"]),
    (["compare", "--text", "hi", "--top-k", "5000"], ["--top-k"]),
    (["compare", "--text", "hi", "--hybrid-beta", "2"], ["--hybrid-beta"]),
    (["compare", "--text", "hi", "--hybrid-weights", "1", "-1"], ["--hybrid-weights"]),
    (["playground", "--vt", "0"], ["--vt"]),
    (["playground", "--noise", "-1"], ["--noise"]),
    (["models", "verify", "no-such-model"], ["no-such-model"]),
    (["models", "fetch"], ["--all"]),
    (["tokenizers", "fetch", "no-such-tokenizer"], ["no-such-tokenizer"]),
    (["runs", "list", "--runs-dir", "{root}/a_file"], ["a_file", "not a folder"]),
    (["distill", "--run-dir", "{root}/a_file", "--max-steps", "1"], ["--run-dir {root}/a_file", "is a file"]),
    (["distill", "--resume", "--run-dir", "{root}/a_file"], ["--run-dir {root}/a_file", "is a file"]),
    (["distill", "--resume", "--run-dir", "{root}/not_json_run"], ["{root}/not_json_run/config.json", "not JSON"]),
    (["distill", "--resume", "--run-dir", "{root}/not_a_run"], ["{root}/not_a_run/config.json", "not a run's"]),
    (["distill", "--run-dir", "{root}/mine", "--max-steps", "1"], ["metrics.jsonl, notes.txt", "--force"]),
    (["distill", "--teacher", "{root}/nowhere", "--run-dir", "{root}/t", "--max-steps", "1", "--no-progress"],
     ["--teacher {root}/nowhere", "no such tokenizer folder"]),
    (["distill", "--teacher", "no-such-model", "--run-dir", "{root}/t", "--max-steps", "1", "--no-progress"],
     ["--teacher no-such-model", "unknown tokenizer"]),
    (["experiment", "--losses", "ce,nope", "--out", "{root}/x"], ["--losses", "'nope'"]),
    (["experiment", "--losses", "uld,hybrid", "--out", "{root}/x"], ["--baseline 'ce'", "not among the losses"]),
    (["experiment", "--out", "{root}/a_file", "--max-steps", "1"], ["--out {root}/a_file", "is a file"]),
    (["experiment", "--out", "{root}/mine", "--max-steps", "1"], ["--out {root}/mine", "no experiment"]),
    (["experiment", "--losses", "ce,kl", "--out", "{root}/x", "--max-steps", "1", "--no-progress"],
     ["loss 'kl' needs one shared tokenizer", "ce+uld"]),
    (["answers", "--teacher", "{root}/nowhere", "--out", "{root}/o"], ["--teacher {root}/nowhere", "no such model"]),
    (["answers", "--teacher", "no-such-model", "--out", "{root}/o"], ["--teacher no-such-model", "unknown model"]),
])
def test_a_bad_input_is_one_line_naming_it(files, args, names):
    r = cli(*[a.format(root=files) for a in args])
    assert_one_line(r, 2, *[n.format(root=files) for n in names])
    if args[0] in ("distill", "answers", "experiment"):  # nothing written where the fault was
        assert not (files / "t").exists() and not (files / "o").exists() and not (files / "x").exists()
        assert sorted(p.name for p in (files / "mine").iterdir()) == ["metrics.jsonl", "notes.txt"]


@pytest.mark.parametrize("args", [["compare", "--measures", "nope", "--text", "hi"], ["playground", "--cost", "l2"],
                                  ["compare", "--alignment", "diagonal", "--text", "hi"]])
def test_a_choice_outside_the_registry_is_argparse_usage(args):
    r = cli(*args)
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.usefixtures("default_models")
def test_ctrl_c_during_compare_is_one_line_exit_130():
    """Ctrl-C while `compare` loads the models and runs them: one line, exit 130 (the sweep saw a
    30-80 line traceback)."""
    r = cli("compare", "--text", "The capital of France is " * 200, INTERRUPT_S="3")  # ~1,000 tokens: seconds of work
    assert_one_line(r, 130, "interrupted", "compare")


@pytest.mark.slow
@pytest.mark.usefixtures("default_models")
def test_ctrl_c_during_an_experiment_is_one_line_exit_130(tmp_path):
    """Ctrl-C wherever an experiment then is (loading, training, scoring): one line, exit 130; once
    the experiment has started, the line says how to continue it."""
    out = tmp_path / "exp"
    r = cli("experiment", "--losses", "ce", "--seeds", "0", "--max-steps", "50", "--eval-prompts", "4",
            "--out", str(out), "--no-progress", INTERRUPT_S="12", OMP_NUM_THREADS="1")
    assert_one_line(r, 130, "interrupted")
    if (out / "experiment.json").exists():
        assert_one_line(r, 130, f"continue with: uld-explorer experiment --out {out}")


def test_debug_shows_the_traceback_on_purpose(files):
    r = cli("--debug", "compare", "--teacher", str(files / "nowhere"), "--text", "hi")
    assert r.returncode == 1 and "Traceback" in r.stderr and "no such model folder" in r.stderr
    r = cli("compare", "--teacher", str(files / "nowhere"), "--text", "hi", ULD_EXPLORER_DEBUG="1")
    assert r.returncode == 1 and "Traceback" in r.stderr
