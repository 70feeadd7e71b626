"""Report figures and HTML from small hand-made inputs (a tiny store, results, metrics)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from shapely.geometry import box
from typer.testing import CliRunner

from eoclip.cli import app
from eoclip.data.store import ChipStore
from eoclip.fewshot import summarize
from eoclip.report import (
    ReportConfig,
    build_report,
    fig_accuracy,
    fig_examples,
    find_inputs,
    summary_table,
)
from eoclip.report.figures import best_epoch, pick_example_chips

PX = 16
CHROMIUM = Path("/usr/bin/chromium")


def _store(path: Path) -> str:
    rng = np.random.default_rng(1)
    n = 24
    aoi = ["conus"] * 12 + ["middle_east"] * 12
    geoms = [
        box(
            -105 + (i % 12) * 0.05,
            35 + (i // 12) * 0.05,
            -104.96 + (i % 12) * 0.05,
            35.04 + (i // 12) * 0.05,
        )
        for i in range(n)
    ]
    index = gpd.GeoDataFrame(
        {
            "chip_id": [f"c{i:02d}" for i in range(n)],
            "aoi": aoi,
            "split": (["train", "train", "train", "val", "test"] * 5)[:n],
            "label_tree": rng.uniform(0, 60, n),
            "label_water": rng.uniform(0, 0.2, n),
        },
        geometry=geoms,
        crs="EPSG:4326",
    )
    s2 = rng.uniform(0, 0.3, (n, 9, PX, PX)).astype(np.float32)
    s1 = rng.uniform(-25, 0, (n, 9, PX, PX)).astype(np.float32)
    s1[0] = np.nan  # chip 0 lacks s1: never an example chip
    gunw = rng.uniform(0, 1, (n, 2, PX, PX)).astype(np.float32)
    names = [["20200312_20200217", "20200224_20200112"]] * n
    with ChipStore.create(path, ["s2rgbm", "s1grdm", "gunw"], chip_px=PX) as s:
        s.append(index, {"s2rgbm": s2, "s1grdm": s1, "gunw": gunw}, channel_names={"gunw": names})
    return str(path)


def _results() -> pd.DataFrame:
    """Tidy few-shot results: accuracy rises with n for pretrained, flat for the baselines."""
    rows = []
    full = {"conus": 120, "middle_east": 150}
    for src, feats in (
        ("pretrained", ["s2rgbm", "s1grdm", "gunw", "concat"]),
        ("stats", ["concat"]),
        ("untrained", ["concat"]),
    ):
        for aoi, n_all in full.items():
            for task in ("tree", "water"):
                for f in feats:
                    for size in ("5", "10", "100", "all"):
                        n = n_all if size == "all" else int(size)
                        for rep in range(3):
                            acc = (
                                0.6 + 0.3 * np.log(n) / np.log(n_all)
                                if src == "pretrained"
                                else 0.7
                            ) + 0.01 * rep
                            rows.append(
                                dict(
                                    source=src,
                                    aoi=aoi,
                                    task=task,
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


def _metrics() -> list[dict]:
    recall = {
        "s2rgbm->s1grdm": {"r@1": 0.3, "r@5": 0.6, "chance@1": 0.01, "chance@5": 0.05, "n": 100}
    }
    return [
        {"kind": "train", "step": 1, "loss": 4.0},
        {
            "kind": "epoch",
            "epoch": 1,
            "step": 5,
            "train_loss": 3.9,
            "val_loss": 3.5,
            "val_chance_loss": 4.6,
            "recall": recall,
        },
        {
            "kind": "epoch",
            "epoch": 2,
            "step": 10,
            "train_loss": 3.0,
            "val_loss": 2.5,
            "val_chance_loss": 4.6,
            "recall": {k: {**v, "r@1": 0.5} for k, v in recall.items()},
        },
        {
            "kind": "epoch",
            "epoch": 3,
            "step": 15,
            "train_loss": 2.5,
            "val_loss": 2.7,
            "val_chance_loss": 4.6,
            "recall": recall,
        },
    ]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A folder in the `eoclip demo` layout (without t-SNE)."""
    root = tmp_path_factory.mktemp("run")
    _store(root / "world")
    (root / "runs" / "demo").mkdir(parents=True)
    (root / "runs" / "demo" / "metrics.jsonl").write_text(
        "\n".join(json.dumps(r) for r in _metrics())
    )
    (root / "fewshot" / "all").mkdir(parents=True)
    _results().to_parquet(root / "fewshot" / "all" / "results.parquet")
    return root


