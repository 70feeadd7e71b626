"""``eoclip ingest m3leo | stac | asf``: real data into a ChipStore."""

from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path

import typer

__all__ = ["register"]

ingest_app = typer.Typer(help="Read real data (M3LEO files, a STAC catalogue, ASF GUNW) into a ChipStore.",
                         no_args_is_help=True)

WORKERS_HELP = "Processes reading chips (default: every core); each writes whole store shards."
ENGINE_HELP = "local (this machine's processes) or dask (a Dask LocalCluster, or the one at --scheduler)."
SCHEDULER_HELP = "Address of a running Dask scheduler (tcp://host:8786): run the tasks on that cluster."


def _fail_cleanly(fn):
    """Turn library errors into one line on stderr and exit status 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from eoclip.data.store import StoreError
        from eoclip.ingest.report import IngestError, NothingIngestedError

        try:
            return fn(*args, **kwargs)
        except NothingIngestedError as err:
            _print(err.report)
            _error(err)
        except (IngestError, StoreError, ValueError, KeyError, OSError, ImportError) as err:
            _error(err)

    return wrapper


def _error(err: BaseException) -> None:
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    typer.echo("error: " + " ".join(text.split()), err=True)
    raise typer.Exit(1)


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(m) for m in text.split(","))
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, not {text!r}") from None


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(t.strip() for t in text.split(",") if t.strip())


def _bounds(text: str | None):
    if not text:
        return None
    parts = tuple(float(v) for v in text.split(","))
    if len(parts) != 4:
        raise ValueError(f"bounds are min_lon,min_lat,max_lon,max_lat, not {text!r}")
    return parts


def _executor(workers: int | None, engine: str, scheduler: str | None):
    from eoclip.ingest.executors import ExecutorSpec

    return ExecutorSpec(workers=(os.cpu_count() or 1) if workers is None else workers, engine=engine,
                        scheduler=scheduler)


def _print(report) -> None:
    for line in report.summary_lines():
        typer.echo(line)


@ingest_app.command("m3leo")
@_fail_cleanly
def m3leo(
    root: Path = typer.Argument(..., help="The M3LEO / geetiles download: <stem>.geojson files with their "
                                          "<stem>/ product folders (or one flat dataset folder)."),
    store: str = typer.Option(..., "--store", "-o", help="Output ChipStore path or URL."),
    chips: Path = typer.Option(None, help="One chips GeoJSON (default: every <stem>.geojson in ROOT)."),
    splits: str = typer.Option(None, help="Splits CSV: a path, or part of its name to choose among "
                                          "<stem>_splits*.csv (default: the only one)."),
    split_column: str = typer.Option(None, help="Column of the splits CSV (default: split)."),
    aoi: str = typer.Option(None, help="AOI name for every chip (default: from the GeoJSON name, e.g. conus)."),
    chip_px: int = typer.Option(448, help="Pixels per chip side (448 = 10 m for 4480 m chips)."),
    months: str = typer.Option("1,2,3", help="Calendar months to take, e.g. 1,2,3."),
    year: int = typer.Option(2020, help="Year in the folder names and of the GUNW window."),
    s1_direction: str = typer.Option("asc", help="Sentinel-1 orbit: asc or des (desc)."),
    s1_fallback: bool = typer.Option(True, help="Use the other orbit when the chosen one is missing or unusable."),
    modalities: str = typer.Option("s2rgbm,s1grdm,gunw", help="Modalities of the store."),
    labels: str = typer.Option("esaworldcover,modis,ghsbuilts", help="Label products to read ('' for none)."),
    workers: int = typer.Option(None, help=WORKERS_HELP),
    engine: str = typer.Option("local", help=ENGINE_HELP),
    scheduler: str = typer.Option(None, help=SCHEDULER_HELP),
    batch_size: int = typer.Option(32, help="Chips per pixel write inside a shard (~7 MB each at 448 px)."),
    shard_chips: int = typer.Option(None, help="Chips per store shard for a new store (default: 256, fewer "
                                               "for a small grid so that every worker has tasks)."),
    resume: bool = typer.Option(False, help="Append to an existing store, skipping its chips."),
    overwrite: bool = typer.Option(False, help="Replace an existing store."),
    limit: int = typer.Option(None, help="Ingest at most this many chips."),
) -> None:
    """Ingest the paper authors' M3LEO / geetiles download."""
    from eoclip.ingest.m3leo import M3LEOConfig, ingest_m3leo
    from eoclip.ingest.runner import StoreSpec

    cfg = M3LEOConfig(root=root, chips=chips, splits=splits, split_column=split_column, aoi=aoi, year=year,
                      months=_ints(months, "months"), s1_direction=s1_direction, s1_fallback=s1_fallback,
                      modalities=_names(modalities), labels=_names(labels))
    out = StoreSpec(store, chip_px, batch_size, resume, overwrite, limit, shard_chips=shard_chips)
    _print(ingest_m3leo(cfg, out, _executor(workers, engine, scheduler)))


