"""Export a checkpoint, load it back (folder, run folder, Hub id, timm) and embed with it."""

from __future__ import annotations

import json
import sys

import geopandas as gpd
import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file
from shapely.geometry import box
from typer.testing import CliRunner

from eoclip.cli import app
from eoclip.data.store import ChipStore
from eoclip.embeddings.export import EmbedConfig, embed_store
from eoclip.embeddings.table import read_embedding_table
from eoclip.model import CheckpointError, create_model, export_model, from_pretrained
from eoclip.train.checkpoint import save_checkpoint

PX, DIM, N = 16, 12, 10


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    model = create_model(
        "demo",
        img_size=PX,
        patch_size=8,
        width=32,
        depth=1,
        heads=2,
        embed_dim=DIM,
        global_pool="avg",
    )
    ckpt = save_checkpoint(
        root / "run" / "best",
        model,
        step=7,
        epoch=1,
        best_val_loss=2.5,
        extra={
            "val": {
                "val_chance_loss": 2.77,
                "val_chips": 16,
                "recall": {
                    "s2rgbm->s1grdm": {
                        "n": 16,
                        "r@1": 0.25,
                        "chance@1": 0.0625,
                        "r@5": 0.5,
                        "chance@5": 0.3125,
                    }
                },
            }
        },
    )
    out = export_model(root / "run", root / "exported")
    return model.eval(), ckpt, out, root


def test_export_folder_files_and_card(exported):
    model, ckpt, out, _ = exported
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "timm",
    ]
    assert (out / "model.safetensors").read_bytes() == (ckpt / "model.safetensors").read_bytes()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["format"] == "eoclip-model" and cfg["embed_dim"] == DIM
    assert cfg["modalities"] == ["s2rgbm", "s1grdm", "gunw"]
    assert cfg["modality_specs"]["s1grdm"]["normalize"]["vv"] == {"mean": -11.0, "std": 4.5}
    assert cfg["training"]["step"] == 7 and cfg["training"]["best_val_loss"] == 2.5
    card = (out / "README.md").read_text()
    for part in (
        "## Architecture",
        "## Modalities, channels and normalisation",
        "## Training",
        "**2.5000**",
        "| s2rgbm->s1grdm | 16 | 0.250 | 0.0625 |",
        "## Intended use",
        "## Limitations",
        "No few-shot results",
        "01_vv, 01_vh",
        "library_name: eoclip",
    ):
        assert part in card, part


def test_card_shows_a_fewshot_summary(exported):
    """The model layer takes a summary (it never reads few-shot results itself)."""
    import pandas as pd

    from eoclip.fewshot import summarize
    from eoclip.model.card import model_card

    _, _, out, _ = exported
    rows = [
        {
            "source": "pretrained",
            "aoi": a,
            "task": "tree",
            "features": "concat",
            "train_size": ts,
            "n_train": n,
            "repeat": r,
            "accuracy": acc + 0.01 * r,
            "balanced_accuracy": acc,
            "pos_frac_train": 0.5,
            "pos_frac_test": 0.5,
        }
        for a in ("conus", "china")
        for ts, n, acc in (("10", 10, 0.6), ("100", 100, 0.7), ("all", 500, 0.8))
        for r in (0, 2)
    ]
    card = model_card(json.loads((out / "config.json").read_text()), summarize(pd.DataFrame(rows)))
    assert "| pretrained | tree | concat | 0.610 | 0.710 | 0.810 |" in card
    assert "No few-shot results" not in card


def test_from_pretrained_gives_identical_weights_and_embeddings(exported):
    model, ckpt, out, root = exported
    x = torch.randn(3, 1, PX, PX)
    for path in (out, ckpt, root / "run"):
        loaded, meta = from_pretrained(path, with_meta=True)
        assert not loaded.training and meta["weights_sha256"]
        for k, v in model.state_dict().items():
            assert torch.equal(v, loaded.state_dict()[k]), k
        for m in model.modalities:
            assert torch.equal(model.encode(m, x), loaded.encode(m, x))


