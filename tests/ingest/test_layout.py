import numpy as np
import pytest
import rasterio
from m3leo_fixtures import write_m3leo_nested

from eoclip.ingest.grid import chip_grid
from eoclip.ingest.layout import find_datasets, read_splits
from eoclip.ingest.readers import S2_LAYOUT, read_s2_chip
from eoclip.ingest.report import IngestError


def test_nested_download_is_found(m3leo_nested):
    conus, china = sorted(find_datasets(m3leo_nested.root), key=lambda d: d.aoi, reverse=True)
    assert (conus.aoi, china.aoi) == ("conus", "china")
    assert (
        conus.stem == m3leo_nested.stems["conus"] and conus.folder == m3leo_nested.root / conus.stem
    )
    assert conus.splits_path.name == f"{conus.stem}_splits.csv"
    assert conus.products["s1grdm-des"].name == "s1grdm-2020-desc"  # -desc and -des both accepted
    assert china.products["s1grdm-des"].name == "s1grdm-2020-des"
    assert (
        conus.products["gunw"].name == "gunw" and conus.products["modis"].name == "modis44b006veg"
    )
    assert find_datasets(m3leo_nested.root, aoi="x")[0].aoi == "x"


def test_flat_layout_and_errors(m3leo_fixture, tmp_path):
    (flat,) = find_datasets(m3leo_fixture.root)
    assert (
        flat.aoi == "tiny"
        and flat.folder == m3leo_fixture.root
        and flat.splits_path.name == "tiny_splits.csv"
    )
    with pytest.raises(IngestError, match="does not exist"):
        find_datasets(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="no chips GeoJSON"):
        find_datasets(tmp_path / "empty")


def test_splits_csv_columns(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("identifier,split_8bands,split_4bands\na,train,test\n")
    with pytest.raises(
        IngestError, match=r"choose the split column among \['split_8bands', 'split_4bands'\]"
    ):
        read_splits(path)
    assert read_splits(path, "split_4bands").to_dict() == {"a": "test"}
    path.write_text("identifier,split_nb,split\na,3,val\n")
    assert read_splits(path).to_dict() == {"a": "val"}


def test_undescribed_12_month_file_uses_geetiles_band_order(tmp_path):
    fx = write_m3leo_nested(tmp_path / "d", seed=2)
    src = fx.root / fx.stems["conus"] / "s2rgbm-2020" / "us0.tif"
    bare = tmp_path / "bare.tif"
    with rasterio.open(src) as f:
        profile, data = f.profile, f.read()
    with rasterio.open(bare, "w", **profile) as dst:
        dst.write(data)  # no band descriptions
    from eoclip.ingest.layout import read_chips

    chips = read_chips(fx.root / f"{fx.stems['conus']}.geojson").set_index("chip_id")
    grid = chip_grid("us0", chips.geometry["us0"], 8)
    with_names, without = read_s2_chip(src, grid, (4, 5, 6)), read_s2_chip(bare, grid, (4, 5, 6))
    np.testing.assert_array_equal(with_names.data, without.data)
    assert len(S2_LAYOUT) == 36 and not without.missing
