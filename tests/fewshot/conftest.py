"""Fixtures for the few-shot tests."""

from __future__ import annotations

import geopandas as gpd
import pytest
from fewshot_synth import make_table


@pytest.fixture
def table() -> gpd.GeoDataFrame:
    return make_table()
