"""The `uld-explorer` CLI prints what the library computes."""

import json
import shutil
import subprocess
import sys

import pytest

from uld_explorer import divergence_summary, synthetic_pair
from uld_explorer.cli import main


def test_playground_json_matches_library(capsys):
    assert main(["playground", "--vt", "9", "--vs", "6", "--shift", "1", "--seed", "4", "--json"]) == 0
    rows = {r["divergence"]: r["value"] for r in json.loads(capsys.readouterr().out)}
    expected = divergence_summary(*synthetic_pair(9, 6, shift=1, seed=4))
    assert rows["ULD (closed form)"] == pytest.approx(expected.uld, abs=1e-12)
    assert rows["KL(p||q)"] is None  # different vocabularies
    assert rows["token-space OT, string cost (POT)"] == pytest.approx(expected.token_ot.value, abs=1e-12)


def test_playground_identity_blindness_table(capsys):
    assert main(["playground", "--vt", "10", "--vs", "10", "--permute", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    uld_line = next(line for line in out.splitlines() if line.startswith("ULD"))
    assert float(uld_line.split()[3]) == pytest.approx(0.0, abs=1e-9)
    kl_line = next(line for line in out.splitlines() if line.startswith("KL(p||q)"))
    assert float(kl_line.split()[1]) > 0.1


def test_bad_input_is_a_clear_error_not_a_traceback(capsys):
    assert main(["playground", "--vt", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: V_t must be a positive integer") and "Traceback" not in err


def test_console_script_is_installed():
    exe = shutil.which("uld-explorer") or str(__import__("pathlib").Path(sys.executable).parent / "uld-explorer")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "playground" in out and "app" in out
