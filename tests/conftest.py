"""Shared pytest fixtures and helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_SPICE = REPO_ROOT.parent / "shared" / "reference" / "spice"
"""ngspice reference runs, kept beside the checkout (not in the repository)."""


@pytest.fixture(scope="session")
def build_root(tmp_path_factory) -> Path:
    """Build folder for simulator models, shared by the tests of one pytest worker."""
    root = os.environ.get("AMC_TEST_BUILD_DIR")
    if root:
        return Path(root).resolve()
    return REPO_ROOT / "build" / "pytest"
