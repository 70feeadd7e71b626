import datetime as dt

import numpy as np
import pytest
import xarray as xr

from eoclip.data.store import ChipStore
from eoclip.ingest import asf
from eoclip.ingest.grid import chip_grid
from eoclip.ingest.gunw import pair_from_name, read_gunw, select_pairs
from eoclip.ingest.report import IngestFileError
from eoclip.ingest.runner import GridSpec, StoreSpec, load_grid

Q1 = (dt.date(2020, 1, 1), dt.date(2020, 3, 31))


def test_select_pairs_paper_rule():
    names = [
        "20200312_20200217",
        "20200105_20191124",
        "20200105_20191112",  # 54 days: too long
        "20200401_20200308",
        "20191230_20191206",
        "junk",
    ]
    assert select_pairs(names, *Q1) == ["20200105_20191124", "20200312_20200217"]
    assert select_pairs(names, *Q1, max_days=60) == [
        "20200105_20191112",
        "20200105_20191124",
        "20200312_20200217",
    ]
    # too many: keep the shortest spans
    assert select_pairs(names, *Q1, max_days=60, max_pairs=1) == ["20200312_20200217"]
    assert (
        pair_from_name(
            "S1-GUNW-A-R-064-tops-20200312_20200217-015013-36885N_35006N-PP-a1b9-v2_0_4.nc"
        )
        == "20200312_20200217"
    )


def _aria_product(path, lon0, lat0, pair_value: float, n=40, step=0.00083333):
    lon = lon0 + step * np.arange(n)
    lat = lat0 + step * np.arange(n)  # ascending latitude, as ARIA stores it
    coh = np.full((n, n), pair_value, np.float32)
    coh[:5] = 0.0  # ARIA fill
    ds = xr.Dataset(
        {"coherence": (("latitude", "longitude"), coh)}, coords={"latitude": lat, "longitude": lon}
    )
    ds.to_netcdf(path, group="/science/grids/data", engine="h5netcdf")


def test_read_aria_product_and_errors(tmp_path):
    good = tmp_path / "S1-GUNW-A-R-064-tops-20200312_20200217-015013-PP-a1b9-v2_0_4.nc"
    _aria_product(good, 10.0, 45.0, 0.7)
    raster, pairs = read_gunw(good)
    assert pairs == ["20200312_20200217"]
    assert (
        raster.transform.e < 0 and np.isnan(raster.data[0, -5:]).all()
    )  # flipped north-up, fill -> NaN
    nameless = tmp_path / "product.nc"
    nameless.write_bytes(good.read_bytes())
    with pytest.raises(IngestFileError, match="product.nc.*pair"):
        read_gunw(nameless)
    truncated = tmp_path / "t_20200312_20200217.nc"
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(IngestFileError, match="t_20200312_20200217.nc"):
        read_gunw(truncated)
    with pytest.raises(IngestFileError, match="missing file"):
        read_gunw(tmp_path / "absent.nc")