def test_each_tower_loads_as_a_plain_timm_model(exported):
    model, _, out, _ = exported
    x = torch.randn(2, 1, PX, PX)
    for m in model.modalities:
        spec = json.loads((out / "timm" / f"{m}.json").read_text())
        file = out / spec["file"]
        net = timm.create_model(
            spec["model_name"],
            pretrained=True,
            pretrained_cfg_overlay=dict(file=str(file), **spec["pretrained_cfg_overlay"]),
            **spec["kwargs"],
        ).eval()
        plain = timm.create_model(spec["model_name"], **spec["kwargs"]).eval()
        plain.load_state_dict(load_file(str(file)))
        with torch.no_grad():
            want = model.towers[m](x)
            torch.testing.assert_close(net(x), want, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(plain(x), want, atol=1e-5, rtol=1e-5)


def test_embed_with_the_exported_folder_reproduces_the_table(exported, tmp_path):
    _, ckpt, out, _ = exported
    rng = np.random.default_rng(0)
    index = gpd.GeoDataFrame(
        {
            "chip_id": [f"c{i}" for i in range(N)],
            "aoi": "conus",
            "split": ["train", "val"] * (N // 2),
        },
        geometry=[box(i, 0, i + 1, 1) for i in range(N)],
        crs="EPSG:4326",
    )
    s2 = rng.uniform(0, 0.3, (N, 9, PX, PX)).astype(np.float32)
    s1 = rng.uniform(-25, 0, (N, 9, PX, PX)).astype(np.float32)
    s1[3] = np.nan
    with ChipStore.create(tmp_path / "store", ["s2rgbm", "s1grdm"], chip_px=PX) as s:
        s.append(index, {"s2rgbm": s2, "s1grdm": s1})
    tables = {}
    for name, src in (("ckpt", ckpt), ("exported", out)):
        path = embed_store(
            EmbedConfig(
                checkpoint=str(src),
                store=str(tmp_path / "store"),
                out=str(tmp_path / f"{name}.parquet"),
                progress=False,
            )
        )
        tables[name] = read_embedding_table(path)
    (a, ma), (b, mb) = tables["ckpt"], tables["exported"]
    assert ma["checkpoint_hash"] == mb["checkpoint_hash"]
    for col in a.columns:
        if col.startswith("emb_") and not col.endswith("_channels"):
            for u, v in zip(a[col], b[col], strict=True):
                assert (u is None and v is None) or np.array_equal(
                    u.view(np.uint32), v.view(np.uint32)
                )
        elif col != "geometry":
            assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), col
    assert a["emb_s1grdm"].iloc[3] is None


def test_hub_ids_load_lazily_and_never_download_here(exported, monkeypatch):
    _, _, out, _ = exported
    import huggingface_hub

    calls = []

    def fake_snapshot(repo_id, revision=None, allow_patterns=None):
        calls.append((repo_id, revision, tuple(allow_patterns)))
        return str(out)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    loaded = from_pretrained("eoclip/demo-model", revision="v1")
    assert calls[0][:2] == ("eoclip/demo-model", "v1") and "model.safetensors" in calls[0][2]
    assert loaded.embed_dim == DIM
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    with pytest.raises(CheckpointError, match=r"eoclip\[hub\]"):
        from_pretrained("eoclip/other-model")


def test_bad_folders(exported, tmp_path):
    _, ckpt, out, _ = exported
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("config.json", "README.md"):
        (bad / name).write_bytes((out / name).read_bytes())
    weights = bytearray((out / "model.safetensors").read_bytes())
    weights[-1] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(weights))
    with pytest.raises(CheckpointError, match="sha256 does not match config.json"):
        from_pretrained(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        from_pretrained(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="not empty"):
        export_model(ckpt, out)
    r = CliRunner().invoke(
        app,
        ["export-model", "--checkpoint", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")],
    )
    assert r.exit_code == 1 and "does not exist" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(
        app, ["export-model", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o2"), "--no-timm"]
    )
    assert r.exit_code == 0 and not (tmp_path / "o2" / "timm").exists()
