"""Pixel-embedding rasters (AlphaEarth, TESSERA, ...) pooled onto a ChipStore's chips.

A pixel-embedding product stores one band per embedding dimension (AlphaEarth 64, TESSERA
128), as GeoTIFF/COG tiles (often int8 with a scale) or as a zarr array. For each chip:

1. its polygon (EPSG:4326 in the store index) is transformed into each raster's own CRS and
   the window that covers it is read (rasterio windowed read; zarr through xarray, only that
   window), from every raster tile whose footprint it touches;
2. a pixel counts when its centre lies inside the chip polygon and no band is nodata (the
   file's nodata / mask, or the one given; NaN too);
3. stored values are dequantised: `value * scale + offset` (the file's own band scales and
   offsets unless given; a zarr's `scale_factor` / `add_offset` / `_FillValue` attributes),
   or AlphaEarth's `sign(v) * (|v| / 127.5) ** 2`;
4. the valid pixels are pooled: their mean per band, or mean and std concatenated
   (`pooling="mean+std"`, 2 x bands values).

A chip whose valid pixels cover less than `min_valid_fraction` of its footprint, or that
lies outside every raster, gets a **null** vector, never zeros. `<modality>_count` holds the
number of valid pixels and `<modality>_valid_fraction` the share of the footprint they cover.

Long imports are resumable: chips are pooled in parts written to `<out>.parts/` (each file
whole, with a manifest of the settings); a rerun pools only the missing parts.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import rasterio
import rasterio.errors
import rasterio.io
import rasterio.transform
import rasterio.warp
import rasterio.windows
import shapely
from affine import Affine
from rasterio.features import geometry_mask
from rasterio.windows import Window
from shapely.geometry import box
from tqdm.auto import tqdm

from eoclip import fsio
from eoclip.data.store import ChipStore
from eoclip.embeddings.importing import (
    ImportConfig,
    ImportEmbeddingsError,
    provenance,
    write_imported_table,
)

__all__ = [
    "PixelSource",
    "dequantize",
    "expand_sources",
    "import_raster",
    "open_source",
    "pool_chip",
]

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


@dataclass
class PixelSource:
    """One raster of a pixel-embedding product, open for windowed reads.

    Attributes:
        path: the file or zarr folder.
        crs: its CRS; transform: pixel -> CRS coordinates (pixel corners); width, height.
        bands: 0-based band positions used, in vector order.
        nodata: stored nodata value (None: none besides the mask / NaN).
        scales, offsets: float64 (len(bands),) dequantisation of the stored values.
        footprint: the raster's bounds as a polygon in EPSG:4326.
    """

    path: str
    crs: pyproj.CRS
    transform: Affine
    width: int
    height: int
    bands: list[int]
    nodata: float | None
    scales: np.ndarray
    offsets: np.ndarray
    footprint: shapely.Geometry
    _handle: object = None  # an xarray DataArray (zarr); GeoTIFFs go through _open_datasets
    _to_crs: pyproj.Transformer | None = None

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Stored values (B, h, w) of `window` and a bool (h, w) mask of pixels with all bands."""
        r0, c0 = int(window.row_off), int(window.col_off)
        r1, c1 = r0 + int(window.height), c0 + int(window.width)
        if self._handle is None:
            try:
                ds = _open_datasets.get(self.path)
                data = ds.read([b + 1 for b in self.bands], window=window, masked=True)
            except (rasterio.errors.RasterioError, OSError) as err:
                raise ImportEmbeddingsError(
                    f"{self.path}: cannot read rows {r0}-{r1}, columns {c0}-{c1} ({err}); the "
                    "file is damaged, replace it and rerun (finished parts are kept)"
                ) from err
            raw, bad = np.asarray(data.data), np.ma.getmaskarray(data)
        else:  # an xarray DataArray (band, y, x) of a zarr store
            raw = np.asarray(self._handle.isel(band=self.bands, y=slice(r0, r1), x=slice(c0, c1)))
            bad = np.zeros(raw.shape, dtype=bool)
        if self.nodata is not None:
            bad |= raw == self.nodata
        if raw.dtype.kind == "f":
            bad |= ~np.isfinite(raw)
        return raw, ~bad.any(axis=0)

    def to_own_crs(self, geom: shapely.Geometry) -> shapely.Geometry:
        """A polygon in EPSG:4326 transformed into this raster's CRS."""
        if self._to_crs is None:
            self._to_crs = pyproj.Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
        return shapely.transform(
            geom, lambda xy: np.column_stack(self._to_crs.transform(xy[:, 0], xy[:, 1]))
        )


