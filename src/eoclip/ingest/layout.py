"""Find the AOIs of an M3LEO / geetiles download: chips GeoJSON, splits CSV, product folders.

geetiles writes, for each grid (one AOI)::

    <stem>.geojson            identifier + EPSG:4326 polygon per chip; <stem> is like
                              conus_partitions_aschips_14d8c0b2a1f3e (the AOI comes first)
    <stem>_splits*.csv        identifier,split (several variants may exist)
    <stem>/<dataset>/<identifier>.tif|.nc

A root may hold several grids (several AOIs). The older flat layout, with the GeoJSON, the
splits CSV and the product folders side by side in one folder, is read too, and so is the
``<stem>/`` folder itself when its GeoJSON sits beside it.
"""

from __future__ import annotations

import glob as globlib
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd

from eoclip.ingest.report import IngestError, IngestFileError

__all__ = [
    "PRODUCT_FOLDERS",
    "Dataset",
    "find_datasets",
    "product_folder",
    "read_chips",
    "read_splits",
]

# Product -> candidate folder names ({year} substituted); the first that exists is used.
PRODUCT_FOLDERS: dict[str, tuple[str, ...]] = {
    "s2rgbm": ("s2rgbm-{year}",),
    "s1grdm-asc": ("s1grdm-{year}-asc",),
    "s1grdm-des": ("s1grdm-{year}-desc", "s1grdm-{year}-des"),
    "gunw": ("gunw-{year}", "gunw", "gunw*"),
    "esaworldcover": ("esaworldcover-{year}", "esaworldcover{year}", "esaworldcover"),
    "modis": ("modis44b006veg", "modis44b006veg{year}", "modis44b006veg-{year}"),
    "ghsbuilts": ("ghsbuilts-{year}", "ghsbuilts{year}", "ghsbuilts"),
}


@dataclass
class Dataset:
    """One grid (AOI) of the download.

    Attributes:
        stem: GeoJSON file name without ``.geojson``.
        aoi: AOI name for the index.
        chips_path: The GeoJSON.
        splits_path: The splits CSV; None when the GeoJSON's ``split`` column is used.
        folder: Folder holding the product folders.
        products: Product key -> its folder, None when absent (see ``PRODUCT_FOLDERS``).
    """

    stem: str
    aoi: str
    chips_path: Path
    splits_path: Path | None
    folder: Path
    products: dict[str, Path | None] = field(default_factory=dict)


def aoi_from_stem(stem: str) -> str | None:
    """``conus_partitions_aschips_<hash>`` -> ``conus`` (geetiles puts the AOI name first)."""
    return stem.split("_partitions_")[0] if "_partitions_" in stem else None


def product_folder(
    folder: Path, key: str, year: int, names: tuple[str, ...] | None = None
) -> Path | None:
    """The folder of a product inside ``folder``, or None.

    Raises:
        IngestError: A wildcard candidate matches several folders.
    """
    for pattern in names or PRODUCT_FOLDERS[key]:
        name = pattern.format(year=year)
        if "*" not in name:
            if (folder / name).is_dir():
                return folder / name
            continue
        found = sorted(p for p in folder.glob(name) if p.is_dir())
        if len(found) > 1:
            raise IngestError(
                f"{folder}: several folders for {key}: {[p.name for p in found]}; "
                "name the one to use in the folders setting"
            )
        if found:
            return found[0]
    return None


def _geojsons(root: Path) -> list[Path]:
    found = sorted(root.glob("*.geojson"))
    stems = {p.stem for p in found}
    # geetiles' expand_proportions writes <stem>_expanded.geojson beside the grid: not a grid
    return [
        p
        for p in found
        if not (p.stem.endswith("_expanded") and p.stem[: -len("_expanded")] in stems)
    ]


