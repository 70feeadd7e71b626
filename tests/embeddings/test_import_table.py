"""Foreign tables onto a store's chips: by chip id and by geometry (seeded fixtures)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from import_fixtures import make_store, write_geometry_table, write_id_table

from eoclip.embeddings.import_table import find_vector_columns, vector_matrix
from eoclip.embeddings.importing import ImportConfig, ImportEmbeddingsError, import_embeddings
from eoclip.embeddings.table import embedding_matrix, read_embedding_table


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("import_table")
    make_store(root / "store")
    return str(root / "store")


def _import(store, src, out, **kw):
    cfg = ImportConfig(sources=(str(src),), store=store, out=str(out), progress=False, **kw)
    return read_embedding_table(import_embeddings(cfg))


def test_table_by_id_gives_known_vectors_at_their_chips(store, tmp_path):
    want = write_id_table(tmp_path / "clay.parquet")
    gdf, meta = _import(
        store,
        tmp_path / "clay.parquet",
        tmp_path / "out.parquet",
        product="Clay v1.5",
        version="1.5",
    )
    X, present = embedding_matrix(gdf, "clay_v1_5")
    np.testing.assert_allclose(X[present], want[present], atol=1e-6)
    assert list(np.flatnonzero(~present)) == [5]  # its only row was NaN: null, not zeros
    assert gdf["emb_clay_v1_5"].iloc[5] is None
    assert gdf["clay_v1_5_count"].tolist() == [2] + [1] * 4 + [0] + [1] * 6
    assert meta["source"] == "Clay v1.5" and meta["dim"] == 8
    prov = meta["provenance"]
    assert prov["version"] == "1.5" and prov["join"] == "chip_id" and prov["kind"] == "table"
    assert prov["rows_unknown_chip"] == 1 and prov["rows_without_vector"] == 1
    assert prov["files"][0]["path"].endswith("clay.parquet") and len(meta["source_hash"]) == 64
    # The store's index columns come along, in store order.
    assert gdf["split"].tolist()[:3] == ["train", "val", "test"] and "label_tree" in gdf


def test_table_by_geometry_averages_tiles_whose_centre_is_in_the_chip(store, tmp_path):
    want = write_geometry_table(tmp_path / "tiles.parquet")
    gdf, meta = _import(
        store, tmp_path / "tiles.parquet", tmp_path / "out.parquet", product="majortom"
    )
    X, present = embedding_matrix(gdf, "majortom")
    assert list(np.flatnonzero(~present)) == [7]
    np.testing.assert_allclose(X[present], want[present], atol=1e-5)
    assert gdf["majortom_count"].tolist() == [4] * 7 + [0] + [4] * 4
    assert meta["provenance"]["rows_outside_chips"] == 1
    assert meta["provenance"]["table_crs"] == "EPSG:3857"
    assert meta["provenance"]["vector_columns"] == "dim_0..dim_5"


def test_vector_column_detection():
    df = pd.DataFrame({"A00": [1.0], "A01": [2.0], "A10": [3.0], "year": [2020]})
    assert find_vector_columns(df, None) == ["A00", "A01", "A10"]
    both = df.assign(emb=[[1.0, 2.0]], other=[[3.0]])
    with pytest.raises(ImportEmbeddingsError, match="cannot tell which column"):
        find_vector_columns(both, None)
    assert find_vector_columns(both, "emb") == ["emb"]
    assert find_vector_columns(both, "A") == ["A00", "A01", "A10"]
    with pytest.raises(ImportEmbeddingsError, match="no list column or numbered columns named"):
        find_vector_columns(both, "B")
    ragged = pd.DataFrame({"v": [[1.0, 2.0], [1.0]]})
    with pytest.raises(ImportEmbeddingsError, match="lengths"):
        vector_matrix(ragged, ["v"])


def test_bad_tables_fail_with_the_file_named(store, tmp_path):
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(ImportEmbeddingsError, match="corrupt.parquet: not a readable Parquet"):
        _import(store, bad, tmp_path / "o.parquet", product="x")
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"tile": ["a"], "embedding": [[1.0, 2.0]]}).to_parquet(plain)
    with pytest.raises(ImportEmbeddingsError, match="no 'chip_id' column and no GeoParquet"):
        _import(store, plain, tmp_path / "o.parquet", product="x")
    with pytest.raises(ImportEmbeddingsError, match="no chip id column 'tile_id'"):
        _import(store, plain, tmp_path / "o.parquet", product="x", id_column="tile_id")
    elsewhere = tmp_path / "elsewhere.parquet"
    pd.DataFrame({"chip_id": ["nope"], "embedding": [[1.0, 2.0]]}).to_parquet(elsewhere)
    with pytest.raises(ImportEmbeddingsError, match="none of its 1 rows matches a chip"):
        _import(store, elsewhere, tmp_path / "o.parquet", product="x")
    nocrs = tmp_path / "nocrs.parquet"
    gpd.GeoDataFrame({"embedding": [[1.0]]}, geometry=gpd.points_from_xy([0], [0])).to_parquet(
        nocrs
    )
    with pytest.raises(ImportEmbeddingsError, match="no CRS"):
        _import(store, nocrs, tmp_path / "o.parquet", product="x")
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        _import(store, tmp_path / "missing.parquet", tmp_path / "o.parquet", product="x")
