"""`search_table` and `eoclip search` on a table whose modalities share a space."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from search_helpers import NO_S1, N, make_table
from typer.testing import CliRunner

from eoclip.cli import app
from eoclip.search import SearchConfig, SearchError, same_chip_hits, search_table


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return make_table(tmp_path_factory.mktemp("search") / "emb.parquet")


def test_query_chip_first_at_distance_zero(table):
    path, s2, _ = table
    res = search_table(SearchConfig(table=path, chips=("c007",), k=5))
    assert res["chip_id"].iloc[0] == "c007" and res["distance"].iloc[0] < 1e-12
    assert list(res["rank"]) == [1, 2, 3, 4, 5] and res["distance"].is_monotonic_increasing
    sims = s2 @ s2[7] / np.linalg.norm(s2, axis=1) / np.linalg.norm(s2[7])
    assert list(res["chip_id"]) == [f"c{i:03d}" for i in np.argsort(-sims)[:5]]
    assert isinstance(res, gpd.GeoDataFrame) and res.crs.to_epsg() == 4326
    excl = search_table(SearchConfig(table=path, chips=("c007",), k=5, exclude_query=True))
    assert "c007" not in set(excl["chip_id"]) and len(excl) == 5


def test_cross_modal_finds_the_same_chip_and_skips_missing_vectors(table):
    path, _, _ = table
    res = search_table(
        SearchConfig(table=path, chips=("c004", "c020"), modality="s2rgbm", against="s1grdm", k=N)
    )
    # c004 has no s1 vector: it is never a neighbour, and nothing is matched as zeros.
    assert not set(res["chip_id"]) & {f"c{i:03d}" for i in NO_S1}
    assert len(res) == 2 * (N - len(NO_S1))
    first = res[res["rank"] == 1].set_index("query_chip")["chip_id"]
    assert first["c020"] == "c020"
    hits = same_chip_hits(path, "s1grdm", "s2rgbm", k=1)
    assert hits["hit_rate"] == 1.0 and hits["queries"] == N - len(NO_S1)
    assert hits["chance"] == pytest.approx(1 / N)


def test_errors_name_the_chip_and_the_table(table, tmp_path):
    path, _, _ = table
    with pytest.raises(SearchError, match="chip 'nope' is not in"):
        search_table(SearchConfig(table=path, chips=("nope",)))
    with pytest.raises(SearchError, match="chip 'c009' has no s1grdm vector"):
        search_table(SearchConfig(table=path, chips=("c009",), modality="s1grdm"))
    with pytest.raises(SearchError, match="no vectors of modality 'gunw'"):
        search_table(SearchConfig(table=path, chips=("c001",), against="gunw"))
    with pytest.raises(FileNotFoundError):
        search_table(SearchConfig(table=str(tmp_path / "none.parquet"), chips=("c001",)))


def test_cli_writes_csv_and_geoparquet(table, tmp_path):
    path, _, _ = table
    runner = CliRunner()
    out = tmp_path / "nb.csv"
    r = runner.invoke(
        app, ["search", "--table", path, "--chip", "c011", "--k", "3", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out)
    assert (
        list(df["chip_id"])[0] == "c011"
        and len(df) == 3
        and df["geometry"].str.startswith("POLYGON").all()
    )
    out = tmp_path / "nb.parquet"
    r = runner.invoke(
        app,
        [
            "search",
            "--table",
            path,
            "--chip",
            "c011",
            "--modality",
            "s1grdm",
            "--against",
            "s2rgbm",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    gdf = gpd.read_parquet(out)
    assert (
        len(gdf) == 20 and gdf["chip_id"].iloc[0] == "c011" and set(gdf["modality"]) == {"s2rgbm"}
    )
    r = runner.invoke(app, ["search", "--table", path, "--chip", "zzz"])
    assert r.exit_code == 1 and "chip 'zzz' is not in" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["search", "--table", path, "--chip", "c001", "--k", "2"])
    assert r.exit_code == 0 and r.output.splitlines()[1].startswith(
        "c001,s2rgbm,s2rgbm,1,c001,0.000000"
    )


def test_nonfinite_vectors_are_counted_and_never_matched(tmp_path, caplog):
    from eoclip.embeddings.table import read_embedding_table, write_embedding_table

    gdf, meta = read_embedding_table(make_table(tmp_path / "a.parquet")[0])
    vecs = [np.array(v, np.float32) for v in gdf["emb_s2rgbm"]]
    vecs[3][0], vecs[5][2] = np.nan, np.inf  # a broken export: partial NaN, an inf
    gdf["emb_s2rgbm"] = vecs
    write_embedding_table(gdf, tmp_path / "bad.parquet", meta)
    path = str(tmp_path / "bad.parquet")
    with caplog.at_level("WARNING", logger="eoclip.search.query"):
        res = search_table(SearchConfig(table=path, chips=("c007",), k=N))
    assert "2 of 60 s2rgbm vectors hold NaN or inf" in caplog.text
    assert not {"c003", "c005"} & set(res["chip_id"]) and len(res) == N - 2
    assert res["similarity"].notna().all()
    assert res.attrs["eoclip_search"]["n_nonfinite"] == {"s2rgbm": 2}
    with pytest.raises(SearchError, match="c003' has no s2rgbm vector .* NaN/inf"):
        search_table(SearchConfig(table=path, chips=("c003",)))
    gdf["emb_s2rgbm"] = [np.full(len(v), np.nan, np.float32) for v in vecs]
    write_embedding_table(gdf, tmp_path / "nan.parquet", meta)
    with pytest.raises(SearchError, match="every s2rgbm vector holds NaN or inf"):
        search_table(SearchConfig(table=str(tmp_path / "nan.parquet"), chips=("c007",)))
