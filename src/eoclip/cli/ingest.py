"""``eoclip ingest m3leo | stac | asf``: real data into a ChipStore."""

from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path
from typing import Annotated

import typer

from eoclip.cli.conventions import renamed_option, require

__all__ = ["register"]

ingest_app = typer.Typer(
    help="Read real data (M3LEO files, a STAC catalogue, ASF GUNW) into a ChipStore.",
    no_args_is_help=True,
)

WORKERS_HELP = "Processes reading chips (default: every core); each writes whole store shards."
ENGINE_HELP = (
    "local (this machine's processes) or dask (a Dask LocalCluster, or the one at --scheduler)."
)
SCHEDULER_HELP = (
    "Address of a running Dask scheduler (tcp://host:8786): run the tasks on that cluster."
)


# Options shared by the ingest verbs (typer reads name, flags and help from the annotation).
OutStore = Annotated[
    str | None, typer.Option("--out", "-o", help="ChipStore path or URL to write.")
]
OldStore = Annotated[
    str | None, typer.Option("--store", hidden=True, help="Deprecated spelling of --out.")
]
Workers = Annotated[int | None, typer.Option(help=WORKERS_HELP)]
Engine = Annotated[str, typer.Option(help=ENGINE_HELP)]
Scheduler = Annotated[str | None, typer.Option(help=SCHEDULER_HELP)]
Resume = Annotated[bool, typer.Option(help="Append to an existing store, skipping its chips.")]
Overwrite = Annotated[bool, typer.Option(help="Replace an existing store.")]
Limit = Annotated[int | None, typer.Option(help="Ingest at most this many chips.")]
ChipSizeM = Annotated[float, typer.Option(help="Chip side for an AOI grid.")]


def _print_report_on_failure(fn):
    """Print the run's summary when nothing was ingested; the error itself is left to the app."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from eoclip.ingest.report import NothingIngestedError

        try:
            return fn(*args, **kwargs)
        except NothingIngestedError as err:
            _print(err.report)
            raise

    return wrapper


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        return tuple(int(m) for m in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{what} must be comma-separated integers, not {text!r}") from None


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(t.strip() for t in text.split(",") if t.strip())


def _bounds(text: str | None):
    if not text:
        return None
    try:
        parts = tuple(float(v) for v in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4:
        raise typer.BadParameter(f"bounds are min_lon,min_lat,max_lon,max_lat, not {text!r}")
    return parts


def _date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{what} must be a date like 2020-01-31, not {text!r}") from None


def _out(out: str | None, old_store: str | None, required: bool = True) -> str | None:
    # `--store` named the output of ingest until 0.1; it is the input store everywhere else.
    value = renamed_option(out, old_store, new="--out", old="--store")
    return require(value, "--out") if required else value


def _executor(workers: int | None, engine: str, scheduler: str | None):
    from eoclip.ingest.executors import ExecutorSpec

    return ExecutorSpec(
        workers=(os.cpu_count() or 1) if workers is None else workers,
        engine=engine,
        scheduler=scheduler,
    )


def _print(report) -> None:
    for line in report.summary_lines():
        typer.echo(line)


@ingest_app.command("m3leo")
@_print_report_on_failure
def m3leo(
    root: Annotated[
        Path,
        typer.Argument(
            help="The M3LEO / geetiles download: <stem>.geojson files with their "
            "<stem>/ product folders (or one flat dataset folder)."
        ),
    ],
    out: OutStore = None,
    old_store: OldStore = None,
    chips: Annotated[
        Path | None, typer.Option(help="One chips GeoJSON (default: every <stem>.geojson in ROOT).")
    ] = None,
    splits: Annotated[
        str | None,
        typer.Option(
            help="Splits CSV: a path, or part of its name to choose among "
            "<stem>_splits*.csv (default: the only one)."
        ),
    ] = None,
    split_column: Annotated[
        str | None, typer.Option(help="Column of the splits CSV (default: split).")
    ] = None,
    aoi: Annotated[
        str | None,
        typer.Option(help="AOI name for every chip (default: from the GeoJSON name, e.g. conus)."),
    ] = None,
    chip_px: Annotated[
        int, typer.Option(help="Pixels per chip side (448 = 10 m for 4480 m chips).")
    ] = 448,
    months: Annotated[str, typer.Option(help="Calendar months to take, e.g. 1,2,3.")] = "1,2,3",
    year: Annotated[
        int, typer.Option(help="Year in the folder names and of the GUNW window.")
    ] = 2020,
    s1_direction: Annotated[str, typer.Option(help="Sentinel-1 orbit: asc or des (desc).")] = "asc",
    s1_fallback: Annotated[
        bool,
        typer.Option(
            "--s1-fallback/--no-s1-fallback",
            help="Use the other orbit when the chosen one is missing or unusable.",
        ),
    ] = True,
    modalities: Annotated[
        str, typer.Option(help="Modalities of the store.")
    ] = "s2rgbm,s1grdm,gunw",
    labels: Annotated[
        str, typer.Option(help="Label products to read ('' for none).")
    ] = "esaworldcover,modis,ghsbuilts",
    workers: Workers = None,
    engine: Engine = "local",
    scheduler: Scheduler = None,
    batch_size: Annotated[
        int, typer.Option(help="Chips per pixel write inside a shard (~7 MB each at 448 px).")
    ] = 32,
    shard_chips: Annotated[
        int | None,
        typer.Option(
            help="Chips per store shard for a new store (default: 256, fewer "
            "for a small grid so that every worker has tasks)."
        ),
    ] = None,
    resume: Resume = False,
    overwrite: Overwrite = False,
    limit: Limit = None,
) -> None:
    """Ingest the paper authors' M3LEO / geetiles download."""
    from eoclip.ingest.m3leo import M3LEOConfig, ingest_m3leo
    from eoclip.ingest.runner import StoreSpec

    cfg = M3LEOConfig(
        root=root,
        chips=chips,
        splits=splits,
        split_column=split_column,
        aoi=aoi,
        year=year,
        months=_ints(months, "months"),
        s1_direction=s1_direction,
        s1_fallback=s1_fallback,
        modalities=_names(modalities),
        labels=_names(labels),
    )
    spec = StoreSpec(
        _out(out, old_store), chip_px, batch_size, resume, overwrite, limit, shard_chips=shard_chips
    )
    _print(ingest_m3leo(cfg, spec, _executor(workers, engine, scheduler)))


