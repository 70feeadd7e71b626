"""The one chip loop of every ingest path: grid + source in, ChipStore out, in parallel.

``run_ingest`` plans the chips not yet in the store into shard-aligned tasks
(``eoclip.ingest.shardplan``), runs them where ``ExecutorSpec`` says (this process, local
worker processes, Dask distributed), commits finished tasks to the index in position order and
checkpoints the summary and the index every few seconds. A kill at any moment leaves a store
whose index lists only whole chips; ``resume`` continues from there.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pandas as pd
from tqdm.auto import tqdm

from eoclip.ingest.executors import ExecutorSpec, open_pool
from eoclip.ingest.grid import chip_grid
from eoclip.ingest.report import IngestConfigError, IngestError, IngestReport, NothingIngestedError
from eoclip.ingest.shardplan import ShardPlan
from eoclip.ingest.source import ChipSource
from eoclip.ingest.tasks import ShardTask, TaskContext, claim_store, run_shard_task
from eoclip.ingest.writer import Committer, open_store, summary_path

__all__ = ["GridSpec", "StoreSpec", "load_grid", "run_ingest", "shard_size"]

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # runs of one task when its worker process dies
MAX_REDO_ROUNDS = 3


@dataclass
class GridSpec:
    """Which chips: a chips GeoJSON, or an AOI (name or file) with optional bounds.

    Attributes:
        chips: GeoJSON with ``chip_id`` (or ``identifier``), EPSG:4326 polygons, optional
            ``aoi``, ``split`` and ``utm_epsg``.
        aoi: AOI for ``eoclip.geo.make_grid`` when no chips file is given.
        bounds: (min_lon, min_lat, max_lon, max_lat) restricting the AOI grid.
        chip_size_m: Chip side for ``make_grid`` (paper: 4480 m).
        split_seed: Seed of ``eoclip.geo.band_splits`` for chips without a split.
    """

    chips: Path | None = None
    aoi: str | None = None
    bounds: tuple[float, float, float, float] | None = None
    chip_size_m: float = 4480.0
    split_seed: int = 0


@dataclass
class StoreSpec:
    """Where and how to write.

    Attributes:
        path: Output ChipStore path or URL.
        chip_px: Pixels per chip side (448 = native 10 m for 4480 m chips).
        batch_size: Chips per pixel write inside a shard (memory: ~7 MB per 448 px chip, held
            twice while zarr writes them).
        resume: Reopen an existing store and add only the chips it lacks.
        overwrite: Replace an existing store.
        limit: Ingest at most this many chips (a trial run).
        progress: Show a progress bar.
        shard_chips: Chips per store shard file, for a new store. A task writes one shard, so
            shards bound the parallelism: None picks 256 (the paper's scale), fewer for a grid
            of under 1024 chips per worker so that every worker gets about four tasks.
    """

    path: str
    chip_px: int = 448
    batch_size: int = 32
    resume: bool = False
    overwrite: bool = False
    limit: int | None = None
    progress: bool = True
    shard_chips: int | None = None

    def __post_init__(self) -> None:
        self.path = str(self.path)
        for name in ("chip_px", "batch_size", "shard_chips"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise IngestConfigError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.limit is not None and self.limit < 0:
            raise IngestConfigError(f"limit must be >= 0, not {self.limit}")
        if self.resume and self.overwrite:
            raise IngestConfigError("resume and overwrite exclude each other")


def load_grid(spec: GridSpec) -> gpd.GeoDataFrame:
    """The chips to ingest, with ``chip_id``, ``aoi``, ``split``, ``geometry`` (EPSG:4326)."""
    from eoclip.geo import band_splits, make_grid

    if spec.chips is not None:
        from eoclip.ingest.layout import read_chips

        grid = read_chips(Path(spec.chips))
        if "aoi" not in grid:
            grid["aoi"] = spec.aoi or Path(spec.chips).stem
    elif spec.aoi is not None:
        try:
            grid = make_grid(spec.aoi, spec.chip_size_m, spec.bounds)
        except (FileNotFoundError, KeyError) as err:
            raise IngestError(f"AOI {spec.aoi!r}: {err}") from err
        if grid.empty:
            raise IngestError(
                f"no chip of {spec.chip_size_m} m in AOI {spec.aoi} within bounds {spec.bounds}"
            )
    else:
        raise IngestError("give a chips GeoJSON or an AOI (name or file) with optional bounds")
    if "split" not in grid or grid["split"].isna().any():
        splits = band_splits(grid, seed=spec.split_seed)["split"]
        grid["split"] = grid["split"].fillna(splits) if "split" in grid else splits
    return grid


def _rows(grid: gpd.GeoDataFrame, source: ChipSource) -> list[dict]:
    """Task rows: what a worker needs of each chip (not the GeoJSON's other columns)."""
    keys = [k for k in ("utm_epsg", *getattr(source, "row_keys", ())) if k in grid]
    ids = grid["chip_id"].astype(str).to_numpy()
    cols = {k: grid[k].to_numpy() for k in ("aoi", "split", *keys)}
    geoms = grid.geometry.to_numpy()
    rows = []
    for i, cid in enumerate(ids):
        row = {"chip_id": cid, "geometry": geoms[i], **{k: cols[k][i] for k in cols}}
        if "utm_epsg" in row and pd.isna(row["utm_epsg"]):
            row["utm_epsg"] = None
        rows.append(row)
    return rows


def _ordered(grid: gpd.GeoDataFrame, source: ChipSource) -> gpd.GeoDataFrame:
    if not source.spatial_blocks or len(grid) < 2:
        return grid
    key = pd.Series(grid.geometry.hilbert_distance(), index=grid.index)
    return grid.assign(_h=key).sort_values(["aoi", "_h"], kind="stable").drop(columns="_h")


def run_ingest(
    grid: gpd.GeoDataFrame,
    out: StoreSpec,
    source: ChipSource,
    executor: ExecutorSpec | None = None,
    report: IngestReport | None = None,
) -> IngestReport:
    """Ingest every chip of ``grid`` that the store lacks; see the module docstring.

    Args:
        grid: Chips with ``chip_id``, ``aoi``, ``split``, ``geometry`` (EPSG:4326), optional
            ``utm_epsg`` and the source's ``row_keys``.
        out: Where and how to write.
        source: Reads each chip.
        executor: Where tasks run (default: this process).
        report: A report with records made before the loop (e.g. missing product folders).

    Returns:
        The report, also written to ``<store>.ingest.json``.

    Raises:
        NothingIngestedError: There were chips to ingest, none could be written, and the store
            holds none (a resumed run that adds nothing to a store with chips only warns).
        StoreError: The store exists (without resume/overwrite) or does not match.
    """
    t_start = time.perf_counter()
    executor = executor or ExecutorSpec()
    report = report or IngestReport(source.name)
    store, todo, summary = _open(grid, out, source, report, executor.workers)
    report.start_run(workers=executor.workers, engine=executor.engine, chips_at_start=len(store))
    run_id = claim_store(store.url)
    committer = Committer(store, report, summary, run_id)
    if len(todo):
        store.reserve(len(store) + len(todo))
        plan = ShardPlan(len(store), store.shard_chips, _rows(todo, source))
        ctx = TaskContext(store.url, source, out.chip_px, out.batch_size, run_id)
        try:
            _loop(plan, ctx, executor, committer, report, out.progress, len(todo))
        except BaseException:
            committer.checkpoint()  # what was committed stays; resume reads the rest
            raise
        store.trim()
    report.finish_run(time.perf_counter() - t_start)
    committer.checkpoint()
    store.close()
    if len(todo) and report.chips_written == 0:
        message = _nothing_message(report, len(todo), out.path, summary)
        if not report.chips_in_store:  # the ingest has produced nothing usable: fail loudly
            raise NothingIngestedError(message, report)
        logger.warning("%s (the store already holds %d chips)", message, report.chips_in_store)
    return report


def shard_size(n_chips: int, workers: int) -> int:
    """Chips per shard for a new store: 256, or fewer so that each worker gets ~4 tasks (>= 16)."""
    return int(min(256, max(16, -(-n_chips // (4 * workers)))))


def _open(
    grid: gpd.GeoDataFrame, out: StoreSpec, source: ChipSource, report: IngestReport, workers: int
):
    """Open or create the store; returns (store, the chips it lacks in plan order, summary path)."""
    report.chips_total = len(grid)
    grid = _ordered(grid, source)
    first = (
        chip_grid(str(grid["chip_id"].iloc[0]), grid.geometry.iloc[0], out.chip_px)
        if len(grid)
        else None
    )
    pixel = round(first.pixel_size_m, 3) if first else 10.0
    shards = out.shard_chips or shard_size(
        len(grid), workers
    )  # the whole grid: --limit trials keep 256
    store = open_store(
        out.path, source.modalities, out.chip_px, pixel, out.resume, out.overwrite, shards
    )
    summary = summary_path(out.path)
    done = set(store.chip_ids)
    if out.resume:
        report.merge_previous(summary, done, len(store))
    todo = grid[~grid["chip_id"].astype(str).isin(done)]
    report.chips_already_present = len(grid) - len(todo)
    if out.limit is not None:
        todo = todo.iloc[: out.limit]
    return store, todo, summary


def _loop(
    plan: ShardPlan,
    ctx: TaskContext,
    spec: ExecutorSpec,
    committer: Committer,
    report: IngestReport,
    progress: bool,
    total: int,
) -> None:
    """Run tasks until every chip is committed or dropped."""
    attempts: dict[int, int] = {}
    with (
        open_pool(spec) as pool,
        tqdm(total=total, desc=f"ingest {report.source}", unit="chip", disable=not progress) as bar,
    ):
        running: dict[cf.Future, ShardTask] = {}
        while True:
            while len(running) < pool.slots and (task := plan.next_task()) is not None:
                running[pool.executor.submit(run_shard_task, task, ctx)] = task
            if not running:
                if not plan.stuck():
                    return
                if plan.redo_rounds >= MAX_REDO_ROUNDS:
                    raise IngestError(
                        "chips after an unwritable chip could not be committed after "
                        f"{MAX_REDO_ROUNDS} attempts; resume the ingest"
                    )
                logger.info(
                    "re-reading %d chips to close a hole left by unwritable chips",
                    plan.redo_after_hole(),
                )
                continue
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                task = running.pop(fut)
                try:
                    result = fut.result()
                except Exception as err:
                    if not pool.broken(err):
                        raise
                    _restart(pool, plan, running, task, attempts, ctx)
                    break
                plan.complete(task, result)
                _, others = result.report.split_by_chips({r["chip_id"] for r in result.index})
                report.extend(others)  # unwritten chips: final now (written ones: at commit)
                pid = str(result.pid)
                report.worker_rss_mb[pid] = round(
                    max(report.worker_rss_mb.get(pid, 0.0), result.peak_rss_mb), 1
                )
                report.worker_cpu_s[pid] = round(
                    max(report.worker_cpu_s.get(pid, 0.0), result.cpu_s), 2
                )
                report.worker_busy_s[pid] = round(
                    report.worker_busy_s.get(pid, 0.0) + result.seconds, 2
                )
                bar.update(len(task.rows))
            committer.commit(plan.committable())
            committer.maybe_checkpoint()


def _restart(
    pool, plan: ShardPlan, running: dict, task: ShardTask, attempts: dict, ctx: TaskContext
) -> None:
    """A worker process died: start a new pool and run every task that was running again."""
    lost = [task, *running.values()]
    running.clear()
    for t in lost:
        attempts[t.start] = attempts.get(t.start, 0) + 1
        if attempts[t.start] >= MAX_ATTEMPTS:
            ids = [r["chip_id"] for r in t.rows]
            raise IngestError(
                f"a worker process died {MAX_ATTEMPTS} times on chips {ids[:3]}...: out of "
                "memory? Use fewer workers or a smaller batch size, then resume"
            )
    logger.warning(
        "a worker process died; restarting the pool and running %d tasks again", len(lost)
    )
    pool.restart()
    for t in lost:
        plan.retry(t)
        running[pool.executor.submit(run_shard_task, t, ctx)] = plan.resubmit(t)


def _nothing_message(report: IngestReport, n: int, store: str, summary: Path) -> str:
    reasons = [f"{p.product}: {p.reason}" for p in report.problems[:2]]
    counts: dict[str, int] = {}
    for s in report.skips:
        key = f"{s.product}: {s.reason.split(':')[0]}"
        counts[key] = counts.get(key, 0) + 1
    reasons += [f"{k} x{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:3]]
    return (
        f"no chip written to {store}: none of {n} chips had a usable modality ("
        + "; ".join(reasons)
        + f"); details in {summary}"
    )
