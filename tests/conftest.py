"""Shared fixtures for the math-core tests (teacher p first, student q second everywhere)."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh, seeded NumPy generator per test (tests stay independent and reproducible)."""
    return np.random.default_rng(20240217)


@pytest.fixture(scope="session")
def default_models():
    """The zoo's default teacher and student on this machine (fetched once on a fresh cache, then
    only checked): the pages offer a Fetch button for a missing model, the tests need them there."""
    import uld_explorer as ux

    return {name: ux.fetch_model(name, progress=False) for name in (ux.DEFAULT_TEACHER, ux.DEFAULT_STUDENT)}


@pytest.fixture
def runs_dir(monkeypatch, tmp_path):
    """An empty distillation runs directory for this test (``$ULD_EXPLORER_RUNS`` points at it).
    Afterwards every run process launched into it that is still alive is interrupted (SIGINT: it
    checkpoints and exits), then killed after a minute: only those processes, by their pid."""
    import os
    import signal
    import time

    from uld_explorer.distill import runs
    from uld_explorer.distill.rundir import RunDir, pid_alive

    monkeypatch.setenv(runs.RUNS_ENV, str(tmp_path))
    yield tmp_path
    for d in tmp_path.iterdir():
        launch = RunDir(d).launch() if d.is_dir() else {}
        if not launch.get("alive") or not launch.get("pid"):
            continue
        pid = int(launch["pid"])
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 60
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