def find_datasets(
    root: Path,
    chips: Path | None = None,
    splits: str | Path | None = None,
    aoi: str | None = None,
    year: int = 2020,
    folders: dict[str, tuple[str, ...]] | None = None,
) -> list[Dataset]:
    """Every grid of a download.

    Args:
        root: The download folder (see the module docstring), or one grid's ``<stem>/``.
        chips: One chips GeoJSON to use instead of searching.
        splits: The splits CSV: a path, or a part of its name choosing among each grid's
            ``<stem>_splits*.csv``; None takes the only one.
        aoi: AOI name for every grid (default: from the stem, else the root's name).
        year: Year in the product folder names.
        folders: Product key -> candidate folder names, replacing ``PRODUCT_FOLDERS``'s.

    Raises:
        IngestError: No GeoJSON, several where one is needed, or an ambiguous splits CSV.
    """
    root = Path(root)
    if not root.is_dir():
        raise IngestError(f"M3LEO dataset folder {root} does not exist (or is not a folder)")
    if chips is not None:
        chips = Path(chips)
        if not chips.is_file():
            raise IngestFileError(chips, "chips GeoJSON not found")
        nested = next(
            (d for d in (root / chips.stem, chips.parent / chips.stem) if d.is_dir()), None
        )
        grids = [(chips, nested or root, nested is not None)]
    else:
        found = _geojsons(root)
        nested = [g for g in found if (root / g.stem).is_dir()]
        flat = [g for g in found if g not in nested]
        inner = root.parent / f"{root.name}.geojson"
        if nested:
            grids = [(g, root / g.stem, True) for g in nested]
        elif len(flat) == 1:
            grids = [(flat[0], root, False)]
        elif flat:
            raise IngestError(
                f"{root}: {len(flat)} chips GeoJSONs ({', '.join(p.name for p in flat)}) and no "
                "product folder named after any of them; give the chips GeoJSON to use"
            )
        elif inner.is_file():
            grids = [(inner, root, True)]
        else:
            raise IngestError(
                f"{root}: no chips GeoJSON (*.geojson) in it or beside it; expected "
                "<stem>.geojson with a <stem>/ product folder (geetiles), or give the GeoJSON"
            )
    out = []
    for path, folder, is_nested in grids:
        name = aoi or aoi_from_stem(path.stem) or (path.stem if is_nested else root.name)
        products = {
            key: product_folder(folder, key, year, (folders or {}).get(key))
            for key in PRODUCT_FOLDERS
        }
        out.append(
            Dataset(path.stem, name, path, _pick_splits(path, splits, is_nested), folder, products)
        )
    return out


def _pick_splits(chips: Path, splits: str | Path | None, nested: bool) -> Path | None:
    stem = globlib.escape(chips.stem)
    candidates = sorted(chips.parent.glob(f"{stem}_splits*.csv"))
    if not candidates and not nested:
        candidates = sorted(chips.parent.glob("*split*.csv"))  # the older flat layout
    if splits is not None:
        given = Path(splits)
        if given.is_file():
            return given
        chosen = [c for c in candidates if given.name in c.name]
        if len(chosen) == 1:
            return chosen[0]
        raise IngestFileError(
            given,
            f"splits CSV not found: not a file, and {len(chosen)} of the splits "
            f"CSVs of {chips.name} have it in their name ({[c.name for c in candidates]})",
        )
    if len(candidates) > 1:
        raise IngestError(
            f"{chips.parent}: several splits CSVs for {chips.name}: "
            f"{', '.join(c.name for c in candidates)}; choose one (a path, or a part of "
            "its name such as '_splits_8bands')"
        )
    return candidates[0] if candidates else None


def read_chips(path: Path) -> gpd.GeoDataFrame:
    """Read the chips GeoJSON: ``identifier`` (or ``chip_id``) and EPSG:4326 polygons.

    Raises:
        IngestFileError: Missing/unreadable file, no identifier column, duplicate identifiers.
    """
    if not Path(path).is_file():
        raise IngestFileError(path, "chips GeoJSON not found")
    try:
        chips = gpd.read_file(path)
    except Exception as err:  # pyogrio raises several unrelated types
        raise IngestFileError(path, f"unreadable chips GeoJSON: {err}") from err
    key = "identifier" if "identifier" in chips else "chip_id" if "chip_id" in chips else None
    if key is None:
        raise IngestFileError(path, f"no 'identifier' column; columns are {list(chips.columns)}")
    chips = chips.rename(columns={key: "chip_id"})
    chips["chip_id"] = chips["chip_id"].astype(str)
    dup = chips["chip_id"][chips["chip_id"].duplicated()].tolist()
    if dup:
        raise IngestFileError(path, f"duplicate identifiers {dup[:5]}")
    if chips.crs is None:
        chips = chips.set_crs("EPSG:4326")
    elif not chips.crs.equals("EPSG:4326"):
        chips = chips.to_crs("EPSG:4326")
    return chips


def read_splits(path: Path, column: str | None = None) -> pd.Series:
    """Read a splits CSV into a Series (split by identifier).

    Args:
        path: CSV with ``identifier`` and a split column.
        column: The split column; default ``split``, else the only column named ``*split*``.
    """
    if not Path(path).is_file():
        raise IngestFileError(path, "splits CSV not found")
    try:
        df = pd.read_csv(path, dtype=str)
    except Exception as err:
        raise IngestFileError(path, f"unreadable splits CSV: {err}") from err
    options = [c for c in df.columns if "split" in c.lower() and c != "split_nb"]
    if column is None:
        column = "split" if "split" in df.columns else options[0] if len(options) == 1 else None
    if "identifier" not in df.columns or column not in df.columns:
        raise IngestFileError(
            path,
            f"needs columns identifier and a split column; has {list(df.columns)}"
            + (f" (choose the split column among {options})" if len(options) > 1 else ""),
        )
    return df.drop_duplicates("identifier").set_index("identifier")[column]