def test_summary_table_numbers():
    table = summary_table(summarize(_results()), ["pretrained", "stats", "untrained"])
    assert list(table["source"][:3]) == ["pretrained", "stats", "untrained"]
    pre = table[(table["task"] == "tree") & (table["source"] == "pretrained")].iloc[0]
    exp10 = np.mean([0.6 + 0.3 * np.log(10) / np.log(n) + 0.01 for n in (120, 150)])
    assert pre["acc@10"] == pytest.approx(exp10)
    assert np.isnan(pre["acc@500"])  # no AOI ran 500 labels
    assert pre["acc@all"] == pytest.approx(0.91)
    # 95 % of 0.91 is 0.8645: reached at 100 labels in both AOIs
    assert pre["n95_max"] == 100 and pre["n95_median"] == 100
    flat = table[(table["task"] == "tree") & (table["source"] == "stats")].iloc[0]
    assert flat["n95_max"] == 5  # a flat curve reaches 95 % at once


def test_best_epoch_is_lowest_val_loss():
    assert best_epoch(_metrics())["epoch"] == 2
    assert best_epoch([{"kind": "train"}]) is None


def test_figures_are_written(tmp_path, run_dir):
    store = ChipStore.open(run_dir / "world")
    assert 0 not in pick_example_chips(store, 30)  # chip 0 lacks s1grdm
    assert len(pick_example_chips(store, 3)) == 3
    png = fig_examples(store, tmp_path / "ex.png", n=2)
    assert Path(png).stat().st_size > 5000
    png = fig_accuracy(summarize(_results()), tmp_path / "acc.png")
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="empty"):
        fig_accuracy(summarize(_results()).iloc[:0], tmp_path / "none.png")


def test_build_report_from_demo_layout(tmp_path, run_dir):
    inp = find_inputs(ReportConfig(out=str(tmp_path), run=str(run_dir)))
    assert inp.store == str(run_dir / "world") and inp.tsne is None
    assert inp.fewshot == [str(run_dir / "fewshot" / "all" / "results.parquet")]
    path = build_report(ReportConfig(out=str(tmp_path / "rep"), run=str(run_dir)))
    page = path.read_text()
    for fig in ("fig1_aois", "fig2_labels", "fig4_accuracy", "fig6_examples", "retrieval"):
        assert f"figures/{fig}.png" in page
        assert (tmp_path / "rep" / "figures" / f"{fig}.png").stat().st_size > 5000
    assert "No t-SNE map found" in page
    assert "pretrained concat" in page and "stats concat" in page
    assert "validation CLIP loss 2.5000" in page  # the best epoch, not the last
    assert "http://" not in page and "https://" not in page and "<script" not in page
    # sections drawn in two processes: the same page and the same figure bytes
    other = build_report(ReportConfig(out=str(tmp_path / "rep2"), run=str(run_dir), workers=2))
    body = [line for line in page.splitlines() if "generated" not in line]
    assert [line for line in other.read_text().splitlines() if "generated" not in line] == body
    figs = sorted(p.name for p in (tmp_path / "rep" / "figures").iterdir())
    assert figs == sorted(p.name for p in (tmp_path / "rep2" / "figures").iterdir())
    for name in figs:
        assert (tmp_path / "rep" / "figures" / name).read_bytes() == (
            tmp_path / "rep2" / "figures" / name
        ).read_bytes()


