"""Real data in: M3LEO/geetiles chip files, STAC catalogues and ASF GUNW products -> ChipStore.

>>> from eoclip.ingest import M3LEOConfig, ingest_m3leo
>>> report = ingest_m3leo(M3LEOConfig(root="conus", store="conus.store", chip_px=64))  # doctest: +SKIP

Each path writes ``<store>.ingest.json`` beside the store: chips written, modalities present,
and every skipped file with its reason.
"""

from eoclip.ingest.grid import ChipGrid, chip_grid, reproject_to_chip
from eoclip.ingest.gunw import read_gunw, select_pairs
from eoclip.ingest.m3leo import M3LEOConfig, ingest_m3leo
from eoclip.ingest.report import IngestFileError, IngestReport
from eoclip.ingest.runner import GridSpec, StoreSpec, load_grid
from eoclip.ingest.stac import StacConfig, ingest_stac, load_stac_config, search_items

__all__ = [
    "ChipGrid",
    "GridSpec",
    "IngestFileError",
    "IngestReport",
    "M3LEOConfig",
    "StacConfig",
    "StoreSpec",
    "chip_grid",
    "ingest_m3leo",
    "ingest_stac",
    "load_grid",
    "load_stac_config",
    "read_gunw",
    "reproject_to_chip",
    "search_items",
    "select_pairs",
]
