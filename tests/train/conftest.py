"""Fixtures for the training tests; the helpers live in train_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import make_store


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """40 chips: 24 train, 8 val, 8 test."""
    path = tmp_path_factory.mktemp("stores") / "tiny"
    make_store(path)
    return path
