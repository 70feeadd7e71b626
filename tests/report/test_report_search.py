"""Report sections of issue 9: neighbour strips, and an imported product beside the baselines."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
from matplotlib.image import imread
from shapely.geometry import box

from eoclip.data.store import ChipStore
from eoclip.embeddings.table import write_embedding_table
from eoclip.fewshot import summarize
from eoclip.report import ReportConfig, build_report, summary_table
from eoclip.report.figures import single_features
from eoclip.report.neighbours import fig_neighbours, search_rows

PX, N = 16, 18


def _store_and_table(root):
    rng = np.random.default_rng(5)
    index = gpd.GeoDataFrame(
        {
            "chip_id": [f"c{i:02d}" for i in range(N)],
            "aoi": ["conus"] * 9 + ["china"] * 9,
            "split": ["train", "val", "test"] * 6,
            "label_tree": rng.uniform(0, 60, N),
        },
        geometry=[box(i * 0.05, 0, i * 0.05 + 0.04, 0.04) for i in range(N)],
        crs="EPSG:4326",
    )
    s2 = rng.uniform(0, 0.3, (N, 9, PX, PX)).astype(np.float32)
    s1 = rng.uniform(-25, 0, (N, 9, PX, PX)).astype(np.float32)
    s1[2] = np.nan  # no s1: never a query, never an s1 neighbour
    with ChipStore.create(root / "world", ["s2rgbm", "s1grdm"], chip_px=PX) as s:
        s.append(index, {"s2rgbm": s2, "s1grdm": s1})
    v2 = rng.normal(size=(N, 4)).astype(np.float32)
    v1 = v2 + 0.1 * rng.normal(size=(N, 4)).astype(np.float32)
    gdf = index.copy()
    gdf["emb_s2rgbm"] = list(v2)
    gdf["emb_s1grdm"] = [None if i == 2 else v for i, v in enumerate(v1)]
    (root / "embeddings").mkdir()
    write_embedding_table(gdf, root / "embeddings" / "pretrained.parquet", {"source": "pretrained"})
    return root / "world", root / "embeddings" / "pretrained.parquet"


def _results() -> pd.DataFrame:
    rows = []
    for src, feats, acc in (
        ("pretrained", ["s2rgbm", "concat"], 0.8),
        ("stats", ["concat"], 0.7),
        ("aef", ["aef"], 0.75),
    ):
        for aoi in ("conus", "china"):
            for f in feats:
                for size, n in (("10", 10), ("all", 60)):
                    for rep in range(2):
                        rows.append(
                            dict(
                                source=src,
                                aoi=aoi,
                                task="tree",
                                features=f,
                                train_size=size,
                                n_train=n,
                                repeat=rep,
                                accuracy=acc,
                                balanced_accuracy=acc,
                                pos_frac_train=0.5,
                                pos_frac_test=0.5,
                            )
                        )
    return pd.DataFrame(rows)


def test_imported_source_is_compared_on_its_own_feature_set():
    summary = summarize(_results())
    assert single_features(summary) == {"aef": "aef"}
    table = summary_table(summary, ["pretrained", "stats", "aef"])
    aef = table[table["source"] == "aef"].iloc[0]
    assert aef["features"] == "aef" and aef["acc@10"] == 0.75 and aef["acc@all"] == 0.75
    assert list(table["source"]) == ["pretrained", "stats", "aef"]


def test_neighbour_strips_and_report_sections(tmp_path):
    world, table = _store_and_table(tmp_path)
    assert search_rows(["a", "b"]) == [("a", "a"), ("b", "b"), ("a", "b"), ("b", "a")]
    drawn = fig_neighbours(ChipStore.open(world), str(table), tmp_path / "fig", n_queries=2, k=3)
    assert len(drawn) == 2 and all(chip != "c02" for _, chip in drawn)
    img = imread(drawn[0][0])
    assert img.shape[0] > img.shape[1] * 0.5  # 4 rows of 4 panels
    (tmp_path / "fewshot" / "cmp").mkdir(parents=True)
    (tmp_path / "fewshot" / "own").mkdir(parents=True)
    _results().to_parquet(tmp_path / "fewshot" / "cmp" / "results.parquet")
    # The same pretrained rows in a second folder are counted once.
    _results()[lambda d: d["source"] == "pretrained"].to_parquet(
        tmp_path / "fewshot" / "own" / "results.parquet"
    )
    page = build_report(
        ReportConfig(
            out=str(tmp_path / "rep"), run=str(tmp_path), n_search_queries=2, n_neighbours=3
        )
    ).read_text()
    assert "id='search'" in page and "figures/neighbours_0.png" in page
    assert (tmp_path / "rep" / "figures" / "neighbours_1.png").is_file()
    assert "<td class='l'>aef aef</td>" in page and "<td class='l'>stats concat</td>" in page
    assert page.count("<td class='l'>pretrained concat</td>") == 1