def test_choose_products_and_credentials(tmp_path, monkeypatch):
    products = [
        {"sceneName": f"S1-GUNW-D-R-021-tops-{p}-033504-PP-8473-v2_0_6"}
        for p in ("20200312_20200217", "20200401_20200308", "20200210_20191201")
    ]
    assert asf.choose_products(products, *Q1) == products[:1]
    for var in ("EARTHDATA_TOKEN", "EARTHDATA_USERNAME", "EARTHDATA_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    netrc_file = tmp_path / "netrc"
    netrc_file.write_text("machine urs.earthdata.nasa.gov login alice password s3cret\n")
    netrc_file.chmod(0o600)
    assert asf.earthdata_credentials(netrc_file) == {"username": "alice", "password": "s3cret"}
    monkeypatch.setenv("EARTHDATA_TOKEN", "tok")
    assert asf.earthdata_credentials(netrc_file) == {"token": "tok"}
    monkeypatch.delenv("EARTHDATA_TOKEN")
    with pytest.raises(PermissionError, match="EARTHDATA_USERNAME"):
        asf.earthdata_credentials(tmp_path / "none")


def test_missing_asf_search_message(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake(name, *args, **kw):
        if name == "asf_search":
            raise ImportError("no")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"eoclip\[asf\]"):
        asf.search_gunw("POINT (0 0)", *Q1)


def test_ingest_gunw_products_mosaic(m3leo_fixture, tmp_path):
    """Two frames of the same pair and one of another pair over the fixture chips."""
    grid = load_grid(GridSpec(chips=m3leo_fixture.root / "tiny_chips.geojson"))
    minx, miny, _, _ = grid.total_bounds
    d = tmp_path / "gunw"
    d.mkdir()
    _aria_product(d / "S1-GUNW-A-R-1-tops-20200312_20200217-a.nc", minx - 0.01, miny - 0.01, 0.6)
    _aria_product(d / "S1-GUNW-A-R-1-tops-20200312_20200217-b.nc", minx - 0.005, miny - 0.01, 0.9)
    _aria_product(d / "S1-GUNW-A-R-1-tops-20200224_20200212-a.nc", minx - 0.01, miny - 0.01, 0.4)
    _aria_product(d / "S1-GUNW-A-R-1-tops-20200424_20200412-a.nc", minx - 0.01, miny - 0.01, 0.1)
    (d / "broken_20200312_20200217.nc").write_bytes(b"not a netcdf")
    report = asf.ingest_gunw(
        grid, StoreSpec(str(tmp_path / "s"), chip_px=16, progress=False), d, *Q1
    )
    store = ChipStore.open(tmp_path / "s")
    chip = store.read_chip("c0")["gunw"]
    assert chip.names[:2] == ["20200224_20200212", "20200312_20200217"]
    assert chip.valid[:2].all() and not chip.valid[2:].any()
    assert np.nanmean(chip.data[0]) == pytest.approx(0.4, abs=0.005)
    assert np.nanmean(chip.data[1]) == pytest.approx(0.6, abs=0.005)  # first frame wins the overlap
    assert any("broken" in (p.path or "") for p in report.problems)  # once, not per chip
    g = chip_grid("c0", grid.geometry.iloc[0], 16)
    assert g.pixel_size_m == pytest.approx(40.0, rel=0.01)


def _ten_pairs_raster(empty: set[int]):
    """10 pairs ending 2020-03-01 with spans of 4..40 days; `empty` ones hold only NaN."""
    from affine import Affine
    from pyproj import CRS

    from eoclip.ingest.readers import RasterChip

    second = dt.date(2020, 3, 1)
    names = [f"{second:%Y%m%d}_{second - dt.timedelta(days=4 * (k + 1)):%Y%m%d}" for k in range(10)]
    data = np.stack(
        [np.full((60, 60), np.nan if k in empty else 0.1 * k, np.float32) for k in range(10)]
    )
    return RasterChip(
        "mem.nc", data, names, CRS.from_epsg(4326), Affine(0.001, 0, 10.0, 0, -0.001, 45.06)
    ), names


def test_pair_cap_applies_to_pairs_that_cover_the_chip():
    """The 8-slot cap keeps the shortest pairs WITH data: empty ones never take a slot."""
    import shapely

    from eoclip.ingest.gunw import cap_pairs, merge_pairs_on_chip

    raster, names = _ten_pairs_raster(empty={0, 1})  # the two shortest spans miss the chip
    grid = chip_grid("x", shapely.box(10.01, 45.01, 10.05, 45.05), 16)
    data, kept = cap_pairs(*merge_pairs_on_chip([raster], grid, select_pairs(names, *Q1)), 8)
    assert len(kept) == 8 and set(kept) == set(names[2:])
    assert data.shape == (8, 16, 16) and np.isfinite(data).all()
    assert np.nanmean(data[kept.index(names[9])]) == pytest.approx(0.9, abs=1e-6)
    # capping first (what the M3LEO path did) would have left 6 pairs with data
    first = merge_pairs_on_chip([raster], grid, select_pairs(names, *Q1, max_pairs=8))[1]
    assert len(first) == 6
    few, few_names = cap_pairs(data[:3], kept[:3], 8)  # under the cap: unchanged
    assert few_names == kept[:3] and few.shape[0] == 3