@ingest_app.command("stac")
@_fail_cleanly
def stac(
    store: str = typer.Option(..., "--store", "-o", help="Output ChipStore path or URL."),
    chips: Path = typer.Option(None, help="Chips GeoJSON (chip_id or identifier, polygons)."),
    aoi: str = typer.Option(None, help="AOI name or file, gridded with eoclip.geo.make_grid."),
    bounds: str = typer.Option(None, help="min_lon,min_lat,max_lon,max_lat restricting the AOI grid."),
    chip_size_m: float = typer.Option(4480.0, help="Chip side for an AOI grid."),
    config: Path = typer.Option(None, help="YAML of StacConfig fields (catalogue, collections, assets)."),
    catalog: str = typer.Option(None, help="STAC API URL or local catalog.json (overrides the config)."),
    gunw_dir: Path = typer.Option(None, help="Folder of ARIA GUNW .nc products to add coherence."),
    chip_px: int = typer.Option(448, help="Pixels per chip side."),
    workers: int = typer.Option(None, help=WORKERS_HELP),
    engine: str = typer.Option("local", help=ENGINE_HELP),
    scheduler: str = typer.Option(None, help=SCHEDULER_HELP),
    batch_size: int = typer.Option(16, help="Chips per pixel write inside a shard."),
    resume: bool = typer.Option(False, help="Append to an existing store, skipping its chips."),
    overwrite: bool = typer.Option(False, help="Replace an existing store."),
    limit: int = typer.Option(None, help="Ingest at most this many chips."),
) -> None:
    """Composite Sentinel-2/Sentinel-1 months and WorldCover labels from a STAC catalogue."""
    from eoclip.ingest.runner import GridSpec, StoreSpec, load_grid
    from eoclip.ingest.stac import ingest_stac, load_stac_config

    out = StoreSpec(store, chip_px, batch_size, resume, overwrite, limit)
    grid = load_grid(GridSpec(chips=chips, aoi=aoi, bounds=_bounds(bounds), chip_size_m=chip_size_m))
    cfg = load_stac_config(config, catalog=catalog)
    _print(ingest_stac(grid, out, cfg, gunw_dir=gunw_dir, executor=_executor(workers, engine, scheduler)))


@ingest_app.command("asf")
@_fail_cleanly
def asf(
    download_dir: Path = typer.Option(..., help="Folder for the GUNW products."),
    chips: Path = typer.Option(None, help="Chips GeoJSON."),
    aoi: str = typer.Option(None, help="AOI name or file (with --bounds)."),
    bounds: str = typer.Option(None, help="min_lon,min_lat,max_lon,max_lat."),
    chip_size_m: float = typer.Option(4480.0, help="Chip side for an AOI grid."),
    start: str = typer.Option("2020-01-01", help="First allowed second date of a pair."),
    end: str = typer.Option("2020-03-31", help="Last allowed second date of a pair."),
    max_days: int = typer.Option(48, help="Longest pair span in days (paper: 48)."),
    store: str = typer.Option(None, "--store", "-o", help="Also write a gunw ChipStore here."),
    skip_download: bool = typer.Option(False, help="Use the products already in --download-dir."),
    chip_px: int = typer.Option(448, help="Pixels per chip side."),
    workers: int = typer.Option(None, help=WORKERS_HELP),
    resume: bool = typer.Option(False, help="Append to an existing store, skipping its chips."),
    overwrite: bool = typer.Option(False, help="Replace an existing store."),
) -> None:
    """Search and download ARIA S1 GUNW products from ASF (Earthdata login), then ingest them."""
    from shapely import union_all

    from eoclip.ingest import asf as asf_mod
    from eoclip.ingest.runner import GridSpec, StoreSpec, load_grid

    out = StoreSpec(store, chip_px, resume=resume, overwrite=overwrite) if store else None
    grid = load_grid(GridSpec(chips=chips, aoi=aoi, bounds=_bounds(bounds), chip_size_m=chip_size_m))
    t0, t1 = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if not skip_download:
        footprint = union_all(grid.geometry.values).convex_hull.wkt
        found = asf_mod.search_gunw(footprint, t0, t1, max_days)
        chosen = asf_mod.choose_products(found, t0, t1, max_days)
        typer.echo(f"ASF: {len(found)} GUNW products found, {len(chosen)} with a pair in the window")
        asf_mod.download_products(chosen, download_dir)
    if out is not None:
        _print(asf_mod.ingest_gunw(grid, out, download_dir, t0, t1, max_days,
                                   executor=_executor(workers, "local", None)))


def register(app: typer.Typer) -> None:
    """Add the ``ingest`` sub-app to the eoclip CLI."""
    app.add_typer(ingest_app, name="ingest")
