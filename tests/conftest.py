"""Shared fixtures. Tests that read ``../shared`` skip with a reason when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEPOSE_SHARED", REPO.parent / "shared"))
DINO = SHARED / "data" / "middlebury_dino" / "dino"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def dino_dir() -> Path:
    """The real Middlebury dino set, read in place (never copied into the repository)."""
    if not (DINO / "dino_par.txt").is_file():
        pytest.skip(f"the Middlebury dino set is not at {DINO} (a user's clone has no ../shared)")
    return DINO