class _DatasetCache:
    """At most `size` GeoTIFFs open at once (an AOI may touch thousands of product tiles)."""

    def __init__(self, size: int = 32) -> None:
        self.size, self.open = size, {}

    def get(self, path: str) -> rasterio.io.DatasetReader:
        ds = self.open.pop(path, None) or rasterio.open(path)
        self.open[path] = ds  # most recently used last
        while len(self.open) > self.size:
            self.open.pop(next(iter(self.open))).close()
        return ds


_open_datasets = _DatasetCache()


def dequantize(raw: np.ndarray, src: PixelSource, mode: str) -> np.ndarray:
    """Stored values (B, ...) -> float64 embedding values (linear per band, or AlphaEarth's)."""
    x = raw.astype(np.float64)
    if mode == "aef":
        return np.sign(x) * (np.abs(x) / 127.5) ** 2
    shape = (-1,) + (1,) * (x.ndim - 1)
    return x * src.scales.reshape(shape) + src.offsets.reshape(shape)


def expand_sources(sources: tuple[str, ...]) -> list[str]:
    """Files and zarr folders; a plain folder stands for the GeoTIFFs inside it."""
    out: list[str] = []
    for s in sources:
        p = Path(s)
        if p.is_dir() and not _is_zarr(p):
            tifs = sorted(str(f) for f in p.iterdir() if f.suffix.lower() in (".tif", ".tiff"))
            if not tifs:
                raise ImportEmbeddingsError(f"{s}: folder holds no .tif files and is not a zarr")
            out += tifs
        else:
            out.append(str(p))
    return out


def _is_zarr(p: Path) -> bool:
    return p.suffix == ".zarr" or (p / "zarr.json").is_file() or (p / ".zgroup").is_file()


def _per_band(value, n: int, default: float, name: str, path: str) -> np.ndarray:
    if value is None:
        return np.full(n, default, dtype=np.float64)
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()
    if not np.isfinite(arr).all():
        raise ImportEmbeddingsError(f"{path}: band {name} {value!r} is not a finite number")
    return arr


def _bands(cfg: ImportConfig, count: int, path: str) -> list[int]:
    bands = list(cfg.bands) if cfg.bands else list(range(1, count + 1))
    bad = [b for b in bands if not 1 <= b <= count]
    if bad:
        raise ImportEmbeddingsError(f"{path} has {count} bands; bands {bad} do not exist")
    return [b - 1 for b in bands]


def _open_geotiff(path: str, cfg: ImportConfig) -> PixelSource:
    try:
        with rasterio.open(path) as ds:
            crs, transform, width, height = ds.crs, ds.transform, ds.width, ds.height
            count, file_scales, file_offsets, nodata = ds.count, ds.scales, ds.offsets, ds.nodata
    except rasterio.errors.RasterioIOError as err:
        raise ImportEmbeddingsError(f"{path}: not a readable raster ({err})") from err
    if crs is None:
        raise ImportEmbeddingsError(
            f"{path} has no CRS; pixel embeddings need a georeferenced raster"
        )
    bands = _bands(cfg, count, path)
    scales = cfg.scale if cfg.scale is not None else [file_scales[b] for b in bands]
    offsets = cfg.offset if cfg.offset is not None else [file_offsets[b] for b in bands]
    return _source(
        path,
        pyproj.CRS.from_wkt(crs.to_wkt()),
        transform,
        width,
        height,
        bands,
        cfg.nodata if cfg.nodata is not None else nodata,
        scales,
        offsets,
        None,
    )


