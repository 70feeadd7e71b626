"""ARIA Sentinel-1 GUNW coherence from the Alaska Satellite Facility (optional ``eoclip[asf]``).

``search_gunw`` queries ASF (asf-search) for ARIA S1 GUNW products intersecting the chips
in the period, ``choose_products`` keeps those whose date pair the paper would use (second
date in the window, first at most 48 days before), ``download_products`` fetches them with
Earthdata credentials, and ``ingest_gunw`` writes a gunw ChipStore with the same netCDF reader
as the M3LEO path (or give the folder to ``ingest stac --gunw-dir`` to add gunw to S1/S2).

Credentials (an Earthdata Login account, https://urs.earthdata.nasa.gov), first found wins:
``EARTHDATA_TOKEN``; ``EARTHDATA_USERNAME`` + ``EARTHDATA_PASSWORD``; a ``~/.netrc`` line
``machine urs.earthdata.nasa.gov login USER password PASS``.
"""

from __future__ import annotations

import datetime as dt
import netrc
import os
from collections.abc import Iterable
from pathlib import Path

from eoclip.errors import MissingDependencyError
from eoclip.ingest.gunw import PAIR_MAX_DAYS, GunwLibrary, pair_from_name, select_pairs
from eoclip.ingest.source import ChipData, ChipSource

__all__ = [
    "AsfGunwSource",
    "choose_products",
    "download_products",
    "earthdata_credentials",
    "earthdata_session",
    "ingest_gunw",
    "search_gunw",
]

EARTHDATA_HOST = "urs.earthdata.nasa.gov"


def _asf():
    try:
        import asf_search
    except ImportError as err:
        raise MissingDependencyError(
            "ASF GUNW search and download need asf-search: pip install 'eoclip[asf]' (or pip "
            "install asf-search)"
        ) from err
    return asf_search


def search_gunw(geometry_wkt: str, start: dt.date, end: dt.date, max_days: int = PAIR_MAX_DAYS):
    """ASF products (asf-search results) of ARIA S1 GUNW intersecting a WKT polygon.

    The query window starts ``max_days`` before ``start`` so that every pair ending in the
    window is returned; ``choose_products`` then applies the paper's rule.
    """
    asf = _asf()
    return list(
        asf.search(
            dataset=asf.DATASET.ARIA_S1_GUNW,
            intersectsWith=geometry_wkt,
            start=dt.datetime.combine(start - dt.timedelta(days=max_days), dt.time.min),
            end=dt.datetime.combine(end, dt.time.max),
        )
    )


def _product_name(product) -> str:
    props = getattr(product, "properties", product)
    return str(props.get("sceneName") or props.get("fileID") or props.get("fileName") or "")


def choose_products(
    products: Iterable, start: dt.date, end: dt.date, max_days: int = PAIR_MAX_DAYS
) -> list:
    """Products whose date pair (from the ARIA name ``...-tops-20200312_20200217-...``) qualifies.

    Args:
        products: asf-search products, or dicts with ``sceneName`` / ``fileID``.
        start, end: Window of the pair's second date.
        max_days: Longest span.

    Returns:
        The qualifying products, in input order.
    """
    products = list(products)
    pairs = [pair_from_name(_product_name(p)) for p in products]
    keep = set(select_pairs([p for p in pairs if p], start, end, max_days))
    return [prod for prod, pair in zip(products, pairs, strict=True) if pair in keep]


def earthdata_credentials(netrc_path: str | os.PathLike | None = None) -> dict:
    """``{"token": ...}`` or ``{"username": ..., "password": ...}`` from the env or ~/.netrc."""
    if os.environ.get("EARTHDATA_TOKEN"):
        return {"token": os.environ["EARTHDATA_TOKEN"]}
    user, pw = os.environ.get("EARTHDATA_USERNAME"), os.environ.get("EARTHDATA_PASSWORD")
    if user and pw:
        return {"username": user, "password": pw}
    path = Path(netrc_path or Path.home() / ".netrc")
    if path.is_file():
        auth = netrc.netrc(path).authenticators(EARTHDATA_HOST)
        if auth:
            return {"username": auth[0], "password": auth[2]}
    raise PermissionError(
        "no Earthdata credentials: set EARTHDATA_TOKEN, or EARTHDATA_USERNAME and "
        f"EARTHDATA_PASSWORD, or add 'machine {EARTHDATA_HOST} login USER password PASS' to {path}"
    )


def earthdata_session():
    """An authenticated ``asf_search.ASFSession``."""
    asf = _asf()
    creds = earthdata_credentials()
    session = asf.ASFSession()
    if "token" in creds:
        return session.auth_with_token(creds["token"])
    return session.auth_with_creds(creds["username"], creds["password"])


def download_products(
    products: Iterable, folder: str | os.PathLike, processes: int = 2
) -> list[Path]:
    """Download products into ``folder`` (already present files are kept); returns the .nc paths."""
    asf = _asf()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    todo = [p for p in products if not (folder / p.properties["fileName"]).exists()]
    if todo:
        asf.ASFSearchResults(todo).download(
            path=str(folder), session=earthdata_session(), processes=processes
        )
    return sorted(folder.glob("*.nc"))


class AsfGunwSource(ChipSource):
    """Coherence of ARIA GUNW products on disk, per chip (a gunw-only store)."""

    name = "asf"
    modalities = ("gunw",)

    def __init__(self, library: GunwLibrary):
        self.library = library

    def open_block(self, rows: list[dict], report) -> None:
        for path, problem in self.library.unreadable():
            report.problem("gunw", path, problem)

    def read(self, grid, row: dict, report) -> ChipData:
        data, pairs = self.library.chip(grid)
        if not pairs:
            return ChipData(not_written=f"no GUNW pair of {self.library.folder} covers the chip")
        return ChipData({"gunw": data}, {"gunw": pairs})


def ingest_gunw(
    grid,
    out,
    gunw_dir: str | os.PathLike,
    start: dt.date,
    end: dt.date,
    max_days: int = PAIR_MAX_DAYS,
    executor=None,
):
    """Write a gunw-only ChipStore for ``grid`` from ARIA products in ``gunw_dir``.

    Args:
        grid: Chips (``eoclip.ingest.runner.load_grid``).
        out: ``eoclip.ingest.runner.StoreSpec``.
        gunw_dir: Folder of GUNW ``.nc`` products.
        start, end: Window of the pairs' second date.
        max_days: Longest pair span.
        executor: ``eoclip.ingest.executors.ExecutorSpec`` (default: this process).
    """
    from eoclip.ingest.runner import run_ingest

    return run_ingest(
        grid, out, AsfGunwSource(GunwLibrary(gunw_dir, start, end, max_days)), executor
    )
