"""A tiny synthetic world shared by the synthetic-world tests (2 AOIs x 30 chips at 32 px)."""

from __future__ import annotations

import pytest

from eoclip.data.synthetic import WorldConfig, make_world

# Missing-modality rates raised so that 60 chips surely contain absent modalities.
SMALL = WorldConfig(n_chips_per_aoi=30, chip_px=32, aois=("middle_east", "south_america"),
                    seed=3, missing=(0.1, 0.1, 0.15))


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """Path of a generated small world (read it, do not modify it)."""
    path = tmp_path_factory.mktemp("synthetic") / "world"
    make_world(path, config=SMALL, progress=False, workers=1).close()
    return path
