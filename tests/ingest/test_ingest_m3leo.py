import json

import numpy as np
import pytest
from m3leo_fixtures import EXPECTED_LABELS, PAIRS_SELECTED, write_m3leo

from eoclip.data.store import ChipStore
from eoclip.ingest.grid import chip_grid
from eoclip.ingest.m3leo import M3LEOConfig, ingest_m3leo
from eoclip.ingest.report import IngestFileError

CHIP_PX = 32


@pytest.fixture(scope="module")
def ingested(m3leo_fixture, tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "store"
    report = ingest_m3leo(M3LEOConfig(root=m3leo_fixture.root, store=str(out), chip_px=CHIP_PX,
                                      batch_size=3, progress=False))
    return m3leo_fixture, out, report


def _pixel(fx, store, chip_id, qx, qy):
    geom = store.index.set_index("chip_id").geometry[chip_id]
    grid = chip_grid(chip_id, geom, store.chip_px)
    return grid.pixel_of(*fx.quarter_lonlat(chip_id, qx, qy))


@pytest.mark.parametrize("qx,qy", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_known_pixels_round_trip(ingested, qx, qy):
    fx, path, _ = ingested
    store = ChipStore.open(path)
    row, col = _pixel(fx, store, "c0", qx, qy)
    chip = store.read_chip("c0")
    s2 = chip["s2rgbm"]
    # months 1..3 of the file -> slots 01..03; uint8 0..255 -> reflectance 0..0.3
    for k, name in enumerate(s2.names):
        assert s2.data[k, row, col] == pytest.approx(fx.values[("c0", "s2rgbm", name)][qy, qx], abs=0.3 / 255)
    s1 = chip["s1grdm"]
    for month in (1, 2, 3):
        vv = fx.values[("c0", "s1grdm-asc", f"{month:02d}_vv")][qy, qx]
        vh = fx.values[("c0", "s1grdm-asc", f"{month:02d}_vh")][qy, qx]
        got = dict(zip(s1.names, s1.data[:, row, col], strict=True))
        assert got[f"{month:02d}_vv"] == pytest.approx(vv, abs=0.011)
        assert got[f"{month:02d}_vh"] == pytest.approx(vh, abs=0.011)
        assert got[f"{month:02d}_vvvh"] == pytest.approx(vv - vh, abs=0.011)
    gunw = chip["gunw"]
    assert list(gunw.names[: len(PAIRS_SELECTED)]) == PAIRS_SELECTED
    for k, pair in enumerate(PAIRS_SELECTED):
        assert gunw.data[k, row, col] == pytest.approx(fx.values[("c0", "gunw", pair)][qy, qx], abs=1 / 255 + 1e-6)


def test_chips_do_not_mix(ingested):
    """The same quarter of two chips holds each chip's own value."""
    fx, path, _ = ingested
    store = ChipStore.open(path)
    row, col = _pixel(fx, store, "c3", 1, 1)
    s2 = store.read_chip("c3")["s2rgbm"]
    assert s2.data[0, row, col] == pytest.approx(fx.values[("c3", "s2rgbm", "01_red")][1, 1], abs=0.3 / 255)
    assert fx.values[("c3", "s2rgbm", "01_red")][1, 1] != fx.values[("c0", "s2rgbm", "01_red")][1, 1]


def test_labels(ingested):
    _, path, _ = ingested
    index = ChipStore.open(path).index.set_index("chip_id")
    for col, value in EXPECTED_LABELS.items():
        tol = 1.5 if col == "label_tree" else 0.03
        assert index.loc["c0", col] == pytest.approx(value, abs=tol), col
    assert np.isnan(index.loc["c1", "label_tree"])  # modis file missing: NaN, never 0
    assert index.loc["c1", "label_crop"] == pytest.approx(0.5, abs=0.03)
    assert index.loc["c0", "split"] == "train" and index.loc["c3", "split"] == "test"


def test_bad_files_are_skipped_and_named(ingested):
    fx, path, report = ingested
    store = ChipStore.open(path)
    chip = {cid: store.read_chip(cid) for cid in ("c1", "c2", "c3")}
    assert "s2rgbm" not in chip["c1"] and "s2rgbm" in chip["c2"]
    assert "gunw" not in chip["c2"]
    # c3: asc has a wrong CRS -> descending values are used
    fxv = fx.values[("c3", "s1grdm-des", "01_vv")]
    row, col = _pixel(fx, store, "c3", 0, 0)
    assert chip["c3"]["s1grdm"].data[0, row, col] == pytest.approx(fxv[0, 0], abs=0.011)
    by = {(s["chip_id"], s["product"]): s for s in json.loads((path.parent / "store.ingest.json").read_text())["skips"]}
    assert "unreadable GeoTIFF" in by[("c1", "s2rgbm-2020")]["reason"]
    assert by[("c1", "s2rgbm-2020")]["path"].endswith("s2rgbm-2020/c1.tif")
    assert "/science/grids/data" in by[("c2", "gunw")]["reason"] and by[("c2", "gunw")]["path"].endswith("c2.nc")
    assert "does not overlap chip c3" in by[("c3", "s1grdm-2020-asc")]["reason"]
    assert by[("c1", "modis44b006veg")]["reason"] == "missing file"
    assert "absent from the grid" in by[("zz_orphan", "s2rgbm-2020")]["reason"]
    assert "absent from the grid" in by[("zz_ghost", "splits")]["reason"]
    assert report.notes["s1grdm: des used (asc missing)"] == 1
    assert report.present["s2rgbm"] == 3 and report.chips_written == 4


def test_resume_skips_present_chips(m3leo_fixture, tmp_path):
    cfg = dict(root=m3leo_fixture.root, store=str(tmp_path / "s"), chip_px=16, progress=False,
               modalities=("s2rgbm",))
    first = ingest_m3leo(M3LEOConfig(**cfg, limit=2))
    assert first.chips_written == 1  # c1's only modality is a truncated file: chip not written
    assert any(s.chip_id == "c1" and "no modality" in s.reason for s in first.skips)
    again = ingest_m3leo(M3LEOConfig(**cfg, resume=True))
    assert again.chips_already_present == 1 and again.chips_written == 2
    store = ChipStore.open(tmp_path / "s")
    assert sorted(store.chip_ids) == ["c0", "c2", "c3"]
    with pytest.raises(Exception, match="exists"):
        ingest_m3leo(M3LEOConfig(**cfg))


def test_des_option_and_months(m3leo_fixture, tmp_path):
    cfg = M3LEOConfig(root=m3leo_fixture.root, store=str(tmp_path / "s"), chip_px=16, progress=False,
                      modalities=("s2rgbm", "s1grdm"), s1_direction="des", months=(2, 3, 4), limit=1)
    ingest_m3leo(cfg)
    store = ChipStore.open(tmp_path / "s")
    chip = store.read_chip("c0")
    s2, s1 = chip["s2rgbm"].data, chip["s1grdm"].data
    # slot 01 holds calendar month 2 (constant quarters: the chip median lies on a quarter value)
    quarters = m3leo_fixture.values[("c0", "s2rgbm", "02_red")].ravel()
    assert np.min(np.abs(quarters - s2[0, 2, 2])) < 0.3 / 255
    assert np.min(np.abs(m3leo_fixture.values[("c0", "s1grdm-des", "02_vv")].ravel() - s1[0, 2, 2])) < 0.011
    assert np.isnan(store.read_chip("c0")["s1grdm"].data[6:]).all()  # no month 4 in the S1 file


def test_essential_files_raise(tmp_path):
    fx = write_m3leo(tmp_path / "d", seed=1)
    store = str(tmp_path / "s")
    with pytest.raises(IngestFileError, match="nope.csv"):
        ingest_m3leo(M3LEOConfig(root=fx.root, store=store, splits=tmp_path / "nope.csv", progress=False))
    (fx.root / "tiny_chips.geojson").write_text("{not json")
    with pytest.raises(IngestFileError, match="tiny_chips.geojson"):
        ingest_m3leo(M3LEOConfig(root=fx.root, store=store, progress=False))
    (fx.root / "tiny_chips.geojson").unlink()
    with pytest.raises(FileNotFoundError, match="chips GeoJSON"):
        ingest_m3leo(M3LEOConfig(root=fx.root, store=store, progress=False))
    with pytest.raises(ValueError, match="months"):
        M3LEOConfig(root=fx.root, store=store, months=(1, 2))
