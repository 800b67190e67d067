"""The built wheel carries the app: an installed copy (not this checkout) finds and serves it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import browser as web  # tests/browser.py: the server helpers the browser test uses
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from this checkout, installed (no deps: this venv has them) into a folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp / "dist")], check=True, cwd=tmp, capture_output=True)
    (wheel,) = (tmp / "dist").glob("uld_explorer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for member in ("uld_explorer/app/main.py", "uld_explorer/app/pages/playground.py", "uld_explorer/app/assets/icon.png"):
        assert member in names, (member, [n for n in names if "/app/" in n])
    target = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    return target


def _env(target: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(target)}


@pytest.mark.slow
def test_an_installed_copy_runs_its_own_app(installed, tmp_path):
    code = (
        "import sys, uld_explorer.app as a\n"
        f"assert str(a.MAIN_SCRIPT).startswith({str(installed)!r}), a.MAIN_SCRIPT\n"
        "from streamlit.testing.v1 import AppTest\n"
        "at = AppTest.from_file(str(a.MAIN_SCRIPT), default_timeout=120).run()\n"
        "assert not at.exception, [e.value for e in at.exception]\n"
        "print(at.title[0].value)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(installed), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Learn: from KL to ULD" in out.stdout  # the router's default page, from the installed copy


@pytest.mark.slow
def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


def test_uld_explorer_app_serves_from_an_installed_copy(installed, tmp_path):
    port = web.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uld_explorer.cli", "app", "--port", str(port)], cwd=tmp_path,
                            env=_env(installed), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        web.wait_healthy(proc, f"http://127.0.0.1:{port}", 90,
                         lambda: proc.stdout.read().decode(errors="replace")[-3000:] if proc.poll() is not None else "")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
        # `uld-explorer app` IS the server (exec): stopping it stops the server, nothing is left behind
        proc.terminate()
        proc.wait(timeout=10)
        assert _refused(port), "the server still answers after `uld-explorer app` was stopped"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole session, whatever it started
            proc.wait(timeout=10)
