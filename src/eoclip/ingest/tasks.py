"""One unit of parallel ingest: read a block of chips and write their pixels into one store shard.

A ``ShardTask`` owns the store positions ``start .. start + len(rows) - 1``, all inside one
shard, so no two tasks ever rewrite the same shard file. The task reads its chips (in the
worker process), encodes each one at once into the store's compact dtypes (uint8 / int16: a
448 px chip is ~7 MB there, ~28 MB as float32), writes the written chips densely from
``start`` in batches, and returns what the coordinator needs to commit them: index rows,
channel validity and names, and the skips. Nothing here touches the index; a task run twice
(a lost worker) writes the same bytes to the same positions.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from eoclip import fsio
from eoclip.data.shardwriter import PixelWriter
from eoclip.ingest.grid import chip_grid
from eoclip.ingest.report import IngestError, IngestFileError, IngestReport
from eoclip.ingest.source import ChipSource

__all__ = [
    "ShardTask",
    "TaskContext",
    "TaskResult",
    "check_claim",
    "claim_store",
    "configure_worker",
    "run_shard_task",
]

logger = logging.getLogger(__name__)

# GDAL settings for many small files: no directory listing on open (a product folder of the
# real download holds ~170 K files), a small block cache (files are read once), no .aux.xml.
GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_CACHEMAX": 64,
    "GDAL_PAM_ENABLED": False,
    "GDAL_NUM_THREADS": 1,
}
ZARR_CONCURRENCY = 2
CLAIM_FILE = ".ingest-run"  # in the store folder: the id of the run allowed to write
_configured = False


@dataclass(frozen=True)
class TaskContext:
    """What every task of a run shares (pickled once per task; small).

    Attributes:
        store: Store URL.
        source: The ChipSource.
        chip_px: Pixels per chip side.
        batch_size: Chips per pixel write inside a shard.
        run_id: The run's claim on the store; a task of an older run stops writing.
    """

    store: str
    source: ChipSource
    chip_px: int
    batch_size: int = 64
    run_id: str = ""


@dataclass(frozen=True)
class ShardTask:
    """Write up to ``len(rows)`` chips at positions from ``start`` (inside one shard).

    Attributes:
        start: First store position.
        rows: Candidate chips, in order; failures leave the tail of the range unwritten.
    """

    start: int
    rows: tuple[dict, ...]


@dataclass
class TaskResult:
    """What a task wrote, for the coordinator to commit in position order.

    Attributes:
        start: The task's first position.
        index: Index rows of the chips written, in position order.
        valid: Per modality bool (n, C).
        slot_names: Per modality (n, C) channel names.
        unwritten: Ids of candidates that could not be written (no usable modality).
        report: Skips and notes of the task's chips.
        pid: Worker process id; ``peak_rss_mb`` its peak resident memory so far, ``cpu_s`` the
            CPU seconds it has used so far (user + system, all its threads).
        seconds: Time the task took.
    """

    start: int
    index: list[dict] = field(default_factory=list)
    valid: dict[str, np.ndarray] = field(default_factory=dict)
    slot_names: dict[str, np.ndarray] = field(default_factory=dict)
    unwritten: list[str] = field(default_factory=list)
    report: IngestReport | None = None
    pid: int = 0
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0
    seconds: float = 0.0


def _claim_path(store_url: str) -> tuple:
    fs, root, _ = fsio.resolve(store_url)
    return fs, fsio.join(root, CLAIM_FILE)


def claim_store(store_url: str) -> str:
    """Make this run the store's only writer; returns its run id.

    Tasks of an earlier run that are still going (a coordinator killed with ``kill -9`` leaves
    Dask tasks running; local workers stop within a second, ``executors.watch_coordinator``)
    find another id in the claim before their next write and stop, so they never overwrite a
    shard that this run is writing.
    """
    fs, path = _claim_path(store_url)
    run_id = f"{os.getpid()}-{uuid.uuid4().hex}"
    fsio.write_bytes_atomic(fs, path, run_id.encode())
    return run_id


def check_claim(store_url: str, run_id: str) -> None:
    """Raise ``IngestError`` if another run has claimed the store since ``run_id`` did."""
    if not run_id:
        return
    fs, path = _claim_path(store_url)
    try:
        current = fs.cat_file(path).decode()
    except FileNotFoundError:
        current = None
    if current != run_id:
        raise IngestError(
            f"{store_url}: another ingest run took over this store (run {current}); "
            f"this one ({run_id}) stops"
        )


def keep_freed_heap() -> bool:
    """Let glibc's malloc reuse freed chip-sized blocks instead of returning them to the system.

    Every chip allocates and frees tens of MB of arrays (several MB each). With glibc's
    defaults each of them is a fresh ``mmap`` (or the heap top is trimmed after the free), so
    every chip pays for zeroing new pages: measured on 48 chips at 448 px, 23 % of the CPU
    time was system time (3.1 of 13.3 s, 443 K page faults). Blocks up to 32 MB (glibc's
    largest mmap threshold) now come from the heap, and up to 256 MB of free heap is kept:
    58-68 K page faults and 12 % less wall time; peak RSS about the same (599 vs 630 MB for
    one worker in bench/ingest_throughput.py).

    Returns:
        Whether the settings took (False on a C library without ``mallopt``).
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_trim_threshold, 256 << 20)) and bool(mallopt(m_mmap_threshold, 32 << 20))


