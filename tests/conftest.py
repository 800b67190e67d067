"""Shared fixtures for the math-core tests (teacher p first, student q second everywhere)."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh, seeded NumPy generator per test (tests stay independent and reproducible)."""
    return np.random.default_rng(20240217)
