"""EmbeddingTable: GeoParquet round trip, plain-reader compatibility, nulls, bad files."""

from __future__ import annotations

import os

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from eoclip.embeddings import (
    EmbeddingTableError,
    embedding_matrix,
    embedding_modalities,
    read_embedding_table,
    write_embedding_table,
)

META = {"channel_policy": "all-mean", "checkpoint_hash": "deadbeef", "source": "pretrained"}


def make_gdf(n: int = 12, dims=(("s2rgbm", 4), ("s1grdm", 4)), missing=(1, 5)) -> gpd.GeoDataFrame:
    """n chips; rows in `missing` lack the second modality."""
    rng = np.random.default_rng(0)
    data = {
        "chip_id": [f"c{i:03d}" for i in range(n)],
        "aoi": ["a"] * (n // 2) + ["b"] * (n - n // 2),
        "split": (["train", "val", "test"] * n)[:n],
        "label_tree": rng.uniform(0, 100, n),
        "checkpoint_hash": "deadbeef",
    }
    for k, (m, d) in enumerate(dims):
        vecs = rng.normal(size=(n, d)).astype(np.float32)
        data[f"emb_{m}"] = [None if (k == 1 and i in missing) else vecs[i] for i in range(n)]
        data[f"emb_{m}_channels"] = [
            [] if (k == 1 and i in missing) else ["01_x"] for i in range(n)
        ]
    geoms = [shapely.box(i, 0, i + 1, 1) for i in range(n)]
    return gpd.GeoDataFrame(data, geometry=geoms, crs="EPSG:4326")


def test_round_trip_values_nulls_and_meta(tmp_path):
    gdf = make_gdf()
    path = tmp_path / "emb.parquet"
    write_embedding_table(gdf, path, META)
    out, meta = read_embedding_table(path)
    assert meta["source"] == "pretrained" and meta["checkpoint_hash"] == "deadbeef"
    assert meta["modalities"] == ["s2rgbm", "s1grdm"] and meta["dim"] == 4
    assert meta["dims"] == {"s2rgbm": 4, "s1grdm": 4}
    assert out.crs.to_epsg() == 4326
    assert list(out["chip_id"]) == list(gdf["chip_id"])
    assert out.geometry.equals(gdf.geometry)
    np.testing.assert_allclose(out["label_tree"], gdf["label_tree"])
    for m in ("s2rgbm", "s1grdm"):
        X_in, present_in = embedding_matrix(gdf, m)
        X_out, present_out = embedding_matrix(out, m)
        assert X_out.dtype == np.float32 and X_out.shape == (12, 4)
        np.testing.assert_array_equal(present_in, present_out)
        np.testing.assert_array_equal(X_in, X_out)  # NaN rows compare equal
    X, present = embedding_matrix(out, "s1grdm")
    assert list(np.flatnonzero(~present)) == [1, 5]
    assert np.isnan(X[[1, 5]]).all() and not np.isnan(X[present]).any()
    assert list(out.loc[1, "emb_s1grdm_channels"]) == []
    assert embedding_modalities(out) == ["s2rgbm", "s1grdm"]


def test_plain_geopandas_and_pyarrow_read_it(tmp_path):
    path = tmp_path / "emb.parquet"
    write_embedding_table(make_gdf(), path, META)
    table = pq.read_table(path)
    t = table.schema.field("emb_s2rgbm").type
    assert pa.types.is_fixed_size_list(t) and t.list_size == 4
    assert t.value_type == pa.float32()
    assert table.column("emb_s1grdm").null_count == 2
    assert table.column("emb_s2rgbm").null_count == 0
    assert pa.types.is_list(table.schema.field("emb_s1grdm_channels").type)
    assert b"geo" in table.schema.metadata and b"eoclip" in table.schema.metadata
    plain = gpd.read_parquet(path)
    assert isinstance(plain, gpd.GeoDataFrame) and plain.crs.to_epsg() == 4326
    assert plain["emb_s1grdm"].isna().sum() == 2
    assert plain.loc[0, "emb_s2rgbm"].shape == (4,)


def test_fsspec_url_and_atomic_overwrite(tmp_path):
    url = "memory://eoclip-test/emb.parquet"
    write_embedding_table(make_gdf(), url, META)
    out, _ = read_embedding_table(url)
    assert len(out) == 12
    path = tmp_path / "sub" / "emb.parquet"
    write_embedding_table(make_gdf(n=6), path, META)
    write_embedding_table(make_gdf(n=8), path, {**META, "source": "stats"})
    out, meta = read_embedding_table(path)
    assert len(out) == 8 and meta["source"] == "stats"
    assert os.listdir(path.parent) == ["emb.parquet"]  # no temporary file left behind


def test_all_null_modality_keeps_dim(tmp_path):
    gdf = make_gdf(n=4, missing=(0, 1, 2, 3))
    gdf["emb_s1grdm"] = [None] * 4
    path = tmp_path / "emb.parquet"
    with pytest.raises(EmbeddingTableError, match="emb_s1grdm.*holds no vector"):
        write_embedding_table(gdf, path, META)
    write_embedding_table(gdf, path, {**META, "dim": 4})
    out, meta = read_embedding_table(path)
    X, present = embedding_matrix(out, "s1grdm")
    assert not present.any() and X.shape == (4, 4) and np.isnan(X).all()
    assert meta["dims"] == {"s2rgbm": 4, "s1grdm": 4}
    assert pq.read_table(path).column("emb_s1grdm").null_count == 4


def test_bad_files_name_the_file(tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"this is not parquet")
    with pytest.raises(EmbeddingTableError, match="broken.parquet"):
        read_embedding_table(bad)
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(plain)
    with pytest.raises(EmbeddingTableError, match="plain.parquet.*eoclip"):
        read_embedding_table(plain)
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        read_embedding_table(tmp_path / "nope.parquet")


def test_write_rejects_bad_frames(tmp_path):
    gdf = make_gdf()
    with pytest.raises(EmbeddingTableError, match="split"):
        write_embedding_table(gdf.drop(columns="split"), tmp_path / "x.parquet", META)
    with pytest.raises(EmbeddingTableError, match="no 'emb_"):
        write_embedding_table(
            gdf.drop(columns=["emb_s2rgbm", "emb_s1grdm"]), tmp_path / "x.parquet", META
        )
    ragged = gdf.copy()
    ragged.at[0, "emb_s2rgbm"] = np.zeros(3, np.float32)
    with pytest.raises(EmbeddingTableError, match="mixes vector lengths"):
        write_embedding_table(ragged, tmp_path / "x.parquet", META)
    with pytest.raises(EmbeddingTableError, match="JSON"):
        write_embedding_table(gdf, tmp_path / "x.parquet", {"bad": object()})
    assert not (tmp_path / "x.parquet").exists()
    with pytest.raises(KeyError, match="s2rgbm"):
        embedding_matrix(gdf, "gunw")
