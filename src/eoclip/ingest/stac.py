"""Build a ChipStore from a STAC catalogue: Sentinel-2 L2A, Sentinel-1 and ESA WorldCover.

For each chip (its UTM grid, see ``eoclip.ingest.grid``):

- s2rgbm: per month, the median over the month's scenes of B04, B03, B02 reflectance
  (``DN * scale + offset`` from each item's ``raster:bands``, else the config's defaults), with
  pixels masked where the scene-classification (SCL) class is one of ``scl_mask``: by default
  0 no data, 1 saturated or defective, 3 cloud shadow, 8 cloud medium probability, 9 cloud
  high probability, 10 thin cirrus (snow, 11, is kept).
- s1grdm: per month, the mean of VV and VH in linear power, then converted to dB, and VV-VH
  in dB. Sentinel-1 RTC (gamma0, linear) by default; a catalogue serving dB sets ``s1_units``.
- labels: ESA WorldCover fractions of class 40 (cropland) and 80 (permanent water) over the
  chip's valid pixels (label_crop, label_water). Tree cover and built-up stay NaN.
- gunw (optional): ARIA GUNW products already on disk (``gunw_dir``, e.g. from ``ingest asf``),
  read with the same reader as the M3LEO path.

The search is a seam, ``search_items``: pystac-client for an API URL (its requests retried
with back-off on connection errors and 429/5xx answers, through ``StacApiIO`` and urllib3's
``Retry``), a walk of a static catalogue (bbox and datetime filtering in Python) for a local
``catalog.json``; loading and compositing (odc-stac) are the same for both. Chips are ingested
in blocks of one store shard, ordered along a Hilbert curve so that a block is compact: each
collection is searched once per block (its bounding box), and each chip uses the block's items
that intersect it. At the paper's scale that is ~10 K searches instead of ~2.5 M.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pystac
from shapely.geometry import box, shape

from eoclip.config import check_keys, read_mapping
from eoclip.data.labels import WORLDCOVER_CROPLAND, WORLDCOVER_WATER, class_fraction
from eoclip.errors import ConfigError
from eoclip.ingest.grid import ChipGrid
from eoclip.ingest.gunw import GunwLibrary
from eoclip.ingest.report import IngestConfigError, IngestError, IngestReport
from eoclip.ingest.source import ChipData, ChipSource

__all__ = [
    "StacConfig",
    "StacSource",
    "composite_s1",
    "composite_s2",
    "ingest_stac",
    "load_stac_config",
    "search_items",
    "stac_client",
    "worldcover_fractions",
]

PLANETARY_COMPUTER = "https://planetarycomputer.microsoft.com/api/stac/v1"


@dataclass
class StacConfig:
    """Where and what to search; defaults are the Planetary Computer's collections.

    Attributes:
        catalog: STAC API URL, or the path of a static ``catalog.json``.
        s2_collection, s2_bands, s2_scl: Sentinel-2 L2A collection, R/G/B asset keys, SCL key.
        scl_mask: SCL classes masked before the median (see the module docstring).
        s2_scale, s2_offset: DN -> reflectance when an asset has no raster:bands scale/offset.
        s2_max_cloud: Skip scenes with ``eo:cloud_cover`` above this (percent); None keeps all.
        s1_collection, s1_bands: Sentinel-1 collection (RTC or a geocoded GRD) and VV/VH keys.
        s1_units: ``linear`` (power, e.g. RTC gamma0) or ``db``.
        s1_orbit_state: Keep only ``ascending`` or ``descending`` scenes (``sat:orbit_state``).
        worldcover_collection, worldcover_asset, worldcover_datetime: the label source.
        year, months: Composite months (stored as slots 01..03).
        modifier: Dotted path of a pystac-client modifier, e.g.
            ``planetary_computer.sign_inplace`` (PC needs signed hrefs); ``auto`` uses that one
            when the catalogue is the Planetary Computer and the package is installed.
        max_retries: Retries of a failed catalogue request (connection error, 429, 5xx).
        retry_backoff: urllib3 back-off factor in seconds (waits 0, 2x, 4x, ... between tries).
    """

    catalog: str = PLANETARY_COMPUTER
    s2_collection: str = "sentinel-2-l2a"
    s2_bands: tuple[str, str, str] = ("B04", "B03", "B02")
    s2_scl: str = "SCL"
    scl_mask: tuple[int, ...] = (0, 1, 3, 8, 9, 10)
    s2_scale: float = 1e-4
    s2_offset: float = 0.0
    s2_max_cloud: float | None = None
    s1_collection: str = "sentinel-1-rtc"
    s1_bands: tuple[str, str] = ("vv", "vh")
    s1_units: str = "linear"
    s1_orbit_state: str | None = None
    worldcover_collection: str = "esa-worldcover"
    worldcover_asset: str = "map"
    worldcover_datetime: str = "2020-01-01/2020-12-31"
    year: int = 2020
    months: tuple[int, ...] = (1, 2, 3)
    modifier: str | None = "auto"
    max_retries: int = 5
    retry_backoff: float = 1.0

    def __post_init__(self) -> None:
        if self.s1_units not in ("linear", "db"):
            raise IngestConfigError(f"s1_units must be 'linear' or 'db', not {self.s1_units!r}")
        for name in ("s2_bands", "s1_bands", "scl_mask", "months"):
            setattr(self, name, tuple(getattr(self, name)))

    def to_dict(self) -> dict:
        return asdict(self)

    def month_range(self, month: int) -> tuple[dt.date, dt.date]:
        start = dt.date(self.year, month, 1)
        end = dt.date(self.year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
        return start, end

    def datetime_range(self) -> str:
        return f"{self.month_range(min(self.months))[0]}/{self.month_range(max(self.months))[1]}"

    def modifier_fn(self) -> Callable | None:
        """The modifier callable, or None."""
        name = self.modifier
        if name == "auto":
            if "planetarycomputer" not in self.catalog:
                return None
            try:
                return importlib.import_module("planetary_computer").sign_inplace
            except ImportError:
                return None
        if not name:
            return None
        module, _, attr = name.rpartition(".")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise IngestConfigError(f"modifier {name!r} cannot be imported: {err}") from err


def load_stac_config(path: str | Path | None = None, **overrides) -> StacConfig:
    """A StacConfig from a YAML file (keys = field names) with keyword overrides.

    Read and checked by the project's one config reader (`eoclip.config`): a missing file, bad
    YAML or an unknown key is a `ConfigError` naming the file and the known keys.
    """
    data = read_mapping(path) if path else {}
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    check_keys(data, [f.name for f in fields(StacConfig)], str(path or "STAC config"))
    try:
        return StacConfig(**data)
    except TypeError as err:
        raise ConfigError(f"{path or 'STAC config'}: {err}") from err


_LOCAL_ITEMS: dict[str, list[pystac.Item]] = {}


def _local_items(path: str) -> list[pystac.Item]:
    if path not in _LOCAL_ITEMS:
        if not Path(path).is_file():
            raise FileNotFoundError(f"STAC catalogue {path} not found (not a URL and no such file)")
        root = pystac.read_file(path)
        _LOCAL_ITEMS[path] = list(root.get_items(recursive=True))
    return _LOCAL_ITEMS[path]


def _parse_range(datetime: str) -> tuple[dt.datetime, dt.datetime]:
    a, b = datetime.split("/")
    start = dt.datetime.fromisoformat(a[:10]).replace(tzinfo=dt.UTC)
    end = dt.datetime.fromisoformat(b[:10]).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
    return start, end


def _item_times(item: pystac.Item) -> tuple[dt.datetime, dt.datetime]:
    start = item.common_metadata.start_datetime or item.datetime
    end = item.common_metadata.end_datetime or item.datetime
    return start, end


RETRY_STATUS = (429, 500, 502, 503, 504)
_CLIENTS: dict[tuple, object] = {}


def stac_client(config: StacConfig):
    """A pystac-client ``Client`` for ``config.catalog`` whose requests are retried.

    One per process and settings; searches are POSTs, which urllib3 does not retry unless told
    (``allowed_methods=None``).
    """
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry

    key = (config.catalog, config.modifier, config.max_retries, config.retry_backoff)
    if key not in _CLIENTS:
        retry = Retry(
            total=config.max_retries,
            backoff_factor=config.retry_backoff,
            status_forcelist=RETRY_STATUS,
            allowed_methods=None,
            raise_on_status=False,
        )
        io = StacApiIO(max_retries=retry)
        try:
            _CLIENTS[key] = Client.open(config.catalog, modifier=config.modifier_fn(), stac_io=io)
        except Exception as err:  # pystac-client raises APIError, requests errors, ...
            raise IngestError(f"STAC catalogue {config.catalog} cannot be opened: {err}") from err
    return _CLIENTS[key]


def search_items(
    config: StacConfig, collection: str, bbox: tuple[float, float, float, float], datetime: str
) -> list[pystac.Item]:
    """Items of a collection that intersect a lon/lat bbox within ``start/end`` (inclusive dates).

    An http(s) ``config.catalog`` is searched with pystac-client (with ``config.modifier`` and
    retries, ``stac_client``); anything else is read as a static catalogue and filtered here.
    """
    if config.catalog.startswith(("http://", "https://")):
        search = stac_client(config).search(collections=[collection], bbox=bbox, datetime=datetime)
        try:
            return list(search.items())
        except Exception as err:
            raise IngestError(
                f"STAC search of {collection} in {config.catalog} failed after "
                f"{config.max_retries} retries: {err}"
            ) from err
    start, end = _parse_range(datetime)
    query = box(*bbox)
    out = []
    for item in _local_items(config.catalog):
        if item.collection_id != collection or item.geometry is None:
            continue
        t0, t1 = _item_times(item)
        if t1 < start or t0 >= end or not shape(item.geometry).intersects(query):
            continue
        out.append(item)
    return sorted(out, key=lambda it: (it.datetime or _item_times(it)[0], it.id))


def _geobox(grid: ChipGrid):
    from odc.geo.geobox import GeoBox

    return GeoBox((grid.chip_px, grid.chip_px), grid.transform, grid.crs.to_wkt())


def _load(items, bands, grid: ChipGrid, resampling: dict[str, str]):
    import odc.stac

    return odc.stac.load(
        items,
        bands=list(bands),
        geobox=_geobox(grid),
        groupby="solar_day",
        resampling=resampling,
        fail_on_error=True,
    )


def _band_scale(item: pystac.Item, key: str, default: tuple[float, float]) -> tuple[float, float]:
    bands = item.assets[key].extra_fields.get("raster:bands") or [{}]
    return float(bands[0].get("scale", default[0])), float(bands[0].get("offset", default[1]))


def _month_of(times) -> np.ndarray:
    return np.asarray(times, dtype="datetime64[M]").astype(int) % 12 + 1


def composite_s2(config: StacConfig, items: list[pystac.Item], grid: ChipGrid) -> np.ndarray | None:
    """Monthly cloud-masked median reflectance, shape (3 * len(months), H, W); None if no item."""
    if config.s2_max_cloud is not None:
        items = [i for i in items if i.properties.get("eo:cloud_cover", 0) <= config.s2_max_cloud]
    if not items:
        return None
    groups: dict[tuple, list] = {}
    for item in items:  # processing baselines differ in offset: load each scaling separately
        key = tuple(
            _band_scale(item, b, (config.s2_scale, config.s2_offset)) for b in config.s2_bands
        )
        groups.setdefault(key, []).append(item)
    slices, months = [], []
    for scales, group in groups.items():
        ds = _load(
            group,
            (*config.s2_bands, config.s2_scl),
            grid,
            {config.s2_scl: "nearest", "*": "bilinear"},
        )
        cloudy = np.isin(ds[config.s2_scl].values, config.scl_mask)
        refl = []
        for band, (scale, offset) in zip(config.s2_bands, scales, strict=True):
            dn = ds[band].values.astype(np.float32)
            nodata = ds[band].attrs.get("nodata", 0)
            refl.append(np.where(cloudy | (dn == nodata), np.nan, dn * scale + offset))
        slices.append(np.stack(refl, axis=1))  # (T, 3, H, W)
        months.append(_month_of(ds.time.values))
    stack, month = np.concatenate(slices), np.concatenate(months)
    return _monthly(stack, month, config.months, np.nanmedian)


def _monthly(stack: np.ndarray, month: np.ndarray, months, reduce) -> np.ndarray:
    """(T, B, H, W) -> (len(months) * B, H, W) by ``reduce`` over the scenes of each month."""
    t, b, h, w = stack.shape
    out = np.full((len(months), b, h, w), np.nan, dtype=np.float32)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
        for k, m in enumerate(months):
            sel = month == m
            if sel.any():
                out[k] = reduce(stack[sel], axis=0)
    return out.reshape(len(months) * b, h, w)


def composite_s1(config: StacConfig, items: list[pystac.Item], grid: ChipGrid) -> np.ndarray | None:
    """Monthly VV, VH, VV-VH in dB (mean in linear power), shape (3 * len(months), H, W)."""
    if config.s1_orbit_state:
        items = [i for i in items if i.properties.get("sat:orbit_state") == config.s1_orbit_state]
    if not items:
        return None
    ds = _load(items, config.s1_bands, grid, {"*": "bilinear"})
    pols = []
    for band in config.s1_bands:
        x = ds[band].values.astype(np.float32)
        nodata = ds[band].attrs.get("nodata")
        bad = ~np.isfinite(x) | (
            (x == nodata) if nodata is not None and np.isfinite(nodata) else False
        )
        if config.s1_units == "db":
            x = np.power(10.0, x / 10.0, dtype=np.float32)
        else:
            bad |= x <= 0
        pols.append(np.where(bad, np.nan, x))
    lin = _monthly(np.stack(pols, axis=1), _month_of(ds.time.values), config.months, np.nanmean)
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(lin.reshape(len(config.months), 2, *lin.shape[1:]))
    return (
        np.concatenate([db, db[:, :1] - db[:, 1:2]], axis=1)
        .reshape(-1, *lin.shape[1:])
        .astype(np.float32)
    )


def worldcover_fractions(
    config: StacConfig, items: list[pystac.Item], grid: ChipGrid
) -> tuple[float, float]:
    """(cropland fraction, permanent water fraction) of the chip's valid WorldCover pixels."""
    if not items:
        return float("nan"), float("nan")
    ds = _load(items, (config.worldcover_asset,), grid, {"*": "nearest"})
    codes = ds[config.worldcover_asset].values[0]
    return (
        class_fraction(codes, WORLDCOVER_CROPLAND, nodata=0),
        class_fraction(codes, WORLDCOVER_WATER, nodata=0),
    )


