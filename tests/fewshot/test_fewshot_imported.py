"""Few-shot on an imported product beside eoclip's own table (issue 9): same samples, the CLI
takes a table without eoclip metadata, and two imports are never mixed on resume."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from fewshot_synth import make_table
from typer.testing import CliRunner

from eoclip.cli import app
from eoclip.embeddings.table import read_embedding_table, write_embedding_table
from eoclip.fewshot import FewshotConfig, FewshotError, run_fewshot

CFG = dict(
    train_sizes=(10, 50),
    repeats=2,
    grid=({"n_estimators": 10, "max_depth": 3},),
    tasks=("tree",),
    n_jobs=1,
    progress=False,
)


def _foreign(table: gpd.GeoDataFrame, path, version: str, with_meta: bool) -> str:
    """The same chips with a 3-d 'product' vector (no concat), as an import writes it."""
    rng = np.random.default_rng(1)
    gdf = table[["chip_id", "aoi", "split", "label_tree", "geometry"]].copy()
    gdf["emb_aef"] = [
        np.concatenate([v[:2], rng.normal(size=1)]).astype(np.float32) for v in table["emb_s2"]
    ]
    if with_meta:
        write_embedding_table(
            gdf, path, {"source": "aef", "checkpoint_hash": None, "source_hash": f"hash-{version}"}
        )
    else:
        gdf.to_parquet(path)  # plain GeoParquet in the table layout
    return str(path)


def test_imported_source_on_the_same_samples(tmp_path):
    ours = tmp_path / "ours.parquet"
    table = make_table()
    write_embedding_table(table, ours, {"source": "pretrained", "checkpoint_hash": "abc123"})
    aef = _foreign(table, tmp_path / "aef.parquet", "v1", with_meta=True)
    res = run_fewshot(
        {"ours": str(ours), "aef": aef}, FewshotConfig(**CFG), out_dir=str(tmp_path / "out")
    )
    assert set(res["source"]) == {"ours", "aef"}
    assert set(res.loc[res["source"] == "aef", "features"]) == {"aef"}
    a = res[(res["source"] == "aef")].set_index(["aoi", "train_size", "repeat"])["seed"]
    b = res[(res["source"] == "ours") & (res["features"] == "s2")].set_index(
        ["aoi", "train_size", "repeat"]
    )["seed"]
    assert a.sort_index().equals(b.sort_index())  # paired: the same seeded train samples
    # A re-import of another version under the same name is not mixed with the stored results.
    aef2 = _foreign(table, tmp_path / "aef2.parquet", "v2", with_meta=True)
    with pytest.raises(
        FewshotError, match=r"source .aef. is not the table .*checkpoint hash-v1 -> hash-v2"
    ):
        run_fewshot({"aef": aef2}, FewshotConfig(**CFG), out_dir=str(tmp_path / "out"))


def test_cli_accepts_a_geoparquet_without_eoclip_metadata(tmp_path):
    plain = _foreign(make_table(), tmp_path / "plain.parquet", "v1", with_meta=False)
    gdf, meta = read_embedding_table(plain)
    assert meta["modalities"] == ["aef"] and meta["source"] == "plain" and meta["inferred"]
    r = CliRunner().invoke(
        app,
        [
            "fewshot",
            "--table",
            f"aef={plain}",
            "--out",
            str(tmp_path / "o"),
            "--train-sizes",
            "10",
            "--repeats",
            "1",
            "--tasks",
            "tree",
            "--no-progress",
            "--n-jobs",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    bad = tmp_path / "nolayout.parquet"
    gpd.GeoDataFrame(
        {"tile": ["a"]}, geometry=gpd.points_from_xy([0], [0]), crs="EPSG:4326"
    ).to_parquet(bad)
    r = CliRunner().invoke(app, ["fewshot", "--table", f"x={bad}", "--out", str(tmp_path / "p")])
    assert r.exit_code == 1 and "import_embeddings" in r.output and "Traceback" not in r.output
