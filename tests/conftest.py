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
