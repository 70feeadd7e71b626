"""Embedding export: a tiny store and a tiny checkpoint saved here, through `embed_store`."""

from __future__ import annotations

import importlib.util

import geopandas as gpd
import numpy as np
import pytest
import torch
from shapely.geometry import box
from typer.testing import CliRunner

from eoclip.cli import app
from eoclip.data.store import ChipStore
from eoclip.embeddings.channels import select_channels, slot_names
from eoclip.embeddings.compute import model_input, normalisation_stats
from eoclip.embeddings.export import EmbedConfig, EmbedError, embed_store
from eoclip.embeddings.table import embedding_matrix, read_embedding_table
from eoclip.model import create_model
from eoclip.train.checkpoint import save_checkpoint

N, PX, DIM = 22, 16, 16
NO_S1 = (3, 10)  # chips without s1grdm
GUNW_NAMES = ["20200312_20200217", "20200224_20200112", "20200131_20200107"]


def _store(path) -> str:
    rng = np.random.default_rng(0)
    geoms = [box(i * 0.05, 0, i * 0.05 + 0.04, 0.04) for i in range(N)]
    index = gpd.GeoDataFrame(
        {
            "chip_id": [f"c{i:03d}" for i in range(N)],
            "aoi": ["conus"] * 12 + ["china"] * 10,
            "split": (["train", "train", "val", "test"] * 6)[:N],
            "label_tree": rng.uniform(0, 80, N),
        },
        geometry=geoms,
        crs="EPSG:4326",
    )
    s2 = rng.uniform(0.0, 0.3, (N, 9, PX, PX)).astype(np.float32)
    s2[5, 4] = np.nan  # one invalid channel
    s1 = rng.uniform(-25, 0, (N, 9, PX, PX)).astype(np.float32)
    s1[list(NO_S1)] = np.nan
    gunw = rng.uniform(0, 1, (N, 3, PX, PX)).astype(np.float32)
    gunw_names = [GUNW_NAMES if i % 2 else GUNW_NAMES[:2] for i in range(N)]
    gunw[::2, 2] = np.nan
    with ChipStore.create(path, ["s2rgbm", "s1grdm", "gunw"], chip_px=PX, shard_chips=8) as s:
        s.append(
            index, {"s2rgbm": s2, "s1grdm": s1, "gunw": gunw}, channel_names={"gunw": gunw_names}
        )
    return str(path)