def _zarr_crs(ds, var) -> pyproj.CRS:
    for attrs in [ds[c].attrs for c in ("spatial_ref", "crs") if c in ds.variables] + [
        var.attrs,
        ds.attrs,
    ]:
        for key in ("crs_wkt", "spatial_ref", "proj:wkt2", "proj:code", "proj:epsg", "crs"):
            if attrs.get(key) not in (None, ""):
                value = attrs[key]
                return (
                    pyproj.CRS.from_epsg(int(value))
                    if key == "proj:epsg"
                    else pyproj.CRS.from_user_input(value)
                )
    raise ImportEmbeddingsError(
        "no CRS found: give the zarr a 'spatial_ref' variable with a 'crs_wkt' attribute (as "
        "rioxarray writes) or a 'crs' / 'proj:epsg' attribute"
    )


def _open_zarr(path: str, cfg: ImportConfig) -> PixelSource:
    import xarray as xr

    try:
        with warnings.catch_warnings():
            # zarr v3 has no consolidated metadata in its spec: reading without it is normal.
            warnings.filterwarnings(
                "ignore", "Failed to open Zarr store with consolidated", RuntimeWarning
            )
            ds = xr.open_zarr(path, mask_and_scale=False, decode_coords="all")
    except Exception as err:  # zarr and xarray raise many types for a damaged store
        raise ImportEmbeddingsError(f"{path}: not a readable zarr ({err})") from err
    names = [v for v in ds.data_vars if ds[v].ndim == 3]
    name = cfg.variable or (names[0] if len(names) == 1 else None)
    if name not in ds.data_vars:
        raise ImportEmbeddingsError(
            f"{path}: name the data variable with variable; 3-D variables: {names}"
        )
    var = ds[name]
    ydim, xdim = (
        [d for d in var.dims if d in ("y", "lat", "latitude")],
        [d for d in var.dims if d in ("x", "lon", "longitude")],
    )
    if len(ydim) != 1 or len(xdim) != 1:
        raise ImportEmbeddingsError(f"{path}:{name} needs y/x dimensions, has {var.dims}")
    bdim = next(d for d in var.dims if d not in (ydim[0], xdim[0]))
    var = var.transpose(bdim, ydim[0], xdim[0]).rename({bdim: "band", ydim[0]: "y", xdim[0]: "x"})
    x, y = var["x"].to_numpy(), var["y"].to_numpy()
    if len(x) < 2 or len(y) < 2:
        raise ImportEmbeddingsError(f"{path}:{name} needs at least 2 x 2 pixels")
    dx, dy = float(x[1] - x[0]), float(y[1] - y[0])
    # Coordinates are pixel centres (CF / rioxarray convention).
    transform = Affine(dx, 0.0, float(x[0]) - dx / 2, 0.0, dy, float(y[0]) - dy / 2)
    try:
        crs = _zarr_crs(ds, var)
    except ImportEmbeddingsError as err:
        raise ImportEmbeddingsError(f"{path}: {err}") from None
    bands = _bands(cfg, var.sizes["band"], path)
    attrs = var.attrs | var.encoding
    nodata = cfg.nodata if cfg.nodata is not None else attrs.get("_FillValue", attrs.get("nodata"))
    scales = cfg.scale if cfg.scale is not None else attrs.get("scale_factor")
    offsets = cfg.offset if cfg.offset is not None else attrs.get("add_offset")
    return _source(path, crs, transform, len(x), len(y), bands, nodata, scales, offsets, var)