def test_report_cli_and_bad_input(tmp_path, run_dir):
    res = CliRunner().invoke(app, ["report", "--run", str(run_dir), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "index.html").is_file()
    res = CliRunner().invoke(
        app, ["report", "--run", str(tmp_path / "nope"), "--out", str(tmp_path / "r2")]
    )
    assert res.exit_code == 1 and "does not exist" in res.output
    # a pretraining run folder alone: only the retrieval section and the store (config.yaml)
    pre = tmp_path / "pre"
    shutil.copytree(run_dir / "runs" / "demo", pre)
    (pre / "config.yaml").write_text(f"store: {run_dir / 'world'}\n")
    page = build_report(ReportConfig(out=str(tmp_path / "r3"), run=str(pre))).read_text()
    assert "No few-shot results found" in page and "figures/retrieval.png" in page
    assert "figures/fig1_aois.png" in page


def test_report_renders_in_headless_chromium(tmp_path, run_dir):
    if not CHROMIUM.exists():
        # CI installs Chromium and sets EOCLIP_REQUIRE_BROWSER: there a missing browser fails.
        if os.environ.get("EOCLIP_REQUIRE_BROWSER"):
            pytest.fail("EOCLIP_REQUIRE_BROWSER is set but /usr/bin/chromium is missing")
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium)")
    page = build_report(ReportConfig(out=str(tmp_path / "rep"), run=str(run_dir)))
    shot = tmp_path / "shot.png"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        page.resolve().as_uri(),
    ]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    img = imread(shot)[..., :3]
    assert img.shape[:2] == (2000, 1280)
    colours = np.unique((img.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colours) > 200 and img.std() > 0.05  # a blank page has a few colours


def test_fig6_locates_examples_on_the_s1grdm_tsne_map(tmp_path, run_dir):
    from eoclip.report.examples import fig_tsne_examples, spread_points

    store = ChipStore.open(run_dir / "world")
    ids = store.index["chip_id"].tolist()
    rng = np.random.default_rng(0)
    tsne = pd.DataFrame(
        {
            "source": "pretrained",
            "aoi": store.index["aoi"],
            "modality": "s1grdm",
            "chip_id": ids,
            "x": rng.normal(size=len(ids)),
            "y": rng.normal(size=len(ids)),
        }
    )
    png = fig_tsne_examples(store, tsne, tmp_path / "fig6.png", n=3)
    assert imread(png).shape[1] > 500
    with pytest.raises(ValueError, match="no gunw map"):
        fig_tsne_examples(store, tsne, tmp_path / "x.png", modality="gunw")
    only_bad = tsne[tsne["chip_id"] == ids[0]]  # chip 0 lacks s1grdm
    with pytest.raises(ValueError, match="holds every modality"):
        fig_tsne_examples(store, only_bad, tmp_path / "x.png")
    # farthest-point sampling: the corners of a square before its centre
    square = np.array([[0, 0], [1, 1], [0.5, 0.5], [1, 0], [0, 1]], float)
    assert sorted(spread_points(square, 4, seed=0)) == [0, 1, 3, 4]
    assert spread_points(square[:2], 4) == [0, 1]
    tsne.to_parquet(run_dir / "tsne.parquet")
    page = build_report(
        ReportConfig(
            out=str(tmp_path / "rep"), run=str(run_dir), tsne=str(run_dir / "tsne.parquet")
        )
    ).read_text()
    assert "located (numbered) on the s1grdm t-SNE map" in page
    assert "share_n95_le_250" in page


def test_continuous_results_get_the_r2_twin_of_fig4(tmp_path, run_dir):
    res = _results()
    cont = res.assign(
        target="continuous",
        r2=res["accuracy"] - 0.2,
        mae=0.1,
        accuracy=np.nan,
        balanced_accuracy=np.nan,
    )
    folder = tmp_path / "cont"
    folder.mkdir()
    cont.to_parquet(folder / "results.parquet")
    cfg = ReportConfig(
        out=str(tmp_path / "rep"),
        run=str(run_dir),
        fewshot=[str(run_dir / "fewshot" / "all"), str(folder)],
    )
    page = build_report(cfg).read_text()
    assert "figures/fig4_r2.png" in page and "figures/fig4_accuracy.png" in page
    assert imread(tmp_path / "rep" / "figures" / "fig4_r2.png").shape[0] > 300
    # the binary table is unchanged by the continuous rows
    assert "pretrained concat" in page
