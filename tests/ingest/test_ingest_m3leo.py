import json

import numpy as np
import pytest
from m3leo_fixtures import EXPECTED_LABELS, PAIRS_SELECTED, write_m3leo, write_m3leo_nested

from eoclip.data.store import ChipStore, StoreError
from eoclip.ingest.grid import chip_grid
from eoclip.ingest.m3leo import M3LEOConfig, ingest_m3leo
from eoclip.ingest.report import IngestError, IngestFileError, NothingIngestedError
from eoclip.ingest.runner import StoreSpec

CHIP_PX = 32


@pytest.fixture(scope="module")
def ingested(m3leo_fixture, tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "store"
    report = ingest_m3leo(
        M3LEOConfig(root=m3leo_fixture.root),
        StoreSpec(str(out), chip_px=CHIP_PX, batch_size=3, progress=False),
    )
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
        assert s2.data[k, row, col] == pytest.approx(
            fx.values[("c0", "s2rgbm", name)][qy, qx], abs=0.3 / 255
        )
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
        assert gunw.data[k, row, col] == pytest.approx(
            fx.values[("c0", "gunw", pair)][qy, qx], abs=1 / 255 + 1e-6
        )


def test_chips_do_not_mix(ingested):
    """The same quarter of two chips holds each chip's own value."""
    fx, path, _ = ingested
    store = ChipStore.open(path)
    row, col = _pixel(fx, store, "c3", 1, 1)
    s2 = store.read_chip("c3")["s2rgbm"]
    assert s2.data[0, row, col] == pytest.approx(
        fx.values[("c3", "s2rgbm", "01_red")][1, 1], abs=0.3 / 255
    )
    assert (
        fx.values[("c3", "s2rgbm", "01_red")][1, 1] != fx.values[("c0", "s2rgbm", "01_red")][1, 1]
    )


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
    by = {
        (s["chip_id"], s["product"]): s
        for s in json.loads((path.parent / "store.ingest.json").read_text())["skips"]
    }
    assert "unreadable GeoTIFF" in by[("c1", "s2rgbm-2020")]["reason"]
    assert by[("c1", "s2rgbm-2020")]["path"].endswith("s2rgbm-2020/c1.tif")
    assert "/science/grids/data" in by[("c2", "gunw")]["reason"] and by[("c2", "gunw")][
        "path"
    ].endswith("c2.nc")
    assert "does not overlap chip c3" in by[("c3", "s1grdm-2020-asc")]["reason"]
    assert by[("c1", "modis44b006veg")]["reason"] == "missing file"
    assert "absent from the grid" in by[("zz_orphan", "s2rgbm-2020")]["reason"]
    assert "absent from the grid" in by[("zz_ghost", "splits")]["reason"]
    assert report.notes["s1grdm: des used (asc missing or unusable)"] == 1
    assert report.present["s2rgbm"] == 3 and report.chips_written == 4


def test_resume_skips_present_chips(m3leo_fixture, tmp_path):
    cfg = M3LEOConfig(root=m3leo_fixture.root, modalities=("s2rgbm",))
    out = dict(path=str(tmp_path / "s"), chip_px=16, progress=False)
    first = ingest_m3leo(cfg, StoreSpec(**out, limit=2))
    assert first.chips_written == 1  # c1's only modality is a truncated file: chip not written
    assert any(s.chip_id == "c1" and "no modality" in s.reason for s in first.skips)
    again = ingest_m3leo(cfg, StoreSpec(**out, resume=True))
    assert again.chips_already_present == 1 and again.chips_written == 2
    store = ChipStore.open(tmp_path / "s")
    assert sorted(store.chip_ids) == ["c0", "c2", "c3"]
    with pytest.raises(StoreError, match="already exists: resume"):
        ingest_m3leo(cfg, StoreSpec(**out))
    # the summary describes the store over both runs, not only the last run
    summary = json.loads((tmp_path / "s.ingest.json").read_text())
    assert summary["chips_in_store"] == 3 and summary["chips_written"] == 3
    assert [r["chips_written"] for r in summary["runs"]] == [1, 2]
    assert {s["chip_id"] for s in summary["skips"] if s["product"] == "chip"} == {"c1"}


def test_batch_of_one_without_coherence(m3leo_fixture, tmp_path):
    """A batch in which no chip has gunw (c2's gunw file is unusable) must still be written."""
    out = StoreSpec(str(tmp_path / "s"), chip_px=16, batch_size=1, progress=False)
    report = ingest_m3leo(M3LEOConfig(root=m3leo_fixture.root), out)
    assert report.chips_written == 4
    store = ChipStore.open(tmp_path / "s")
    assert "gunw" not in store.read_chip("c2") and "gunw" in store.read_chip("c0")


def test_des_option_and_months(m3leo_fixture, tmp_path):
    cfg = M3LEOConfig(
        root=m3leo_fixture.root,
        modalities=("s2rgbm", "s1grdm"),
        s1_direction="desc",
        months=(2, 3, 4),
    )
    ingest_m3leo(cfg, StoreSpec(str(tmp_path / "s"), chip_px=16, progress=False, limit=1))
    store = ChipStore.open(tmp_path / "s")
    chip = store.read_chip("c0")
    s2, s1 = chip["s2rgbm"].data, chip["s1grdm"].data
    # slot 01 holds calendar month 2 (constant quarters: the chip median lies on a quarter value)
    quarters = m3leo_fixture.values[("c0", "s2rgbm", "02_red")].ravel()
    assert np.min(np.abs(quarters - s2[0, 2, 2])) < 0.3 / 255
    assert (
        np.min(np.abs(m3leo_fixture.values[("c0", "s1grdm-des", "02_vv")].ravel() - s1[0, 2, 2]))
        < 0.011
    )
    assert np.isnan(store.read_chip("c0")["s1grdm"].data[6:]).all()  # no month 4 in the S1 file


def test_essential_files_raise(tmp_path):
    fx = write_m3leo(tmp_path / "d", seed=1)
    out = StoreSpec(str(tmp_path / "s"), progress=False)
    with pytest.raises(IngestFileError, match="nope.csv"):
        ingest_m3leo(M3LEOConfig(root=fx.root, splits=tmp_path / "nope.csv"), out)
    (fx.root / "tiny_chips.geojson").write_text("{not json")
    with pytest.raises(IngestFileError, match="tiny_chips.geojson"):
        ingest_m3leo(M3LEOConfig(root=fx.root), out)
    (fx.root / "tiny_chips.geojson").unlink()
    with pytest.raises(IngestError, match="no chips GeoJSON"):
        ingest_m3leo(M3LEOConfig(root=fx.root), out)
    with pytest.raises(ValueError, match="months"):
        M3LEOConfig(root=fx.root, months=(1, 2))


# -- the nested layout geetiles writes (several AOIs, 12-month files) ----------------------------
@pytest.fixture(scope="module")
def nested(m3leo_nested, tmp_path_factory):
    out = tmp_path_factory.mktemp("nested") / "store"
    report = ingest_m3leo(
        M3LEOConfig(root=m3leo_nested.root), StoreSpec(str(out), chip_px=CHIP_PX, progress=False)
    )
    return (
        m3leo_nested,
        ChipStore.open(out),
        report,
        json.loads(out.with_name("store.ingest.json").read_text()),
    )


def test_nested_layout_needs_no_flags(nested):
    fx, store, report, _ = nested
    index = store.index.set_index("chip_id")
    assert sorted(store.chip_ids) == ["cn0", "cn1", "us0", "us1", "us2", "us3"]
    assert set(index.loc[["us0", "us3"], "aoi"]) == {"conus"} and set(
        index.loc[["cn0", "cn1"], "aoi"]
    ) == {"china"}
    assert index.loc["us1", "split"] == "val" and index.loc["cn0", "split"] == "train"
    assert report.chips_total == 7 and report.chips_written == 6
    row, col = _pixel(fx, store, "us0", 1, 0)
    s2, s1 = store.read_chip("us0")["s2rgbm"], store.read_chip("us0")["s1grdm"]
    # 36-band file: months 1..3 chosen by band description
    for k, name in enumerate(s2.names):
        assert s2.data[k, row, col] == pytest.approx(
            fx.values[("us0", "s2rgbm", name)][0, 1], abs=0.3 / 255
        )
    assert s1.data[3, row, col] == pytest.approx(
        fx.values[("us0", "s1grdm-asc", "02_vv")][0, 1], abs=0.011
    )


def test_nested_out_of_range_and_fallbacks(nested):
    fx, store, report, summary = nested
    # us1: the ascending file holds uint16, no value in the dB range -> the -desc folder is used
    row, col = _pixel(fx, store, "us1", 0, 1)
    vv = store.read_chip("us1")["s1grdm"].data[0, row, col]
    assert vv == pytest.approx(fx.values[("us1", "s1grdm-desc", "01_vv")][1, 0], abs=0.011)
    assert report.notes["s1grdm: des used (asc missing or unusable)"] == 1
    # us2: month 2 at 35 dB is out of range -> those channels invalid, the file still used
    assert store.read_chip("us2")["s1grdm"].valid.tolist() == [True] * 3 + [False] * 3 + [True] * 3
    by = {(s["chip_id"], s["product"]): s["reason"] for s in summary["skips"]}
    assert by[("us1", "s1grdm-2020-asc")].startswith(
        "unusable: every value outside the valid range"
    )
    assert "uint16" in by[("us1", "s1grdm-2020-asc")]
    assert by[("us2", "s1grdm-2020-asc")].startswith(
        "out of range: values outside [-50, 30] in 2 bands"
    )
    assert summary["skip_counts"]["s1grdm-2020-asc"] == {"unusable": 1, "out of range": 1}
    # cn1: an S2 file that is all mask -> a skip with its reason, the chip keeps S1
    assert "s2rgbm" not in store.read_chip("cn1") and "s1grdm" in store.read_chip("cn1")
    assert by[("cn1", "s2rgbm-2020")].startswith("no valid pixel")
    assert "no file of any modality" in by[("cn2", "chip")]


def test_nested_chip_independent_problems(nested):
    _, store, report, summary = nested
    # china's gunw folder holds nothing readable: one problem of that AOI, not one skip per chip
    (problem,) = [p for p in summary["problems"] if p["product"] == "gunw"]
    assert (
        problem["chip_id"] is None
        and "no readable file" in problem["reason"]
        and "china" in problem["reason"]
    )
    assert not [s for s in summary["skips"] if s["product"] == "gunw"]
    assert "gunw" not in store.read_chip("cn0") and "gunw" in store.read_chip("us3")
    lines = "\n".join(report.summary_lines())
    assert "problem: gunw" in lines and "None" not in lines


def test_nested_several_splits_and_inner_folder(tmp_path):
    fx = write_m3leo_nested(tmp_path / "d", seed=1, split_variants=True)
    out = dict(chip_px=8, progress=False)
    with pytest.raises(
        IngestError, match=r"several splits CSVs .*_splits.csv, .*_splits_8bands_45deg.csv"
    ):
        ingest_m3leo(M3LEOConfig(root=fx.root), StoreSpec(str(tmp_path / "a"), **out))
    with pytest.raises(
        IngestFileError, match=r"0 of the splits CSVs of china.*have it in their name"
    ):
        ingest_m3leo(
            M3LEOConfig(root=fx.root, splits="8bands"), StoreSpec(str(tmp_path / "a"), **out)
        )
    conus = fx.root / f"{fx.stems['conus']}.geojson"
    ingest_m3leo(
        M3LEOConfig(root=fx.root, chips=conus, splits="8bands"),
        StoreSpec(str(tmp_path / "a"), **out),
    )
    index = ChipStore.open(tmp_path / "a").index.set_index("chip_id")
    assert sorted(index.index) == ["us0", "us1", "us2", "us3"] and set(index["split"]) == {"test"}
    # pointing at one AOI's product folder finds its GeoJSON beside it
    inner = fx.root / fx.stems["china"]
    report = ingest_m3leo(
        M3LEOConfig(root=inner, modalities=("s2rgbm", "s1grdm")),
        StoreSpec(str(tmp_path / "b"), **out),
    )
    assert report.chips_written == 2 and set(ChipStore.open(tmp_path / "b").index["aoi"]) == {
        "china"
    }


def test_missing_everywhere_and_nothing_written(m3leo_nested, tmp_path):
    out = StoreSpec(str(tmp_path / "s"), chip_px=8, progress=False)
    with pytest.raises(IngestError, match=r"gunw: no product folder \(nope\)"):
        ingest_m3leo(M3LEOConfig(root=m3leo_nested.root, folders={"gunw": ("nope",)}), out)
    assert not (tmp_path / "s").exists()  # stopped before creating anything
    # an AOI whose only modality folder holds truncated files: nothing written, loudly
    root = tmp_path / "broken"
    stem = m3leo_nested.stems["china"]
    (root / stem / "s2rgbm-2020").mkdir(parents=True)
    for suffix in (".geojson", "_splits.csv"):
        (root / f"{stem}{suffix}").write_bytes((m3leo_nested.root / f"{stem}{suffix}").read_bytes())
    for tif in (m3leo_nested.root / stem / "s2rgbm-2020").glob("*.tif"):
        (root / stem / "s2rgbm-2020" / tif.name).write_bytes(tif.read_bytes()[:300])
    with pytest.raises(NothingIngestedError, match="no chip written") as err:
        ingest_m3leo(M3LEOConfig(root=root, modalities=("s2rgbm",), labels=()), out)
    assert "unreadable GeoTIFF" in str(err.value) and err.value.report.chips_written == 0
    assert json.loads((tmp_path / "s.ingest.json").read_text())["chips_in_store"] == 0