def _source(
    path, crs, transform, width, height, bands, nodata, scales, offsets, handle
) -> PixelSource:
    n = len(bands)
    bounds = rasterio.transform.array_bounds(height, width, transform)  # (w, s, e, n)
    west, south, east, north = rasterio.warp.transform_bounds(
        crs.to_wkt(), "EPSG:4326", *bounds, densify_pts=21
    )
    return PixelSource(
        path=path,
        crs=crs,
        transform=transform,
        width=int(width),
        height=int(height),
        bands=bands,
        nodata=None if nodata is None else float(nodata),
        scales=_per_band(scales, n, 1.0, "scale", path),
        offsets=_per_band(offsets, n, 0.0, "offset", path),
        footprint=box(west, south, east, north),
        _handle=handle,
    )


def open_source(path: str, cfg: ImportConfig) -> PixelSource:
    """Open one GeoTIFF/COG/VRT or zarr for windowed reads.

    Raises:
        ImportEmbeddingsError: unreadable, no CRS, unknown bands or zarr variable.
    """
    return _open_zarr(path, cfg) if _is_zarr(Path(path)) else _open_geotiff(path, cfg)


def _window(src: PixelSource, geom: shapely.Geometry) -> Window | None:
    """The pixel window covering `geom` (raster CRS), clipped to the raster; None if empty."""
    minx, miny, maxx, maxy = geom.bounds
    inv = ~src.transform
    cols, rows = zip(*(inv * (x, y) for x in (minx, maxx) for y in (miny, maxy)), strict=True)
    c0, c1 = max(math.floor(min(cols)), 0), min(math.ceil(max(cols)), src.width)
    r0, r1 = max(math.floor(min(rows)), 0), min(math.ceil(max(rows)), src.height)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def pool_chip(
    sources: list[PixelSource], chip: shapely.Geometry, mode: str
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Sums over one chip's valid pixels, from every source that covers part of it.

    Args:
        sources: the rasters whose footprint touches the chip.
        chip: the chip polygon in EPSG:4326.
        mode: dequantisation, "linear" or "aef".

    Returns:
        `(sum (B,), sum of squares (B,), valid pixel count, share of the footprint covered)`.
    """
    total, total_sq, count, fraction = None, None, 0, 0.0
    for src in sources:
        geom = src.to_own_crs(chip)
        win = _window(src, geom)
        if win is None:
            continue
        raw, valid = src.read(win)
        inside = geometry_mask(
            [geom],
            out_shape=valid.shape,
            transform=rasterio.windows.transform(win, src.transform),
            invert=True,
        )
        use = inside & valid
        if not use.any():
            continue
        x = dequantize(raw[:, use], src, mode)  # (B, n)
        s, sq = x.sum(axis=1), (x * x).sum(axis=1)
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
        count += int(use.sum())
        pixel_area = abs(src.transform.a * src.transform.e - src.transform.b * src.transform.d)
        fraction += use.sum() * pixel_area / max(geom.area, 1e-12)
    if total is None:
        return np.zeros(0), np.zeros(0), 0, 0.0
    return total, total_sq, count, float(min(fraction, 1.0))


def _pool_part(sources, tree, chips, cfg: ImportConfig, dim: int, bar) -> dict[str, np.ndarray]:
    """Vectors (n, dim) with NaN rows, pixel counts and covered fractions of some chips."""
    n_out = dim * (2 if cfg.pooling == "mean+std" else 1)
    vec = np.full((len(chips), n_out), np.nan, dtype=np.float32)
    counts, frac = np.zeros(len(chips), np.int64), np.zeros(len(chips), np.float32)
    for i, chip in enumerate(chips):
        hits = [sources[j] for j in tree.query(chip)]
        s, sq, n, f = pool_chip(hits, chip, cfg.dequantize)
        counts[i], frac[i] = n, f
        if n and f >= cfg.min_valid_fraction:
            mean = s / n
            if cfg.pooling == "mean+std":
                std = np.sqrt(np.maximum(sq / n - mean * mean, 0.0))
                mean = np.concatenate([mean, std])
            vec[i] = mean.astype(np.float32)
        bar.update(1)
    return {"vectors": vec, "counts": counts, "fractions": frac}


def _open_all(cfg: ImportConfig) -> tuple[list[PixelSource], shapely.STRtree, int]:
    sources = [open_source(p, cfg) for p in expand_sources(cfg.sources)]
    dims = {len(s.bands) for s in sources}
    if len(dims) != 1:
        raise ImportEmbeddingsError(
            f"the rasters have different numbers of bands {sorted(dims)}; import them separately "
            "or select the same bands"
        )
    return sources, shapely.STRtree([s.footprint for s in sources]), dims.pop()


def _save_part(path: Path, part: dict[str, np.ndarray]) -> None:
    with fsio.atomic_write(path, "wb") as f:
        np.savez(f, **part)


def _parts_dir(cfg: ImportConfig, manifest: dict) -> Path:
    parts = Path(cfg.out).with_name(Path(cfg.out).name + ".parts")
    mpath = parts / MANIFEST
    if mpath.is_file() and json.loads(mpath.read_text()) != manifest:
        if not cfg.overwrite:
            raise ImportEmbeddingsError(
                f"{parts} holds parts of another import ({mpath} differs); remove it or pass "
                "overwrite=True"
            )
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    fsio.write_text_atomic(mpath, json.dumps(manifest, indent=2))
    return parts


def import_raster(store: ChipStore, cfg: ImportConfig) -> str:
    """Pool pixel-embedding rasters over every chip of `store` (see the module docstring).

    Returns:
        The path of the EmbeddingTable written.

    Raises:
        ImportEmbeddingsError: unreadable rasters, mismatched band counts, no chip covered,
            parts of another import in the way.
    """
    sources, tree, dim = _open_all(cfg)
    prov = provenance(
        cfg,
        "raster",
        {
            "pooling": f"{cfg.pooling} of the valid pixels whose centre is inside the chip",
            "bands": dim,
            "dequantize": cfg.dequantize,
            "rasters": [
                {
                    "path": s.path,
                    "crs": s.crs.to_string(),
                    "width": s.width,
                    "height": s.height,
                    "nodata": s.nodata,
                    "scale": s.scales.tolist(),
                    "offset": s.offsets.tolist(),
                }
                for s in sources
            ],
        },
    )
    manifest = {
        "store": store.url,
        "n_chips": len(store),
        "part_chips": cfg.part_chips,
        "provenance": prov,
    }
    parts_dir = _parts_dir(cfg, manifest)
    starts = range(0, len(store), cfg.part_chips)
    paths = [parts_dir / f"part-{i:05d}.npz" for i in range(len(starts))]
    todo = [i for i, p in enumerate(paths) if not p.is_file()]
    geoms = store.index.geometry.to_numpy()
    total = sum(min(cfg.part_chips, len(store) - starts[i]) for i in todo)
    with tqdm(
        total=total, unit="chip", desc=f"import {cfg.product}", disable=not cfg.progress
    ) as bar:
        for i in todo:
            lo = starts[i]
            part = _pool_part(sources, tree, geoms[lo : lo + cfg.part_chips], cfg, dim, bar)
            _save_part(paths[i], part)
    loaded = [np.load(p) for p in paths]
    vectors = np.concatenate([p["vectors"] for p in loaded])
    counts = np.concatenate([p["counts"] for p in loaded])
    fractions = np.concatenate([p["fractions"] for p in loaded])
    present = ~np.isnan(vectors).any(axis=1)
    if not present.any():
        raise ImportEmbeddingsError(
            f"no chip of {store.url} is covered by the rasters {cfg.sources} with at least "
            f"{cfg.min_valid_fraction:.0%} valid pixels; check their extent, CRS and nodata"
        )
    prov["chips_with_vector"] = int(present.sum())
    prov["chips_partly_covered_left_null"] = int(((counts > 0) & ~present).sum())
    mod = cfg.modality_name
    path = write_imported_table(
        store, vectors, counts, cfg, prov, {f"{mod}_valid_fraction": fractions}
    )
    shutil.rmtree(parts_dir, ignore_errors=True)
    return path
