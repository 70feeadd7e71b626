"""``eoclip ingest m3leo | stac | asf``: real data into a ChipStore."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

__all__ = ["register"]

ingest_app = typer.Typer(help="Read real data (M3LEO files, a STAC catalogue, ASF GUNW) into a ChipStore.",
                         no_args_is_help=True)


def _months(text: str) -> tuple[int, ...]:
    return tuple(int(m) for m in text.split(","))


def _bounds(text: str | None):
    if not text:
        return None
    parts = tuple(float(v) for v in text.split(","))
    if len(parts) != 4:
        raise typer.BadParameter("bounds are min_lon,min_lat,max_lon,max_lat")
    return parts


def _print(report) -> None:
    for line in report.summary_lines():
        typer.echo(line)


@ingest_app.command("m3leo")
def m3leo(
    root: Path = typer.Argument(..., help="M3LEO dataset folder (chips GeoJSON, splits CSV, product folders)."),
    store: str = typer.Option(..., "--store", "-o", help="Output ChipStore path or URL."),
    chips: Path = typer.Option(None, help="Chips GeoJSON (default: the only *.geojson in ROOT)."),
    splits: Path = typer.Option(None, help="Splits CSV (default: the only *split*.csv in ROOT)."),
    aoi: str = typer.Option(None, help="AOI name for the index (default: ROOT's folder name)."),
    chip_px: int = typer.Option(448, help="Pixels per chip side (448 = 10 m for 4480 m chips)."),
    months: str = typer.Option("1,2,3", help="Calendar months to take, e.g. 1,2,3."),
    year: int = typer.Option(2020, help="Year in the folder names and of the GUNW window."),
    s1_direction: str = typer.Option("asc", help="Sentinel-1 orbit folder: asc or des."),
    no_s1_fallback: bool = typer.Option(False, help="Do not fall back to the other orbit direction."),
    batch_size: int = typer.Option(64, help="Chips per store append."),
    resume: bool = typer.Option(False, help="Append to an existing store, skipping its chips."),
    overwrite: bool = typer.Option(False, help="Replace an existing store."),
    limit: int = typer.Option(None, help="Ingest at most this many chips."),
) -> None:
    """Ingest the paper authors' M3LEO / geetiles files."""
    from eoclip.ingest.m3leo import M3LEOConfig, ingest_m3leo

    cfg = M3LEOConfig(root=root, store=store, chips=chips, splits=splits, aoi=aoi, chip_px=chip_px,
                      year=year, months=_months(months), s1_direction=s1_direction,
                      s1_fallback=not no_s1_fallback, batch_size=batch_size, resume=resume,
                      overwrite=overwrite, limit=limit)
    _print(ingest_m3leo(cfg))


@ingest_app.command("stac")
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
    batch_size: int = typer.Option(16),
    resume: bool = typer.Option(False),
    overwrite: bool = typer.Option(False),
    limit: int = typer.Option(None),
) -> None:
    """Composite Sentinel-2/Sentinel-1 months and WorldCover labels from a STAC catalogue."""
    from eoclip.ingest.runner import GridSpec, StoreSpec, load_grid
    from eoclip.ingest.stac import ingest_stac, load_stac_config

    grid = load_grid(GridSpec(chips=chips, aoi=aoi, bounds=_bounds(bounds), chip_size_m=chip_size_m))
    cfg = load_stac_config(config, catalog=catalog)
    out = StoreSpec(store, chip_px, batch_size, resume, overwrite, limit)
    _print(ingest_stac(grid, out, cfg, gunw_dir=gunw_dir))


@ingest_app.command("asf")
def asf(
    download_dir: Path = typer.Option(..., help="Folder for the GUNW products."),
    chips: Path = typer.Option(None, help="Chips GeoJSON."),
    aoi: str = typer.Option(None, help="AOI name or file (with --bounds)."),
    bounds: str = typer.Option(None, help="min_lon,min_lat,max_lon,max_lat."),
    chip_size_m: float = typer.Option(4480.0),
    start: str = typer.Option("2020-01-01", help="First allowed second date of a pair."),
    end: str = typer.Option("2020-03-31", help="Last allowed second date of a pair."),
    max_days: int = typer.Option(48, help="Longest pair span in days (paper: 48)."),
    store: str = typer.Option(None, "--store", "-o", help="Also write a gunw ChipStore here."),
    skip_download: bool = typer.Option(False, help="Use the products already in --download-dir."),
    chip_px: int = typer.Option(448),
    resume: bool = typer.Option(False),
    overwrite: bool = typer.Option(False),
) -> None:
    """Search and download ARIA S1 GUNW products from ASF (Earthdata login), then ingest them."""
    from shapely import union_all

    from eoclip.ingest import asf as asf_mod
    from eoclip.ingest.runner import GridSpec, StoreSpec, load_grid

    grid = load_grid(GridSpec(chips=chips, aoi=aoi, bounds=_bounds(bounds), chip_size_m=chip_size_m))
    t0, t1 = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if not skip_download:
        footprint = union_all(grid.geometry.values).convex_hull.wkt
        found = asf_mod.search_gunw(footprint, t0, t1, max_days)
        chosen = asf_mod.choose_products(found, t0, t1, max_days)
        typer.echo(f"ASF: {len(found)} GUNW products found, {len(chosen)} with a pair in the window")
        asf_mod.download_products(chosen, download_dir)
    if store:
        _print(asf_mod.ingest_gunw(grid, StoreSpec(store, chip_px, resume=resume, overwrite=overwrite),
                                   download_dir, t0, t1, max_days))


def register(app: typer.Typer) -> None:
    """Add the ``ingest`` sub-app to the eoclip CLI."""
    app.add_typer(ingest_app, name="ingest")