class StacSource(ChipSource):
    """Composites each chip from a STAC catalogue (see the module docstring).

    Args:
        config: Catalogue, collections and assets.
        modalities: Store modalities (s2rgbm, s1grdm, optionally gunw).
        gunw: ARIA GUNW products on disk to add coherence from, or None.
    """

    name = "stac"
    spatial_blocks = True

    def __init__(
        self, config: StacConfig, modalities: tuple[str, ...], gunw: GunwLibrary | None = None
    ):
        self.config, self.modalities, self.gunw = config, tuple(modalities), gunw
        self._items: dict[str, list[pystac.Item]] = {}

    def _steps(self):
        c = self.config
        return [
            (m, coll, when, fn)
            for m, coll, when, fn in (
                ("s2rgbm", c.s2_collection, c.datetime_range(), composite_s2),
                ("s1grdm", c.s1_collection, c.datetime_range(), composite_s1),
                ("labels", c.worldcover_collection, c.worldcover_datetime, None),
            )
            if m == "labels" or m in self.modalities
        ]

    def open_block(self, rows: list[dict], report: IngestReport) -> None:
        """One search per collection for the whole block (its chips' bounding box)."""
        bounds = np.array([r["geometry"].bounds for r in rows])
        bbox = (bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max())
        self._items = {
            coll: search_items(self.config, coll, tuple(float(v) for v in bbox), when)
            for _, coll, when, _ in self._steps()
        }
        if self.gunw is not None:
            for path, problem in self.gunw.unreadable():
                report.problem("gunw", path, problem)

    def _chip_items(self, collection: str, grid: ChipGrid) -> list[pystac.Item]:
        return [
            i
            for i in self._items.get(collection, [])
            if i.geometry and shape(i.geometry).intersects(grid.geometry)
        ]

    def read(self, grid: ChipGrid, row: dict, report: IngestReport) -> ChipData:
        out = ChipData()
        for mod, collection, when, fn in self._steps():
            if fn is None:
                continue
            items = self._chip_items(collection, grid)
            x = fn(self.config, items, grid) if items else None
            if x is None or not np.isfinite(x).any():
                report.skip(
                    grid.chip_id, collection, None, f"no usable {collection} item in {when}"
                )
            else:
                out.arrays[mod] = x
        wc = self._chip_items(self.config.worldcover_collection, grid)
        crop, water = worldcover_fractions(self.config, wc, grid)
        if not wc:
            report.skip(
                grid.chip_id,
                self.config.worldcover_collection,
                None,
                "no WorldCover item: labels NaN",
            )
        out.labels = {"label_crop": crop, "label_water": water}
        if self.gunw is not None:
            data, pairs = self.gunw.chip(grid)
            if pairs:
                out.arrays["gunw"], out.names["gunw"] = data, pairs
            else:
                report.skip(grid.chip_id, "gunw", self.gunw.folder, "no GUNW pair covers the chip")
        return out

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_items": {}}  # a block's items stay in the process that searched


def ingest_stac(
    grid,
    out,
    config: StacConfig,
    gunw_dir: Path | None = None,
    modalities: tuple[str, ...] | None = None,
    executor=None,
):
    """Search, composite and write every chip of ``grid`` (see the module docstring).

    Args:
        grid: Chips (``eoclip.ingest.runner.load_grid``).
        out: ``eoclip.ingest.runner.StoreSpec``.
        config: Catalogue, collections and assets.
        gunw_dir: Folder of ARIA GUNW products to add coherence from; None for no gunw.
        modalities: Store modalities; default s2rgbm, s1grdm (+ gunw with ``gunw_dir``).
        executor: ``eoclip.ingest.executors.ExecutorSpec`` (default: this process).

    Returns:
        The IngestReport (also written beside the store).
    """
    from eoclip.ingest.runner import run_ingest

    modalities = modalities or (("s2rgbm", "s1grdm") + (("gunw",) if gunw_dir else ()))
    start, end = (
        config.month_range(min(config.months))[0],
        config.month_range(max(config.months))[1],
    )
    library = GunwLibrary(gunw_dir, start, end) if gunw_dir and "gunw" in modalities else None
    return run_ingest(grid, out, StacSource(config, modalities, library), executor)
