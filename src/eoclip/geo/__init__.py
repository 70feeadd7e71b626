"""Areas of interest, chip grids and geographic band splits.

>>> from eoclip.geo import load_aoi, make_grid, band_splits
>>> grid = band_splits(make_grid("conus"))   # ~167K chips of 4480 m, split 60/20/20 by bands
"""

from eoclip.geo.aoi import AOI, PAPER_CHIP_COUNTS, list_aois, load_aoi, validate_geometry
from eoclip.geo.grid import (
    GRID_COLUMNS,
    PAPER_CHIP_SIZE_M,
    chip_count,
    make_grid,
    subgrid,
    utm_crs_for,
)
from eoclip.geo.splits import band_splits, split_pattern

__all__ = [
    "AOI",
    "GRID_COLUMNS",
    "PAPER_CHIP_COUNTS",
    "PAPER_CHIP_SIZE_M",
    "band_splits",
    "chip_count",
    "list_aois",
    "load_aoi",
    "make_grid",
    "split_pattern",
    "subgrid",
    "utm_crs_for",
    "validate_geometry",
]
