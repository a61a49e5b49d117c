"""Shared fixtures: paths of the repository and of the reference data beside it."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def shared_mg() -> Path:
    path = SHARED / "data" / "mg"
    if not path.is_dir():
        pytest.skip(f"reference data not found at {path} (../shared is not beside the repository)")
    return path