def configure_worker() -> None:
    """Per-process settings for reading chips: GDAL options, one BLAS thread, fewer zarr
    concurrent shard writes (each holds a shard in memory), malloc keeping freed chip
    buffers (`keep_freed_heap`). Idempotent."""
    global _configured
    if _configured:
        return
    keep_freed_heap()
    for key, value in {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}.items():
        os.environ.setdefault(key, value)
    import zarr

    # Writing a batch into a half-full shard loads the shard (~2-3 copies of up to ~60 MB per
    # channel file); zarr's default 10 files at once would exceed 1.5 GB per worker at 448 px.
    # Measured at 448 px, 160 chips in one shard: 1 -> 773 MB, 4 -> 1071 MB peak.
    zarr.config.set({"async.concurrency": ZARR_CONCURRENCY})
    _configured = True


class _Batch:
    """Encoded chips (stored dtypes, preallocated) waiting to be written as one block."""

    def __init__(self, writer: PixelWriter, start: int, size: int):
        self.writer, self.next, self.k = writer, start, 0
        px = writer.chip_px
        self.arrays = {
            name: np.zeros((size, m.max_channels, px, px), dtype=m.dtype)
            for name, m in writer.modalities.items()
        }

    @property
    def full(self) -> bool:
        return self.k == len(next(iter(self.arrays.values())))

    def add(self, stored: dict[str, np.ndarray]) -> None:
        for name, arr in self.arrays.items():
            arr[self.k] = stored[name]
        self.k += 1

    def flush(self, run_id: str = "") -> None:
        if self.k:
            check_claim(self.writer.url, run_id)
            self.writer.write(self.next, {name: arr[: self.k] for name, arr in self.arrays.items()})
            self.next += self.k
            self.k = 0


def run_shard_task(task: ShardTask, ctx: TaskContext) -> TaskResult:
    """Read, encode and write the chips of one task (runs in a worker process).

    Returns:
        The TaskResult; chips are written densely from ``task.start``.
    """
    configure_worker()
    t0 = time.perf_counter()
    report = IngestReport(ctx.source.name)
    result = TaskResult(task.start, report=report)
    writer = PixelWriter(ctx.store)
    mods = list(writer.modalities)
    valid = {m: [] for m in mods}
    names = {m: [] for m in mods}
    batch = _Batch(writer, task.start, max(1, min(ctx.batch_size, len(task.rows))))
    import rasterio

    with rasterio.Env(**GDAL_ENV):
        ctx.source.open_block(list(task.rows), report)
        for row in task.rows:
            encoded = _read_and_encode(row, ctx, writer, report)
            if encoded is None:
                result.unwritten.append(str(row["chip_id"]))
                continue
            stored, index_row = encoded
            batch.add({m: stored[m][0] for m in mods})
            for m in mods:
                valid[m].append(stored[m][1])
                names[m].append(stored[m][2])
            result.index.append(index_row)
            if batch.full:
                batch.flush(ctx.run_id)
        batch.flush(ctx.run_id)
    n, result.pid = len(result.index), os.getpid()
    for m in mods:
        c = writer.modalities[m].max_channels
        result.valid[m] = np.array(valid[m], dtype=bool).reshape(n, c)
        result.slot_names[m] = np.array(names[m], dtype=object).reshape(n, c)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.peak_rss_mb, result.cpu_s = usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime
    result.seconds = time.perf_counter() - t0
    return result


def _read_and_encode(row: dict, ctx: TaskContext, writer: PixelWriter, report: IngestReport):
    """One chip -> ({modality: (stored, valid, names)}, index row), or None if not writable."""
    cid = str(row["chip_id"])
    utm = row.get("utm_epsg")
    try:
        grid = chip_grid(cid, row["geometry"], ctx.chip_px, int(utm) if utm else None)
        data = ctx.source.read(grid, row, report)
    except (ValueError, IngestFileError) as err:
        report.skip(cid, "chip", None, f"not written: {err}")
        return None
    if data.not_written:
        report.skip(cid, "chip", None, f"no modality readable: {data.not_written}")
        return None
    stored = {}
    for m in writer.modalities:
        x = data.arrays.get(m)
        stored[m] = writer.encode(m, x, data.names.get(m) if x is not None else None)
    if not any(s[1].any() for s in stored.values()):
        what = ", ".join(sorted(data.arrays)) or "none"
        report.skip(
            cid,
            "chip",
            None,
            f"no modality readable: chip not written (read: {what}, "
            "no channel with enough valid pixels)"
            if data.arrays
            else "no modality readable: chip not written",
        )
        return None
    index_row = {
        "chip_id": cid,
        "geometry": row["geometry"],
        "aoi": str(row["aoi"]),
        "split": str(row["split"]),
        **data.labels,
    }
    return stored, index_row
