"""t-SNE maps: tidy frame, subsampling, seeds, missing vectors, plots, CLI."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import typer
from typer.testing import CliRunner

from eoclip.cli.conventions import EoclipGroup
from eoclip.cli.tsne import register
from eoclip.embeddings import write_embedding_table
from eoclip.tsne import TsneConfig, plot_tsne, run_tsne

FAST = dict(n_iter=30, early_exaggeration_iter=20, n_jobs=1, progress=False)


def make_table(n: int = 80, lacking_s1=(0, 3, 7)) -> gpd.GeoDataFrame:
    """2 AOIs x n chips, two 5-d modalities; chips in `lacking_s1` of each AOI lack s1."""
    rng = np.random.default_rng(1)
    rows = []
    for aoi in ("east", "west"):
        z = rng.normal(size=(n, 5)).astype(np.float32)
        for i in range(n):
            rows.append(
                {
                    "chip_id": f"{aoi}{i:03d}",
                    "aoi": aoi,
                    "split": ("train", "val", "test")[i % 3],
                    "label_water": 0.0 if i % 2 else float(np.exp(z[i, 0])),
                    "label_tree": float(np.nan if i == 5 else 50 + 10 * z[i, 1]),
                    "emb_s2": z[i],
                    "emb_s1": None if i in lacking_s1 else z[i] * 2,
                    "geometry": shapely.Point(i, 0),
                }
            )
    return gpd.GeoDataFrame(rows, crs="EPSG:4326")


def test_run_tsne_tidy_frame_and_missing(tmp_path):
    df = run_tsne({"pretrained": make_table()}, TsneConfig(**FAST), out_path=tmp_path / "t.parquet")
    assert list(df.columns[:6]) == ["source", "aoi", "modality", "chip_id", "x", "y"]
    assert {"label_water", "label_tree", "split"} <= set(df.columns)
    counts = df.groupby(["aoi", "modality"]).size()
    assert counts[("east", "s2")] == 80 and counts[("east", "s1")] == 77  # 3 chips lack s1
    assert "east000" not in set(df.query("modality == 's1'")["chip_id"])
    assert np.isfinite(df[["x", "y"]].to_numpy()).all()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), df)


def test_subsample_and_seed():
    table = make_table()
    cfg = TsneConfig(max_points=30, modalities=("s2",), **FAST)
    a = run_tsne({"p": table}, cfg)
    b = run_tsne({"p": table}, cfg)
    c = run_tsne({"p": table}, TsneConfig(max_points=30, modalities=("s2",), seed=9, **FAST))
    assert (a.groupby("aoi").size() == 30).all()
    pd.testing.assert_frame_equal(a, b)
    assert set(a["chip_id"]) != set(c["chip_id"])
    with pytest.raises(ValueError, match="unknown modalities"):
        run_tsne({"p": table}, TsneConfig(modalities=("gunw",), **FAST))


def test_maps_in_worker_processes_are_the_in_process_maps():
    # 2 AOIs x 300 chips of 64-d: with another BLAS thread count than this process's, these
    # maps come out different (BLAS rounding); the workers take this process's counts
    rng = np.random.default_rng(0)
    table = make_table(n=300)
    table["emb_s2"] = list(rng.normal(size=(len(table), 64)).astype(np.float32))
    cfg = {**FAST, "modalities": ("s2",)}
    here = run_tsne({"p": table}, TsneConfig(**cfg))
    spread = run_tsne({"p": table}, TsneConfig(**{**cfg, "n_jobs": 2}))
    pd.testing.assert_frame_equal(spread, here, check_exact=True)


def test_plot_tsne(tmp_path):
    df = run_tsne({"p": make_table(n=40)}, TsneConfig(**FAST))
    path = plot_tsne(df, "water", tmp_path / "water.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    plot_tsne(df, "tree", tmp_path / "tree.png")  # NaN labels drawn grey, no error
    with pytest.raises(ValueError, match="label_crop"):
        plot_tsne(df, "crop", tmp_path / "crop.png")
    two = pd.concat([df, df.assign(source="q")])
    with pytest.raises(ValueError, match="source="):
        plot_tsne(two, "water", tmp_path / "w.png")
    plot_tsne(two, "water", tmp_path / "q.png", source="q")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.png", "tree.png", "water.png"]


def test_tsne_cli(tmp_path):
    write_embedding_table(make_table(n=30), tmp_path / "e.parquet", {"source": "pretrained"})
    app = typer.Typer(cls=EoclipGroup)  # the eoclip app's error handling
    register(app)
    app.command("noop")(lambda: None)
    out = tmp_path / "out"
    r = CliRunner().invoke(
        app,
        [
            "tsne",
            "--table",
            f"pre={tmp_path / 'e.parquet'}",
            "--out",
            str(out),
            "--n-iter",
            "20",
            "--max-points",
            "20",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (out / "tsne.parquet").exists() and (out / "tsne_pre_water.png").exists()
    east = pd.read_parquet(out / "tsne.parquet").query("aoi == 'east'")
    s2, s1 = (set(east.loc[east["modality"] == m, "chip_id"]) for m in ("s2", "s1"))
    assert len(s2) == 20 and s1 <= s2 and len(s1) >= 17  # same chips; a few lack s1
    bad = CliRunner().invoke(
        app, ["tsne", "--table", str(tmp_path / "x.parquet"), "--out", str(out)]
    )
    assert bad.exit_code == 1 and "x.parquet" in bad.output


def test_nonfinite_vectors_left_out_and_counted(tmp_path, caplog):
    table = make_table(n=40)
    for i in (10, 11):  # two east chips with a broken s2 vector
        table.at[i, "emb_s2"] = np.array([np.nan, 1, 2, 3, np.inf], np.float32)
    df = run_tsne({"p": table}, TsneConfig(**FAST))
    east = df.query("aoi == 'east'")
    assert len(east.query("modality == 's2'")) == 38
    assert {"east010", "east011"} <= set(east.query("modality == 's1'")["chip_id"])
    assert df.attrs["nonfinite"] == {"p/east/s2": 2}
    assert "2 emb_s2 vectors hold NaN/inf" in caplog.text
    table["emb_s1"] = [None if v is None else v * np.nan for v in table["emb_s1"]]
    with pytest.raises(ValueError, match="modality 's1' has no finite vector"):
        run_tsne({"p": table}, TsneConfig(**FAST))
    assert len(run_tsne({"p": table}, TsneConfig(modalities=("s2",), **FAST))) == 78
    # the CLI: a one-line error, and a note for the NaN/inf vectors
    write_embedding_table(table, tmp_path / "nan.parquet", {"source": "pretrained"})
    app = typer.Typer(cls=EoclipGroup)  # the eoclip app's error handling
    register(app)
    app.command("noop")(lambda: None)
    args = ["tsne", "--table", str(tmp_path / "nan.parquet"), "--out", str(tmp_path / "o")]
    args += ["--n-iter", "20", "--no-plot"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert "error:" in r.output and "no finite vector" in r.output
    r = CliRunner().invoke(app, [*args, "--modalities", "s2"])
    assert r.exit_code == 0, r.output
    assert "note: 2 vectors with NaN/inf left out (nan/east/s2: 2)" in r.output
