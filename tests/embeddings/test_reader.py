"""TableReader: piecewise reads of an EmbeddingTable equal the whole-table reads."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from eoclip.embeddings import embedding_matrix, write_embedding_table
from eoclip.embeddings.reader import TableReader
from eoclip.embeddings.table import EmbeddingTableError


def _table(n: int = 90, seed: int = 0) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rows.append(
            {
                "chip_id": f"c{i:03d}",
                "aoi": ("a", "b", "c")[i % 3],
                "split": ("train", "val", "test")[i % 3 // 2 + (i % 2)],
                "label_tree": float(i),
                "geometry": shapely.box(i, 0, i + 1, 1),
                "emb_s2": rng.normal(size=4).astype(np.float32),
                "emb_s1": None if i % 7 == 0 else rng.normal(size=3).astype(np.float32),
            }
        )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")


@pytest.mark.parametrize("row_group_size", [7, 16_384])
def test_file_reads_match_frame(tmp_path, row_group_size):
    gdf = _table()
    path = write_embedding_table(
        gdf, tmp_path / "t.parquet", {"checkpoint_hash": "h"}, row_group_size=row_group_size
    )
    r = TableReader(path)
    assert r.modalities == ["s2", "s1"] and r.dims == {"s2": 4, "s1": 3} and r.num_rows == 90
    assert r.checkpoint_hash == "h" and r.label_columns == ["label_tree"]
    assert list(r.index()["chip_id"]) == list(gdf["chip_id"])
    rows = np.array([55, 3, 0, 89, 14, 7])  # any order, across row groups
    for reader in (r, TableReader(gdf)):
        out = np.empty((len(rows), 3), np.float32)
        assert reader.read_vectors("s1", rows, out) == 0
        expected, present = embedding_matrix(gdf.iloc[rows], "s1")
        np.testing.assert_array_equal(out, expected)  # NaN rows where the chip lacks s1
        assert np.isnan(out[~present]).all() and (~present).sum() == 3
    assert r.scan().fingerprint == TableReader(gdf).scan().fingerprint


def test_fingerprint_follows_content_not_layout(tmp_path):
    gdf = _table()
    a = write_embedding_table(gdf, tmp_path / "a.parquet", {}, row_group_size=10)
    b = write_embedding_table(gdf, tmp_path / "b.parquet", {}, row_group_size=1000)
    fa, fb = TableReader(a).scan().fingerprint, TableReader(b).scan().fingerprint
    assert fa == fb and fa["rows"] == 90
    changed = gdf.copy()
    changed.at[5, "emb_s2"] = changed.at[5, "emb_s2"] + 1e-3
    fc = TableReader(changed).scan().fingerprint
    assert [k for k in fa if fa[k] != fc[k]] == ["emb_s2"]
    relabelled = gdf.copy()
    relabelled.loc[3, "label_tree"] = -1.0
    fd = TableReader(relabelled).scan().fingerprint
    assert [k for k in fa if fa[k] != fd[k]] == ["label_tree"]


def test_nonfinite_vectors_are_counted_and_missing(tmp_path):
    gdf = _table()
    gdf.at[4, "emb_s2"] = np.array([1, np.nan, 2, 3], np.float32)
    gdf.at[8, "emb_s2"] = np.array([np.inf, 0, 0, 0], np.float32)
    r = TableReader(write_embedding_table(gdf, tmp_path / "t.parquet", {}))
    scan = r.scan()
    assert np.flatnonzero(scan.nonfinite["s2"]).tolist() == [4, 8]
    assert scan.valid["s2"].sum() == 88 and not scan.nonfinite["s1"].any()
    assert scan.usable["s2"].sum() == 90  # every vector still has a finite value
    out = np.empty((3, 4), np.float32)
    assert r.read_vectors("s2", np.array([8, 9, 4]), out, nonfinite="drop") == 2
    assert np.isnan(out[[0, 2]]).all() and np.isfinite(out[1]).all()
    assert r.read_vectors("s2", np.array([8, 9, 4]), out) == 2  # "keep": inf -> NaN
    np.testing.assert_array_equal(out[0], [np.nan, 0, 0, 0])
    np.testing.assert_array_equal(out[2], [1, np.nan, 2, 3])
    with pytest.raises(ValueError, match="keep"):
        r.read_vectors("s2", np.array([1]), out[:1], nonfinite="zero")


def test_variable_length_lists_and_bad_files(tmp_path):
    gdf = _table(12)
    path = write_embedding_table(gdf, tmp_path / "t.parquet", {})
    table = pq.read_table(path)
    # a writer without fixed-size lists (duckdb, geopandas of object columns): list<float>
    as_list = table.set_column(
        table.schema.get_field_index("emb_s2"),
        "emb_s2",
        table["emb_s2"].cast(pa.list_(pa.float32())),
    )
    pq.write_table(as_list, tmp_path / "list.parquet")
    out = np.empty((2, 4), np.float32)
    TableReader(tmp_path / "list.parquet").read_vectors("s2", np.array([1, 0]), out)
    np.testing.assert_array_equal(out, np.stack(gdf["emb_s2"].iloc[[1, 0]].to_list()))
    ragged = table.set_column(
        table.schema.get_field_index("emb_s2"),
        "emb_s2",
        pa.array([[1.0, 2.0]] + [[1.0, 2.0, 3.0]] * 11, pa.list_(pa.float32())),
    )
    pq.write_table(ragged.replace_schema_metadata(table.schema.metadata), tmp_path / "r.parquet")
    with pytest.raises(EmbeddingTableError, match="mixes vector lengths"):
        TableReader(tmp_path / "r.parquet").scan()
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(EmbeddingTableError, match="bad.parquet"):
        TableReader(tmp_path / "bad.parquet")
    with pytest.raises(FileNotFoundError, match="none.parquet"):
        TableReader(tmp_path / "none.parquet")
    with pytest.raises(EmbeddingTableError, match="missing column"):
        TableReader(gdf.drop(columns="split"))
