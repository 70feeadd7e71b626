"""run_fewshot end to end on tiny synthetic tables: counts, values, seeds, resuming, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import eoclip.fewshot.run as run_mod
from eoclip.embeddings import write_embedding_table
from eoclip.fewshot import (
    PAPER_RF,
    PAPER_TRAIN_SIZES,
    RESULT_COLUMNS,
    FewshotConfig,
    FewshotError,
    derive_seed,
    run_fewshot,
    summarize,
)
from eoclip.fewshot.data import feature_matrix, prepare_group
from eoclip.fewshot.fits import selection_rows
from eoclip.fewshot.heads import fit_predict

SMALL_RF = ({"n_estimators": 8, "max_depth": 4}, {"n_estimators": 8, "max_depth": 2})


def fast(**kw) -> FewshotConfig:
    base = dict(
        train_sizes=(5, 20, 500), repeats=2, grid=SMALL_RF, tasks=("tree", "water"), progress=False
    )
    return FewshotConfig(**{**base, **kw})


def test_rows_values_and_balance(table):
    res = run_fewshot({"pretrained": table}, fast())
    assert list(res.columns) == RESULT_COLUMNS
    # 2 aois x 2 tasks x 3 feature sets x (5, 20, all; 500 > 120 train chips) x 2 repeats
    assert len(res) == 2 * 2 * 3 * 3 * 2
    assert set(res["features"]) == {"s2", "s1", "concat"}
    assert set(res["train_size"]) == {"5", "20", "all"}
    assert (res.loc[res["train_size"] == "all", "n_train"] == 120).all()
    assert (res["n_test"] == 40).all() and (res["source"] == "pretrained").all()
    full = res[res["train_size"] == "all"]
    assert full["accuracy"].mean() > 0.75  # labels follow the embedding: far above chance
    assert (full["pos_frac_train"] == 0.5).all()  # 120 distinct values split at the median
    for (aoi, task), g in res.groupby(["aoi", "task"]):
        sub = table[table["aoi"] == aoi]
        train = sub.loc[sub["split"] == "train", f"label_{task}"]
        assert np.allclose(g["threshold"], np.median(train))
        test = sub.loc[sub["split"] == "test", f"label_{task}"]
        assert np.allclose(g["pos_frac_test"], (test > np.median(train)).mean())
    assert res["balanced_accuracy"].between(0, 1).all()
    assert (res["head"] == "rf").all()
    params = {json.dumps(p, sort_keys=True) for p in SMALL_RF}
    assert set(res["head_params"]) <= params
    assert (res["n_train"] == res["train_size"].replace("all", "120").astype(int)).all()


def test_test_labels_do_not_move_threshold(table):
    cfg = fast(train_sizes=(20,), repeats=1, tasks=("tree",), features=("s2",))
    a = run_fewshot({"p": table}, cfg)
    changed = table.copy()
    is_test = changed["split"] == "test"
    changed.loc[is_test, "label_tree"] = changed.loc[is_test, "label_tree"] * 100
    b = run_fewshot({"p": changed}, cfg)
    np.testing.assert_array_equal(a["threshold"], b["threshold"])
    assert (b["pos_frac_test"] > a["pos_frac_test"]).all()


def test_same_seed_same_numbers_any_n_jobs(table):
    cfg = fast(tasks=("tree",), features=("concat",))
    a = run_fewshot({"p": table}, cfg)
    b = run_fewshot({"p": table}, fast(tasks=("tree",), features=("concat",), n_jobs=2))
    pd.testing.assert_frame_equal(a, b)
    c = run_fewshot({"p": table}, fast(tasks=("tree",), features=("concat",), seed=1))
    assert not np.array_equal(a["seed"], c["seed"])
    assert not np.array_equal(a["accuracy"], c["accuracy"])


def test_selection_on_validation(table):
    grid = ({"C": 1e-4}, {"C": 1.0})
    cfg = fast(
        head="logreg", grid=grid, train_sizes=(20,), repeats=1, tasks=("tree",), features=("s2",)
    )
    res = run_fewshot({"p": table}, cfg)
    for aoi, g in res.groupby("aoi"):
        sub = table[table["aoi"] == aoi].sort_values("chip_id")
        X = feature_matrix(sub, "s2", ["s2", "s1"])
        data = prepare_group(sub["label_tree"].to_numpy(), sub["split"].to_numpy(), X, 0)
        accs = [
            (
                fit_predict("logreg", p, 0, data.X_train, data.y_train, data.X_val)[0] == data.y_val
            ).mean()
            for p in grid
        ]
        assert g["val_accuracy"].iloc[0] == pytest.approx(max(accs))
        assert json.loads(g["head_params"].iloc[0]) == grid[int(np.argmax(accs))]
    one = run_fewshot(
        {"p": table},
        fast(grid=(SMALL_RF[0],), train_sizes=(20,), repeats=1, tasks=("tree",), features=("s2",)),
    )
    assert one["val_accuracy"].isna().all()  # a one-entry grid needs no selection


@pytest.mark.parametrize("head", ["logreg", "knn"])
def test_other_heads_impute_missing(table, head):
    res = run_fewshot(
        {"p": table}, fast(head=head, grid=None, train_sizes=(50,), repeats=1, tasks=("tree",))
    )
    assert not res["accuracy"].isna().any()
    assert res.loc[res["train_size"] == "all", "accuracy"].mean() > 0.75


def test_one_class_samples_resampled_and_recorded(table):
    t = table.copy()
    t["label_water"] = 0.0
    t.loc[t.index[::40], "label_water"] = 1.0  # 3 positives per AOI's train split
    res = run_fewshot(
        {"p": t}, fast(tasks=("water",), features=("s2",), train_sizes=(5,), repeats=4)
    )
    small = res[res["train_size"] == "5"]
    assert (small["n_resamples"] > 0).any() and not small["single_class"].any()
    assert ((small["pos_frac_train"] > 0) & (small["pos_frac_train"] < 1)).all()
    res0 = run_fewshot(
        {"p": t},
        fast(tasks=("water",), features=("s2",), train_sizes=(5,), repeats=4, max_resample=0),
    )
    assert res0.loc[res0["train_size"] == "5", "single_class"].any()


def test_sources_from_files_are_paired(tmp_path, table):
    meta = {"source": "pretrained", "checkpoint_hash": "abc123"}
    write_embedding_table(table, tmp_path / "a.parquet", meta)
    stats = table.copy()
    stats["emb_s2"] = [None if v is None else v[::-1].copy() for v in stats["emb_s2"]]
    write_embedding_table(stats, tmp_path / "b.parquet", {**meta, "source": "stats"})
    cfg = fast(tasks=("tree",), features=("s2",))
    res = run_fewshot({"pretrained": tmp_path / "a.parquet", "stats": tmp_path / "b.parquet"}, cfg)
    assert set(res["source"]) == {"pretrained", "stats"} and len(res) == 2 * 2 * 3 * 2
    a, b = (res[res["source"] == s].reset_index(drop=True) for s in ("pretrained", "stats"))
    np.testing.assert_array_equal(a["seed"], b["seed"])  # same samples for both sources
    np.testing.assert_array_equal(a["pos_frac_train"], b["pos_frac_train"])


def test_resume_computes_only_missing_groups(tmp_path, table, monkeypatch):
    out = tmp_path / "out"
    cfg = fast(tasks=("tree",), features=("s2", "concat"))
    full = run_fewshot({"p": table}, cfg, out_dir=out)
    stored = pd.read_parquet(out / "results.parquet")
    assert len(stored) == len(full) == len(pd.read_csv(out / "results.csv"))
    assert sorted(p.name for p in out.iterdir()) == [
        "fewshot_config.json",
        "headline.csv",
        "results.csv",
        "results.parquet",
        "summary.csv",
    ]
    drop = (stored["aoi"] == "aoi_b") & (stored["features"] == "concat")  # 3 whole groups
    drop |= (stored["aoi"] == "aoi_a") & (stored["train_size"] == "20") & (stored["repeat"] == 1)
    stored[~drop].to_parquet(out / "results.parquet")
    calls = []
    original = run_mod.evaluate

    def counting(*args, **kwargs):
        calls.append(args[3])  # the train size label
        return original(*args, **kwargs)

    monkeypatch.setattr(run_mod, "evaluate", counting)
    again = run_fewshot({"p": table}, cfg, out_dir=out)
    # 3 dropped groups x 2 repeats, plus the 2 aoi_a "20" groups (s2, concat) left incomplete
    assert len(calls) == 3 * 2 + 2 * 2
    pd.testing.assert_frame_equal(full, again)
    calls.clear()
    run_fewshot({"p": table}, cfg, out_dir=out)
    assert calls == []  # nothing left to do
    with pytest.raises(FewshotError, match="other settings"):
        run_fewshot({"p": table}, fast(tasks=("tree",), seed=5), out_dir=out)
    moved = table.copy()
    moved["checkpoint_hash"] = "other"
    moved.attrs["eoclip"] = {"checkpoint_hash": "zzz"}
    with pytest.raises(FewshotError, match="checkpoint"):
        run_fewshot({"p": moved}, cfg, out_dir=out)
    fresh = run_fewshot(
        {"p": table}, fast(tasks=("tree",), features=("s2",), seed=5), out_dir=out, overwrite=True
    )
    assert len(pd.read_parquet(out / "results.parquet")) == len(fresh)


def test_interrupted_run_keeps_finished_groups(tmp_path, table, monkeypatch):
    """Results are written every CHECKPOINT_S seconds, at the end, and when interrupted."""
    out = tmp_path / "out"
    cfg = fast(tasks=("tree",), features=("s2",), n_jobs=1)  # 2 groups (aois) of 3 x 2 fits
    writes = []
    original_write = run_mod.write_results
    monkeypatch.setattr(
        run_mod, "write_results", lambda df, o: (writes.append(len(df)), original_write(df, o))
    )
    full = run_fewshot({"p": table}, cfg, out_dir=tmp_path / "once")
    assert writes == [12]  # a short run: one write, at the end
    writes.clear()
    calls = []
    original = run_mod.evaluate

    def interrupted(*args, **kwargs):
        calls.append(args[3])
        if len(calls) == 9:  # a fit of aoi_b's group
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(run_mod, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_fewshot({"p": table}, cfg, out_dir=out)
    assert writes == [6]  # on the way out: aoi_a's finished group
    kept = pd.read_parquet(out / "results.parquet")
    assert len(kept) == 6 and set(kept["aoi"]) == {"aoi_a"}
    monkeypatch.setattr(run_mod, "evaluate", original)
    monkeypatch.setattr(run_mod, "CHECKPOINT_S", 0.0)  # a write whenever a group finishes
    writes.clear()
    again = run_fewshot({"p": table}, cfg, out_dir=out)
    assert writes == [12]  # aoi_b's group, saved when it finished; nothing new after it
    pd.testing.assert_frame_equal(again, full)


def test_bad_input_errors(table):
    with pytest.raises(FewshotError, match="unknown feature set 'gunw'"):
        run_fewshot({"p": table}, fast(features=("gunw",)))
    with pytest.raises(FewshotError, match="label_crop"):
        run_fewshot({"p": table.drop(columns="label_crop")}, fast(tasks=("crop",)))
    with pytest.raises(FewshotError, match="unknown task"):
        fast(tasks=("forest",))
    with pytest.raises(FewshotError, match="no EmbeddingTables"):
        run_fewshot({}, fast())
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        run_fewshot({"p": "missing.parquet"}, fast())


def test_nonfinite_vectors_counted_and_used_as_missing(table, caplog):
    t, ref = table.copy(), table.copy()
    rows = t.index[(t["aoi"] == "aoi_a") & t["emb_s1"].notna()][:3]
    v = [t.at[r, "emb_s1"].copy() for r in rows]
    t.at[rows[0], "emb_s1"] = np.where(np.arange(6) == 0, np.nan, v[0]).astype(np.float32)
    t.at[rows[1], "emb_s1"] = np.where(np.arange(6) == 1, np.inf, v[1]).astype(np.float32)
    t.at[rows[2], "emb_s1"] = np.full(6, -np.inf, np.float32)
    # the same as: NaN entries (missing values to the forest), and a chip lacking s1
    ref.at[rows[0], "emb_s1"] = t.at[rows[0], "emb_s1"]
    ref.at[rows[1], "emb_s1"] = np.where(np.arange(6) == 1, np.nan, v[1]).astype(np.float32)
    ref.at[rows[2], "emb_s1"] = None
    res = run_fewshot({"p": t}, fast(tasks=("tree",)))
    bad = res.groupby(["aoi", "features"])["n_nonfinite"].max().to_dict()
    assert bad == {
        ("aoi_a", "s1"): 3,
        ("aoi_a", "concat"): 3,
        ("aoi_a", "s2"): 0,
        ("aoi_b", "s1"): 0,
        ("aoi_b", "concat"): 0,
        ("aoi_b", "s2"): 0,
    }
    assert "3 emb_s1 vectors hold NaN/inf" in caplog.text
    warned = [r for r in caplog.records if "hold NaN/inf" in r.getMessage()]
    assert {r.levelname for r in warned} == {"WARNING"}
    assert res["accuracy"].notna().all()
    # a table whose NaN entries are its declared missing values (channel statistics): INFO only
    caplog.clear()
    declared = t.copy()
    declared.attrs["eoclip"] = {"nan_means_missing": True}
    with caplog.at_level("INFO", logger="eoclip.fewshot.run"):
        again = run_fewshot({"p": declared}, fast(tasks=("tree",)))
    levels = {r.levelname for r in caplog.records if "hold NaN/inf" in r.getMessage()}
    assert levels == {"INFO"}
    np.testing.assert_array_equal(again["accuracy"], res["accuracy"])
    expected = run_fewshot({"p": ref}, fast(tasks=("tree",)))
    np.testing.assert_array_equal(res["accuracy"], expected["accuracy"])
    assert summarize(res).groupby(["aoi", "features"])["n_nonfinite"].max().to_dict() == bad


def test_whole_modality_nan_is_refused(table):
    t = table.copy()
    t["emb_s1"] = [None if v is None else np.full(6, np.nan, np.float32) for v in t["emb_s1"]]
    with pytest.raises(FewshotError, match="modality 's1' has no finite value.*leave 's1' out"):
        run_fewshot({"p": t}, fast(tasks=("tree",)))
    res = run_fewshot({"p": t}, fast(tasks=("tree",), features=("s2",)))  # without it: fine
    assert set(res["features"]) == {"s2"}


def test_rerun_from_another_table_is_refused(tmp_path, table):
    out = tmp_path / "out"
    cfg = fast(tasks=("tree",), features=("s2",))
    run_fewshot({"p": table}, cfg, out_dir=out)
    changed = table.copy()
    changed.at[7, "emb_s2"] = changed.at[7, "emb_s2"] * 2  # same size, same rows, same hash
    with pytest.raises(FewshotError, match=r"source 'p' is not the table.*vectors emb_s2"):
        run_fewshot({"p": changed}, cfg, out_dir=out)
    relabelled = table.copy()
    relabelled["label_water"] = relabelled["label_water"] + 1
    with pytest.raises(FewshotError, match="labels label_water"):
        run_fewshot({"p": relabelled}, cfg, out_dir=out)
    fewer = table.iloc[:-1]
    with pytest.raises(FewshotError, match="rows 400 -> 399"):
        run_fewshot({"p": fewer}, cfg, out_dir=out)
    again = run_fewshot({"p": changed}, cfg, out_dir=out, overwrite=True)
    assert len(again) == len(pd.read_parquet(out / "results.parquet"))
    stored = json.loads((out / "fewshot_config.json").read_text())
    assert set(stored["sources"]["p"]["fingerprint"]) >= {"rows", "chips", "emb_s2", "label_tree"}


def test_damaged_config_is_a_clear_error(tmp_path, table):
    out = tmp_path / "out"
    cfg = fast(tasks=("tree",), features=("s2",))
    run_fewshot({"p": table}, cfg, out_dir=out)
    (out / "fewshot_config.json").write_text('{"result_key": {"head": "rf"')
    with pytest.raises(FewshotError, match="fewshot_config.json is damaged"):
        run_fewshot({"p": table}, cfg, out_dir=out)
    (out / "fewshot_config.json").write_text("[]")
    with pytest.raises(FewshotError, match="damaged"):
        run_fewshot({"p": table}, cfg, out_dir=out)
    assert len(run_fewshot({"p": table}, cfg, out_dir=out, overwrite=True)) == 2 * 3 * 2


def test_selection_on_a_capped_train_sample(table):
    base = dict(train_sizes=(20,), repeats=1, tasks=("tree",), features=("s2",))
    whole = run_fewshot({"p": table}, fast(**base, select_max_train=None))
    above = run_fewshot({"p": table}, fast(**base, select_max_train=120))  # split: 120 chips
    pd.testing.assert_frame_equal(whole, above)  # the cap only applies to larger splits
    capped = run_fewshot({"p": table}, fast(**base, select_max_train=30))
    for aoi, g in capped.groupby("aoi"):
        sub = table[table["aoi"] == aoi].sort_values("chip_id")
        X = feature_matrix(sub, "s2", ["s2", "s1"])
        data = prepare_group(
            sub["label_tree"].to_numpy(), sub["split"].to_numpy(), X, derive_seed(0, aoi, "tree")
        )
        pick = selection_rows(120, 30, derive_seed(0, aoi, "tree"))
        assert len(pick) == 30 and np.all(np.diff(pick) > 0)
        seed = derive_seed(0, aoi, "tree", "s2", "select")
        accs = [
            (
                fit_predict("rf", p, seed, data.X_train[pick], data.y_train[pick], data.X_val)[0]
                == data.y_val
            ).mean()
            for p in SMALL_RF
        ]
        assert g["val_accuracy"].iloc[0] == pytest.approx(max(accs))
    with pytest.raises(FewshotError, match="select_max_train"):
        fast(select_max_train=1)
    assert FewshotConfig().select_max_train == 10_000


def test_config_rejects_zero_sizes_and_jobs():
    with pytest.raises(FewshotError, match="max_test must be >= 1"):
        fast(max_test=0)
    with pytest.raises(FewshotError, match="max_val must be >= 1"):
        fast(max_val=0)
    with pytest.raises(FewshotError, match="n_jobs must be >= 1"):
        fast(n_jobs=0)


def test_paper_preset_fixes_the_protocol():
    cfg = FewshotConfig.paper(seed=3, n_jobs=2, train_sizes=PAPER_TRAIN_SIZES)
    assert cfg.head_grid == (PAPER_RF,) and cfg.train_sizes == PAPER_TRAIN_SIZES
    assert cfg.repeats == 10 and cfg.repeats_for("all") == 10 and cfg.seed == 3
    assert cfg.result_key()["grid"] == [PAPER_RF]
    with pytest.raises(FewshotError, match="fixes \\['repeats'\\]"):
        FewshotConfig.paper(repeats=3)


def test_continuous_target_regresses_the_label_mean(tmp_path, table):
    cfg = dict(
        train_sizes=(5, 20),
        repeats=2,
        grid=SMALL_RF[:1],
        tasks=("tree",),
        features=("s2", "concat"),
        progress=False,
    )
    binary = run_fewshot({"p": table}, FewshotConfig(**cfg))
    res = run_fewshot({"p": table}, FewshotConfig(**cfg, target="continuous"), out_dir=tmp_path)
    assert list(res.columns) == RESULT_COLUMNS and (res["target"] == "continuous").all()
    assert res["accuracy"].isna().all() and res["threshold"].isna().all()
    full = res[res["train_size"] == "all"]
    assert (full["r2"] > 0.5).all()  # the label is exp of an embedding dimension
    assert (res["mae"] > 0).all()
    assert res.groupby("train_size")["r2"].mean()["5"] < full["r2"].mean()
    # the same sizes, repeats and seeds as the binary protocol
    key = ["aoi", "features", "train_size", "repeat"]
    assert res.set_index(key)["seed"].equals(binary.set_index(key)["seed"])
    assert binary["r2"].isna().all() and (binary["target"] == "binary").all()
    s = summarize(res)
    assert "r2_mean" in s and "accuracy_mean" not in s and s["n_train_95"].notna().all()
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert "full_r2_mean" in summary and (summary["n_train_95"] <= 120).all()
    with pytest.raises(FewshotError, match="regressor"):
        FewshotConfig(target="continuous", head="logreg")
    with pytest.raises(FewshotError, match="unknown target"):
        FewshotConfig(target="ordinal")
    with pytest.raises(FewshotError, match="target"):  # a binary folder is not resumed
        run_fewshot({"p": table}, FewshotConfig(**cfg), out_dir=tmp_path)
    knn = run_fewshot(
        {"p": table}, FewshotConfig(**{**cfg, "grid": None}, head="knn", target="continuous")
    )
    assert knn["r2"].notna().all()
