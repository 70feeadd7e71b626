"""What an ingest source gives the chip loop: one chip's arrays, channel names and labels.

Every ingest path (M3LEO files, a STAC catalogue, ASF GUNW products) is a ``ChipSource``; the
one chip loop (``eoclip.ingest.runner.run_ingest``) plans, parallelises, writes and commits.
A source is pickled to the worker processes, so it holds settings and paths, and opens what it
reads lazily in each process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from eoclip.ingest.grid import ChipGrid
from eoclip.ingest.report import IngestReport

__all__ = ["ChipData", "ChipSource", "mask_out_of_range"]


@dataclass
class ChipData:
    """One chip as read from a source.

    Attributes:
        arrays: Per modality float32 (C, H, W) in physical units, NaN = no data; a modality
            the chip lacks is left out.
        names: Per variable modality (gunw) the names of its C channels.
        labels: ``label_*`` values (NaN = unknown).
        not_written: Why the chip cannot be written, when the source knows without reading.
    """

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, float] = field(default_factory=dict)
    not_written: str | None = None


class ChipSource:
    """Base of the ingest sources.

    Attributes:
        name: The report's ``source`` (``m3leo``, ``stac``, ``asf``).
        modalities: Modalities of the store it writes.
        spatial_blocks: Order the chips along a Hilbert curve so that a block of chips (one
            store shard) is compact: sources that query per block (STAC) want this.
    """

    name = "source"
    modalities: tuple[str, ...] = ()
    spatial_blocks = False

    def open_block(self, rows: list[dict], report: IngestReport) -> None:
        """Prepare for the chips of one block (e.g. one catalogue search for all of them).

        Args:
            rows: The block's chips (``chip_id``, ``geometry`` in EPSG:4326, ``aoi``, ``split``
                and source-specific keys).
            report: Where a problem of the whole block is recorded.
        """

    def read(self, grid: ChipGrid, row: dict, report: IngestReport) -> ChipData:
        """Read one chip onto its grid; record every product that could not be used.

        Raises:
            IngestFileError: The chip cannot be read at all (then it is skipped).
        """
        raise NotImplementedError


def mask_out_of_range(x: np.ndarray, valid_range: tuple[float, float]) -> tuple[np.ndarray, int]:
    """Set values outside ``valid_range`` to NaN (they are not data: e.g. dB stored as uint16).

    Returns:
        (x with those values NaN, how many bands (first axis) had any such value).
    """
    lo, hi = valid_range
    with np.errstate(invalid="ignore"):
        bad = (x < lo) | (x > hi)
    if not bad.any():
        return x, 0
    x = np.where(bad, np.float32(np.nan), x)
    return x, int(bad.reshape(bad.shape[0], -1).any(axis=1).sum())
