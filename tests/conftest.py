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
    checkpoints and exits), then killed after a minute: only those processes, and only while the
    pid, start time and command its launch recorded still match (never a pid reused meanwhile)."""
    import signal
    import time

    from uld_explorer.distill import runs
    from uld_explorer.distill.process import SAME, check, signal_if_same
    from uld_explorer.distill.rundir import RunDir

    monkeypatch.setenv(runs.RUNS_ENV, str(tmp_path))
    yield tmp_path
    for d in tmp_path.iterdir():
        launch = RunDir(d).launch() if d.is_dir() else {}
        if not launch.get("pid") or not signal_if_same(launch, signal.SIGINT):
            continue
        deadline = time.monotonic() + 60
        while check(launch) == SAME and time.monotonic() < deadline:
            time.sleep(0.5)
        signal_if_same(launch, signal.SIGKILL)