def _checkpoint(path) -> str:
    model = create_model(
        "demo", img_size=PX, patch_size=8, width=32, depth=1, heads=2, embed_dim=DIM
    )
    save_checkpoint(path, model, step=0, epoch=0)
    return str(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return _store(root / "store"), _checkpoint(root / "run" / "best"), root


def _cfg(setup, out, **kw) -> EmbedConfig:
    store, ckpt, _ = setup
    kw.setdefault("part_chips", 6)
    return EmbedConfig(checkpoint=ckpt, store=store, out=str(out), progress=False, **kw)


def test_mean_export_shapes_nulls_and_determinism(setup, tmp_path):
    a = embed_store(_cfg(setup, tmp_path / "a.parquet"))
    gdf, meta = read_embedding_table(a)
    assert len(gdf) == N and list(gdf["chip_id"]) == [f"c{i:03d}" for i in range(N)]
    assert meta["source"] == "pretrained" and meta["dim"] == DIM
    assert meta["channel_policy"] == "mean" and len(meta["checkpoint_hash"]) == 64
    assert meta["modalities"] == ["s2rgbm", "s1grdm", "gunw"]
    X, present = embedding_matrix(gdf, "s1grdm")
    assert X.shape == (N, DIM) and list(np.flatnonzero(~present)) == list(NO_S1)
    assert all(gdf["emb_s1grdm"].iloc[i] is None for i in NO_S1)
    assert all(len(gdf["emb_s1grdm_channels"].iloc[i]) == 0 for i in NO_S1)
    np.testing.assert_allclose(np.linalg.norm(X[present], axis=1), 1, atol=1e-5)
    assert (
        len(gdf["emb_s2rgbm_channels"].iloc[5]) == 8
        and "02_green" not in gdf["emb_s2rgbm_channels"].iloc[5]
    )
    assert list(gdf["emb_gunw_channels"].iloc[1]) == GUNW_NAMES
    assert not (tmp_path / "a.parquet.parts").exists()
    b = embed_store(_cfg(setup, tmp_path / "b.parquet", part_chips=5))
    gdf_b, _ = read_embedding_table(b)
    np.testing.assert_allclose(
        embedding_matrix(gdf_b, "s2rgbm")[0], embedding_matrix(gdf, "s2rgbm")[0], atol=1e-5
    )


def test_mean_is_the_normalised_mean_of_single_channels(setup, tmp_path):
    mean, _ = read_embedding_table(embed_store(_cfg(setup, tmp_path / "m.parquet")))
    singles = []
    for ch in (
        "01_vv",
        "01_vh",
        "01_vvvh",
        "02_vv",
        "02_vh",
        "02_vvvh",
        "03_vv",
        "03_vh",
        "03_vvvh",
    ):
        cfg = _cfg(setup, tmp_path / f"{ch}.parquet", channels=f"s1grdm={ch}")
        singles.append(embedding_matrix(read_embedding_table(embed_store(cfg))[0], "s1grdm")[0])
    expect = np.mean(singles, axis=0)
    expect /= np.linalg.norm(expect, axis=1, keepdims=True)
    got = embedding_matrix(mean, "s1grdm")[0]
    np.testing.assert_allclose(got, expect, atol=1e-5)  # NaN rows (no s1) compare equal


def test_fixed_channel_and_random(setup, tmp_path):
    pair = GUNW_NAMES[2]
    gdf, meta = read_embedding_table(
        embed_store(_cfg(setup, tmp_path / "f.parquet", channels=pair))
    )
    assert meta["channel_policies"] == {"s2rgbm": "mean", "s1grdm": "mean", "gunw": pair}
    _, present = embedding_matrix(gdf, "gunw")
    assert list(present) == [i % 2 == 1 for i in range(N)]  # only odd chips have that pair
    assert all(list(c) == [pair] for c in gdf["emb_gunw_channels"][present])
    assert all(len(c) == 0 for c in gdf["emb_gunw_channels"][~present])
    r1, m1 = read_embedding_table(
        embed_store(_cfg(setup, tmp_path / "r1.parquet", channels="random", seed=3))
    )
    r2, _ = read_embedding_table(
        embed_store(_cfg(setup, tmp_path / "r2.parquet", channels="random", seed=3, part_chips=22))
    )
    assert m1["channel_policy"] == "random"
    assert all(len(c) == 1 for c in r1["emb_s2rgbm_channels"])
    assert list(r1["emb_s2rgbm_channels"].map(list)) == list(r2["emb_s2rgbm_channels"].map(list))
    np.testing.assert_allclose(
        embedding_matrix(r1, "gunw")[0], embedding_matrix(r2, "gunw")[0], atol=1e-5
    )


def test_select_channels_random_is_valid_and_seeded():
    valid = np.array([[True, False, True], [False, False, False], [False, True, False]])
    names = np.array([["a", "b", "c"]] * 3)
    sel = select_channels("random", valid, names, np.arange(3), 0, "m")
    assert sel.sum(1).tolist() == [1, 0, 1] and not (sel & ~valid).any()
    again = select_channels("random", valid, names, np.arange(3), 0, "m")
    assert (sel == again).all()
    assert (
        select_channels("c", valid, names, np.arange(3), 0, "m")
        == np.array([[0, 0, 1], [0, 0, 0], [0, 0, 0]], bool)
    ).all()


def test_resume_reuses_parts_and_gives_identical_table(setup, tmp_path, monkeypatch):
    import eoclip.embeddings.export as export

    out = tmp_path / "t.parquet"
    ref, _ = read_embedding_table(embed_store(_cfg(setup, tmp_path / "ref.parquet")))
    calls = []
    real = export._write_part

    def killed_after_two(table, path):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the run is killed before writing its third part
        calls.append(table["chip_id"][0].as_py())
        return real(table, path)

    monkeypatch.setattr(export, "_write_part", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        embed_store(_cfg(setup, out))
    parts = tmp_path / "t.parquet.parts"
    assert sorted(p.name for p in parts.glob("part-*")) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert not out.exists() and not list(parts.glob(".*tmp*"))
    (parts / "part-00000.parquet").unlink()  # and one part is lost
    calls.clear()
    monkeypatch.setattr(
        export,
        "_write_part",
        lambda table, path: (calls.append(table["chip_id"][0].as_py()), real(table, path))[1],
    )
    got, _ = read_embedding_table(embed_store(_cfg(setup, out)))
    assert calls == ["c000", "c012", "c018"]  # part 1 (chips 6..11) was reused
    assert not parts.exists()
    for m in ("s2rgbm", "s1grdm", "gunw"):
        np.testing.assert_array_equal(embedding_matrix(got, m)[0], embedding_matrix(ref, m)[0])
    calls.clear()
    embed_store(_cfg(setup, out))  # up to date: nothing computed
    assert calls == []


def test_untrained_baseline(setup, tmp_path):
    a, meta = read_embedding_table(
        embed_store(_cfg(setup, tmp_path / "u.parquet", untrained=True, seed=7))
    )
    b, _ = read_embedding_table(
        embed_store(_cfg(setup, tmp_path / "v.parquet", untrained=True, seed=7))
    )
    p, _ = read_embedding_table(embed_store(_cfg(setup, tmp_path / "p.parquet")))
    assert meta["source"] == "untrained" and meta["checkpoint_hash"] == "untrained-7"
    assert set(a["checkpoint_hash"]) == {"untrained-7"}
    Xa, Xb, Xp = (embedding_matrix(t, "s2rgbm")[0] for t in (a, b, p))
    np.testing.assert_array_equal(Xa, Xb)
    assert not np.allclose(Xa[~np.isnan(Xa)], Xp[~np.isnan(Xp)])


def test_bad_input_gives_clear_errors(setup, tmp_path):
    store, ckpt, root = setup
    with pytest.raises(EmbedError, match="does not exist"):
        embed_store(
            EmbedConfig(
                checkpoint=str(tmp_path / "nope"),
                store=store,
                out=str(tmp_path / "x.parquet"),
                progress=False,
            )
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmbedError, match="checkpoint.json"):
        embed_store(
            EmbedConfig(
                checkpoint=str(tmp_path / "empty"),
                store=store,
                out=str(tmp_path / "x.parquet"),
                progress=False,
            )
        )
    with pytest.raises(EmbedError, match="not a policy"):
        embed_store(_cfg(setup, tmp_path / "x.parquet", channels="07_red"))
    with pytest.raises(EmbedError, match="cannot open store"):
        embed_store(
            EmbedConfig(
                checkpoint=ckpt,
                store=str(tmp_path / "nostore"),
                out=str(tmp_path / "x.parquet"),
                progress=False,
            )
        )
    embed_store(_cfg(setup, tmp_path / "y.parquet"))
    with pytest.raises(EmbedError, match="another export"):
        embed_store(_cfg(setup, tmp_path / "y.parquet", channels="random"))
    embed_store(_cfg(setup, tmp_path / "y.parquet", channels="random", overwrite=True))


def test_cli_embed(setup, tmp_path):
    store, ckpt, root = setup
    out = tmp_path / "cli.parquet"
    res = CliRunner().invoke(
        app,
        [
            "embed",
            "--checkpoint",
            str(root / "run"),
            "--store",
            store,
            "--out",
            str(out),
            "--channels",
            "random",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert str(out) in res.output and read_embedding_table(out)[1]["channel_policy"] == "random"
    if importlib.util.find_spec("torchao"):
        res = CliRunner().invoke(
            app,
            ["embed", "--checkpoint", str(root / "run"), "--store", store, "--out", str(out)]
            + ["--channels", "random", "--fp8", "--overwrite", "--no-progress"],
        )
        assert res.exit_code == 0, res.output
        assert read_embedding_table(out)[1]["embed_config"]["fp8"] is True
    res = CliRunner().invoke(
        app,
        ["embed", "--checkpoint", str(tmp_path / "missing"), "--store", store, "--out", str(out)],
    )
    assert res.exit_code != 0 and "does not exist" in res.output


def test_device_side_normalisation_matches_the_dataset_bit_for_bit(setup):
    store = ChipStore.open(setup[0])
    for mod in store.modalities:
        m = store.modalities[mod]
        stored = np.asarray(store.arrays(mod)["pixels"][:4, 0])
        names = slot_names(store, mod, 0, 4)[:, 0]
        expect = np.stack(
            [m.normalize(m.decode(stored[i : i + 1]), [names[i]])[0] for i in range(4)]
        )
        got = model_input(m, torch.from_numpy(stored), *normalisation_stats(m, names))
        assert got.shape == (4, 1, PX, PX) and got.dtype == torch.float32
        np.testing.assert_array_equal(got[:, 0].numpy(), expect)


def test_compiled_towers_export_the_same_vectors(setup, tmp_path):
    eager, _ = read_embedding_table(embed_store(_cfg(setup, tmp_path / "e.parquet")))
    compiled, meta = read_embedding_table(
        embed_store(_cfg(setup, tmp_path / "c.parquet", compile="aot_eager"))
    )
    assert meta["embed_config"]["compile"] == "aot_eager"
    for mod in ("s2rgbm", "s1grdm", "gunw"):
        np.testing.assert_allclose(
            embedding_matrix(compiled, mod)[0], embedding_matrix(eager, mod)[0], atol=1e-6
        )


def test_reader_processes_give_the_same_table(setup, tmp_path):
    from tqdm import tqdm

    from eoclip.embeddings.channels import parse_channel_policy
    from eoclip.embeddings.compute import iter_part_tables

    store = ChipStore.open(setup[0])
    model = create_model(
        "demo", img_size=PX, patch_size=8, width=32, depth=1, heads=2, embed_dim=DIM
    )
    policies = parse_channel_policy("mean", store, list(store.modalities))
    bounds = [(0, 10), (10, 20), (20, N)]
    kw = dict(batch_size=7, seed=0, bf16=False, device=torch.device("cpu"), bar=tqdm(disable=True))
    # Batches of 7 images run across reads of 3 chips: pieces are stitched back per part.
    threaded = list(iter_part_tables(model.eval(), store, policies, bounds, num_workers=0, **kw))
    processes = list(
        iter_part_tables(model, store, policies, bounds, num_workers=2, read_chips=3, **kw)
    )
    assert [t.num_rows for t in processes] == [10, 10, 2]
    for a, b in zip(threaded, processes, strict=True):
        assert a.equals(b)
    with pytest.raises(EmbedError, match="num_workers"):
        embed_store(_cfg(setup, tmp_path / "d.parquet", num_workers=-1))


def test_an_export_of_another_store_is_not_taken_as_up_to_date(setup, tmp_path):
    import geopandas as gpd

    out = tmp_path / "t.parquet"
    embed_store(_cfg(setup, out))
    # Another store with the same checkpoint and chip count: the old table must not be reused.
    other = tmp_path / "other"
    _store(other)
    assert ChipStore.open(other).fingerprint() == ChipStore.open(setup[0]).fingerprint()
    gdf = gpd.read_parquet(other / "index.parquet")
    gdf["chip_id"] = "x" + gdf["chip_id"]
    gdf.to_parquet(other / "index.parquet")
    with pytest.raises(EmbedError, match="store_fingerprint"):
        embed_store(_cfg((str(other), setup[1], setup[2]), out))


def test_overwrite_discards_leftover_parts_and_a_second_writer_is_refused(setup, tmp_path):
    from eoclip.errors import OutputLockedError
    from eoclip.lock import output_lock

    out = tmp_path / "t.parquet"
    parts = tmp_path / "t.parquet.parts"
    parts.mkdir()
    (parts / "part-00009.parquet").write_bytes(b"stray part of another run")
    embed_store(_cfg(setup, out, overwrite=True))
    assert out.is_file() and not parts.exists()
    with output_lock(out), pytest.raises(OutputLockedError, match="being written"):
        embed_store(_cfg(setup, out, overwrite=True))


def test_a_damaged_store_fails_with_one_line_instead_of_vectors(setup, tmp_path):
    """A deleted shard file: the export stops naming array, file and chips; no table."""
    import shutil

    from eoclip.data.store import StoreError

    store, ckpt, root = setup
    damaged = tmp_path / "damaged"
    shutil.copytree(store, damaged)
    (damaged / "data.zarr/s1grdm/pixels/c/1/0/0/0").unlink()  # chips c008..c015
    out = tmp_path / "emb.parquet"
    res = CliRunner().invoke(
        app,
        [
            "embed",
            "--checkpoint",
            ckpt,
            "--store",
            str(damaged),
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert res.exit_code != 0 and not out.exists()
    line = res.output.strip()
    assert "\n" not in line and line.startswith("error: ") and "s1grdm/pixels" in line
    assert "data.zarr/s1grdm/pixels/c/1/0/0/0" in line and "c008" in line
    with pytest.raises(StoreError) as err:  # reader processes: same one-line message
        embed_store(
            EmbedConfig(
                checkpoint=ckpt,
                store=str(damaged),
                out=str(out),
                part_chips=6,
                progress=False,
                num_workers=1,
                overwrite=True,
            )
        )
    assert "\n" not in str(err.value) and "c008" in str(err.value) and not out.exists()


def test_stack_keeps_each_channel_side_by_side(setup, tmp_path):
    gdf, meta = read_embedding_table(
        embed_store(_cfg(setup, tmp_path / "s.parquet", channels="stack"))
    )
    assert meta["dims"] == {"s2rgbm": 9 * DIM, "s1grdm": 9 * DIM, "gunw": DIM}
    X, present = embedding_matrix(gdf, "s2rgbm")
    assert X.shape == (N, 9 * DIM) and present.all()
    for ch, slot in {"01_red": 0, "02_green": 4, "03_blue": 8}.items():
        cfg = _cfg(setup, tmp_path / f"{ch}.parquet", channels=f"s2rgbm={ch}")
        single, has = embedding_matrix(read_embedding_table(embed_store(cfg))[0], "s2rgbm")
        block = X[:, slot * DIM : (slot + 1) * DIM]
        np.testing.assert_allclose(block[has], single[has], atol=1e-5)
        assert np.isnan(block[~has]).all()
    assert np.isnan(X[5, 4 * DIM : 5 * DIM]).all()  # chip 5 lacks 02_green: a NaN block
    assert np.isfinite(np.delete(X[5], np.s_[4 * DIM : 5 * DIM])).all()
    s1, has_s1 = embedding_matrix(gdf, "s1grdm")  # chips without s1 stay null, not NaN blocks
    assert list(np.flatnonzero(~has_s1)) == list(NO_S1)
    assert all(gdf["emb_s1grdm"].iloc[i] is None for i in NO_S1)
    mean, _ = read_embedding_table(embed_store(_cfg(setup, tmp_path / "m.parquet")))
    np.testing.assert_allclose(
        embedding_matrix(gdf, "gunw")[0],  # variable channels: the mean
        embedding_matrix(mean, "gunw")[0],
        atol=1e-6,
    )
    assert meta["nan_means_missing"] is True  # NaN blocks are declared, not errors


def test_fp8_export_is_close_and_not_mixed_with_bf16_tables_or_parts(setup, tmp_path, monkeypatch):
    pytest.importorskip("torchao")
    import eoclip.embeddings.export as export

    ref, _ = read_embedding_table(embed_store(_cfg(setup, tmp_path / "ref.parquet")))
    out = tmp_path / "f8.parquet"
    got, meta = read_embedding_table(embed_store(_cfg(setup, out, fp8=True)))
    assert meta["embed_config"]["fp8"] is True
    for mod in ("s2rgbm", "s1grdm", "gunw"):
        a, b = embedding_matrix(ref, mod)[0], embedding_matrix(got, mod)[0]
        assert np.array_equal(np.isnan(a), np.isnan(b))  # the same chips lack the modality
        ok = ~np.isnan(a).any(axis=1)
        cos = (a[ok] * b[ok]).sum(1) / np.linalg.norm(a[ok], axis=1) / np.linalg.norm(b[ok], axis=1)
        assert cos.min() > 0.99 and not np.array_equal(a[ok], b[ok])
    # A finished fp8 table is not taken as this bf16 export, nor the other way round.
    with pytest.raises(EmbedError, match="fp8 True -> False"):
        embed_store(_cfg(setup, out))
    with pytest.raises(EmbedError, match="fp8 False -> True"):
        embed_store(_cfg(setup, tmp_path / "ref.parquet", fp8=True))
    # Parts left by a killed fp8 export are not merged into a bf16 one.
    out.unlink()

    def killed(table, path):
        raise KeyboardInterrupt

    real = export._write_part
    monkeypatch.setattr(export, "_write_part", killed)
    with pytest.raises(KeyboardInterrupt):
        embed_store(_cfg(setup, out, fp8=True))
    monkeypatch.setattr(export, "_write_part", real)
    with pytest.raises(EmbedError, match="holds parts of another export"):
        embed_store(_cfg(setup, out))
