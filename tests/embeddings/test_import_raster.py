"""Pixel-embedding rasters pooled over chips: GeoTIFF and zarr in another CRS, int8 + scale."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rasterio.windows
from import_fixtures import (
    BANDS,
    COLS,
    HEAVY_NODATA_CHIP,
    OFFSETS,
    SCALES,
    chip_vectors,
    make_store,
    quantized_vectors,
    write_raster,
    write_zarr,
)
from rasterio.transform import from_origin

from eoclip.embeddings.import_raster import dequantize, import_raster, open_source
from eoclip.embeddings.importing import ImportConfig, ImportEmbeddingsError, import_embeddings
from eoclip.embeddings.table import embedding_matrix, read_embedding_table

OUTSIDE = [c for c in range(12) if c % len(COLS) == len(COLS) - 1]  # last column: no data


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("import_raster")
    make_store(root / "store")
    return {
        "store": str(root / "store"),
        "tif": str(write_raster(root / "aef.tif")),
        "zarr": str(write_zarr(root / "aef.zarr")),
        "root": root,
    }


def _run(files, src, out, **kw):
    kw.setdefault("product", "aef")
    cfg = ImportConfig(sources=(src,), store=files["store"], out=str(out), progress=False, **kw)
    return read_embedding_table(import_embeddings(cfg))


@pytest.mark.parametrize("fmt", ["tif", "zarr"])
def test_known_vectors_at_the_right_chips(files, tmp_path, fmt):
    gdf, meta = _run(files, files[fmt], tmp_path / "aef.parquet", version="2020")
    X, present = embedding_matrix(gdf, "aef")
    want = chip_vectors()
    null = sorted([*OUTSIDE, HEAVY_NODATA_CHIP])  # outside the raster, or 90 % nodata
    assert list(np.flatnonzero(~present)) == null
    assert all(gdf["emb_aef"].iloc[i] is None for i in null)  # null, never zeros
    # Every valid pixel of a chip holds its int8 vector: the mean is exactly v * scale + offset.
    np.testing.assert_array_equal(X[present], want[present])
    counts = gdf["aef_count"].to_numpy()
    assert (counts[OUTSIDE] == 0).all() and (counts[present] > 200).all()
    frac = gdf["aef_valid_fraction"].to_numpy()
    assert 0 < frac[HEAVY_NODATA_CHIP] < 0.2 and (frac[present] > 0.5).all()
    prov = meta["provenance"]
    assert prov["kind"] == "raster" and prov["version"] == "2020" and prov["bands"] == BANDS
    assert prov["rasters"][0]["crs"] == "EPSG:3857" and prov["rasters"][0]["nodata"] == -128
    assert prov["rasters"][0]["scale"] == pytest.approx(SCALES.tolist())
    assert prov["chips_partly_covered_left_null"] == 1
    assert not (tmp_path / "aef.parquet.parts").exists()


def test_min_fraction_mean_std_and_band_selection(files, tmp_path):
    gdf, _ = _run(
        files,
        files["tif"],
        tmp_path / "a.parquet",
        min_valid_fraction=0.01,
        pooling="mean+std",
        bands=(2, 4),
    )
    X, present = embedding_matrix(gdf, "aef")
    assert X.shape[1] == 4 and list(np.flatnonzero(~present)) == OUTSIDE
    want = chip_vectors()[:, [1, 3]]
    np.testing.assert_array_equal(X[present, :2], want[present])
    np.testing.assert_allclose(X[present, 2:], 0, atol=1e-6)  # constant pixels: std 0


def test_scale_override_and_aef_dequantisation(files, tmp_path):
    gdf, _ = _run(files, files["tif"], tmp_path / "a.parquet", scale=1.0, offset=0.0)
    X, present = embedding_matrix(gdf, "aef")
    np.testing.assert_array_equal(X[present], quantized_vectors()[present].astype(np.float32))
    gdf, _ = _run(files, files["tif"], tmp_path / "b.parquet", dequantize="aef")
    X, present = embedding_matrix(gdf, "aef")
    q = quantized_vectors()[present].astype(np.float64)
    np.testing.assert_allclose(X[present], np.sign(q) * (np.abs(q) / 127.5) ** 2, rtol=1e-6)


def test_std_pooling_of_mixed_pixels(tmp_path):
    """Half the pixels 2, half 4 in a raster over the chips: mean 3, std 1."""
    store = make_store(tmp_path / "store")
    west, south, east, north = store.index.total_bounds
    px = 0.0002  # about 20 m: ~240 pixel columns per chip, so odd counts barely move the mean
    t = from_origin(west - 0.01, north + 0.01, px, px)
    h, w = int((north - south + 0.02) / px), int((east - west + 0.02) / px)
    data = np.where((np.arange(w)[None, :] % 2) == 0, 2.0, 4.0).astype(np.float32)
    data = np.broadcast_to(data, (h, w))
    path = tmp_path / "ll.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=t,
    ) as dst:
        dst.write(data[None])
    cfg = ImportConfig(
        sources=(str(path),),
        store=str(tmp_path / "store"),
        out=str(tmp_path / "o.parquet"),
        product="p",
        pooling="mean+std",
        progress=False,
    )
    gdf, _ = read_embedding_table(import_raster(store, cfg))
    X, present = embedding_matrix(gdf, "p")
    assert present.all()
    np.testing.assert_allclose(X, np.tile([3.0, 1.0], (12, 1)), atol=0.01)


def test_interrupted_import_resumes_from_its_parts(files, tmp_path, monkeypatch):
    import eoclip.embeddings.import_raster as mod

    calls = {"n": 0}
    real = mod._pool_part

    def flaky(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(mod, "_pool_part", flaky)
    out = tmp_path / "r.parquet"
    with pytest.raises(KeyboardInterrupt):
        _run(files, files["tif"], out, part_chips=5)
    assert len(list((tmp_path / "r.parquet.parts").glob("part-*.npz"))) == 2
    calls["n"] = 10
    gdf, _ = _run(files, files["tif"], out, part_chips=5)
    assert calls["n"] == 11  # only the missing third part was pooled
    X, present = embedding_matrix(gdf, "aef")
    np.testing.assert_array_equal(X[present], chip_vectors()[present])
    with pytest.raises(ImportEmbeddingsError, match="exists"):
        _run(files, files["tif"], out)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_folder_of_tiles_with_few_open_files(files, tmp_path, monkeypatch):
    """The raster cut into 3 tiles in a folder, at most one file open: the same vectors."""
    import eoclip.embeddings.import_raster as mod

    monkeypatch.setattr(mod._open_datasets, "size", 1)
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    with rasterio.open(files["tif"]) as src:
        cuts = np.linspace(0, src.width, 4).astype(int)
        for i, (c0, c1) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
            win = rasterio.windows.Window(c0, 0, c1 - c0, src.height)
            profile = src.profile | {"width": c1 - c0, "transform": src.window_transform(win)}
            with rasterio.open(tiles / f"t{i}.tif", "w", **profile) as dst:
                dst.write(src.read(window=win))
                dst.scales, dst.offsets = src.scales, src.offsets
    gdf, meta = _run(files, str(tiles), tmp_path / "t.parquet")
    X, present = embedding_matrix(gdf, "aef")
    assert len(meta["provenance"]["rasters"]) == 3 and len(mod._open_datasets.open) == 1
    np.testing.assert_array_equal(X[present], chip_vectors()[present])
    single, _ = _run(files, files["tif"], tmp_path / "s.parquet")
    assert gdf["aef_count"].tolist() == single["aef_count"].tolist()


def test_bad_rasters(files, tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00garbage")
    with pytest.raises(ImportEmbeddingsError, match="bad.tif: not a readable raster"):
        _run(files, str(bad), tmp_path / "o.parquet")
    with pytest.raises(ImportEmbeddingsError, match="has 5 bands; bands \\[9\\] do not exist"):
        _run(files, files["tif"], tmp_path / "o.parquet", bands=(1, 9))
    nocrs = tmp_path / "nocrs.tif"
    with rasterio.open(
        nocrs,
        "w",
        driver="GTiff",
        width=4,
        height=4,
        count=2,
        dtype="float32",
        transform=from_origin(0, 4, 1, 1),
    ) as dst:
        dst.write(np.zeros((2, 4, 4), np.float32))
    with pytest.raises(ImportEmbeddingsError, match="nocrs.tif has no CRS"):
        _run(files, str(nocrs), tmp_path / "o.parquet")
    with pytest.raises(ImportEmbeddingsError, match="no chip of .* is covered"):
        _run(files, files["tif"], tmp_path / "o.parquet", min_valid_fraction=0.99)


def test_dequantize_linear_per_band(files):
    cfg = ImportConfig(sources=(files["tif"],), store="", out="x.parquet", product="p")
    src = open_source(files["tif"], cfg)
    raw = np.ones((BANDS, 3), dtype=np.int8)
    np.testing.assert_allclose(
        dequantize(raw, src, "linear"), (SCALES + OFFSETS)[:, None] * np.ones(3)
    )