@ingest_app.command("stac")
@_print_report_on_failure
def stac(
    out: OutStore = None,
    old_store: OldStore = None,
    chips: Annotated[
        Path | None, typer.Option(help="Chips GeoJSON (chip_id or identifier, polygons).")
    ] = None,
    aoi: Annotated[
        str | None, typer.Option(help="AOI name or file, gridded with eoclip.geo.make_grid.")
    ] = None,
    bounds: Annotated[
        str | None, typer.Option(help="min_lon,min_lat,max_lon,max_lat restricting the AOI grid.")
    ] = None,
    chip_size_m: ChipSizeM = 4480.0,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML of StacConfig fields (catalogue, collections, assets)."),
    ] = None,
    catalog: Annotated[
        str | None, typer.Option(help="STAC API URL or local catalog.json (overrides the config).")
    ] = None,
    gunw_dir: Annotated[
        Path | None, typer.Option(help="Folder of ARIA GUNW .nc products to add coherence.")
    ] = None,
    chip_px: Annotated[int, typer.Option(help="Pixels per chip side.")] = 448,
    workers: Workers = None,
    engine: Engine = "local",
    scheduler: Scheduler = None,
    batch_size: Annotated[int, typer.Option(help="Chips per pixel write inside a shard.")] = 16,
    resume: Resume = False,
    overwrite: Overwrite = False,
    limit: Limit = None,
) -> None:
    """Composite Sentinel-2/Sentinel-1 months and WorldCover labels from a STAC catalogue."""
    from eoclip.ingest.runner import GridSpec, StoreSpec, load_grid
    from eoclip.ingest.stac import ingest_stac, load_stac_config

    spec = StoreSpec(_out(out, old_store), chip_px, batch_size, resume, overwrite, limit)
    grid = load_grid(
        GridSpec(chips=chips, aoi=aoi, bounds=_bounds(bounds), chip_size_m=chip_size_m)
    )
    cfg = load_stac_config(config, catalog=catalog)
    _print(
        ingest_stac(
            grid, spec, cfg, gunw_dir=gunw_dir, executor=_executor(workers, engine, scheduler)
        )
    )


@ingest_app.command("asf")
@_print_report_on_failure
def asf(
    download_dir: Annotated[Path, typer.Option(help="Folder for the GUNW products.")],
    chips: Annotated[Path | None, typer.Option(help="Chips GeoJSON.")] = None,
    aoi: Annotated[str | None, typer.Option(help="AOI name or file (with --bounds).")] = None,
    bounds: Annotated[str | None, typer.Option(help="min_lon,min_lat,max_lon,max_lat.")] = None,
    chip_size_m: ChipSizeM = 4480.0,
    start: Annotated[str, typer.Option(help="First allowed second date of a pair.")] = "2020-01-01",
    end: Annotated[str, typer.Option(help="Last allowed second date of a pair.")] = "2020-03-31",
    max_days: Annotated[int, typer.Option(help="Longest pair span in days (paper: 48).")] = 48,
    out: Annotated[
        str | None, typer.Option("--out", "-o", help="Also write a gunw ChipStore here.")
    ] = None,
    old_store: OldStore = None,
    skip_download: Annotated[
        bool, typer.Option(help="Use the products already in the download folder.")
    ] = False,
    chip_px: Annotated[int, typer.Option(help="Pixels per chip side.")] = 448,
    workers: Workers = None,
    resume: Resume = False,
    overwrite: Overwrite = False,
) -> None:
    """Search and download ARIA S1 GUNW products from ASF (Earthdata login), then ingest them."""
    from shapely import union_all

    from eoclip.ingest import asf as asf_mod
    from eoclip.ingest.runner import GridSpec, StoreSpec, load_grid

    t0, t1 = _date(start, "start"), _date(end, "end")
    store = _out(out, old_store, required=False)
    spec = StoreSpec(store, chip_px, resume=resume, overwrite=overwrite) if store else None
    grid = load_grid(
        GridSpec(chips=chips, aoi=aoi, bounds=_bounds(bounds), chip_size_m=chip_size_m)
    )
    if not skip_download:
        footprint = union_all(grid.geometry.values).convex_hull.wkt
        found = asf_mod.search_gunw(footprint, t0, t1, max_days)
        chosen = asf_mod.choose_products(found, t0, t1, max_days)
        typer.echo(
            f"ASF: {len(found)} GUNW products found, {len(chosen)} with a pair in the window"
        )
        asf_mod.download_products(chosen, download_dir)
    if spec is not None:
        _print(
            asf_mod.ingest_gunw(
                grid,
                spec,
                download_dir,
                t0,
                t1,
                max_days,
                executor=_executor(workers, "local", None),
            )
        )


def register(app: typer.Typer) -> None:
    """Add the ``ingest`` sub-app to the eoclip CLI."""
    app.add_typer(ingest_app, name="ingest")
