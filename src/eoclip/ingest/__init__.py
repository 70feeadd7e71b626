"""Real data in: M3LEO/geetiles chip files, STAC catalogues and ASF GUNW products -> ChipStore.

>>> from eoclip.ingest import ExecutorSpec, M3LEOConfig, StoreSpec, ingest_m3leo
>>> report = ingest_m3leo(M3LEOConfig(root="download"), StoreSpec("conus.store", chip_px=64),
...                       ExecutorSpec(workers=8))  # doctest: +SKIP

Every path is a ``ChipSource`` run by the one chip loop (``run_ingest``): shard-aligned
parallel tasks, in-order commits, resumable. Each run writes ``<store>.ingest.json`` beside the
store: chips written, modalities present, and every skipped file with its reason.
"""

from eoclip.ingest.executors import ExecutorSpec
from eoclip.ingest.grid import ChipGrid, chip_grid, reproject_to_chip
from eoclip.ingest.gunw import GunwLibrary, read_gunw, select_pairs
from eoclip.ingest.layout import find_datasets, read_chips, read_splits
from eoclip.ingest.m3leo import M3LEOConfig, M3LEOSource, ingest_m3leo
from eoclip.ingest.report import IngestError, IngestFileError, IngestReport, NothingIngestedError
from eoclip.ingest.runner import GridSpec, StoreSpec, load_grid, run_ingest
from eoclip.ingest.source import ChipData, ChipSource
from eoclip.ingest.stac import StacConfig, StacSource, ingest_stac, load_stac_config, search_items

__all__ = [
    "ChipData",
    "ChipGrid",
    "ChipSource",
    "ExecutorSpec",
    "GridSpec",
    "GunwLibrary",
    "IngestError",
    "IngestFileError",
    "IngestReport",
    "M3LEOConfig",
    "M3LEOSource",
    "NothingIngestedError",
    "StacConfig",
    "StacSource",
    "StoreSpec",
    "chip_grid",
    "find_datasets",
    "ingest_m3leo",
    "ingest_stac",
    "load_grid",
    "load_stac_config",
    "read_chips",
    "read_gunw",
    "read_splits",
    "reproject_to_chip",
    "run_ingest",
    "search_items",
    "select_pairs",
]
