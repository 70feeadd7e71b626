"""A tiny synthetic world shared by the synthetic-world tests (2 AOIs x 30 chips at 32 px)."""

from __future__ import annotations

import pytest
from world_helpers import SMALL

from eoclip.data.synthetic import make_world


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """Path of a generated small world (read it, do not modify it)."""
    path = tmp_path_factory.mktemp("synthetic") / "world"
    make_world(path, config=SMALL, progress=False, workers=1).close()
    return path
