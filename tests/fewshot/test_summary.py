"""summarize / point95 on hand-built results with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eoclip.fewshot import point95, summarize


def results_for(curve: dict[str, list[float]], features: str = "s2") -> pd.DataFrame:
    """Rows for one (source, aoi, task, features) cell: train_size -> accuracies over repeats."""
    n = {"5": 5, "10": 10, "100": 100, "250": 250, "all": 1000}
    rows = [
        {
            "source": "pretrained",
            "aoi": "conus",
            "task": "tree",
            "features": features,
            "train_size": size,
            "n_train": n[size],
            "repeat": r,
            "accuracy": acc,
            "balanced_accuracy": acc - 0.01,
            "pos_frac_train": 0.5,
            "pos_frac_test": 0.48,
        }
        for size, accs in curve.items()
        for r, acc in enumerate(accs)
    ]
    return pd.DataFrame(rows)


def test_mean_std_and_95_point():
    res = results_for(
        {
            "5": [0.5, 0.6],
            "10": [0.80, 0.84],
            "100": [0.86, 0.86],
            "250": [0.90, 0.90],
            "all": [0.90, 0.90],
        }
    )
    s = summarize(res)
    assert list(s["train_size"]) == ["5", "10", "100", "250", "all"]
    assert s["accuracy_mean"].tolist() == pytest.approx([0.55, 0.82, 0.86, 0.90, 0.90])
    assert s.loc[0, "accuracy_std"] == pytest.approx(np.std([0.5, 0.6], ddof=1))
    assert s.loc[0, "balanced_accuracy_mean"] == pytest.approx(0.54)
    assert s["full_accuracy_mean"].tolist() == pytest.approx([0.90] * 5)
    # 95 % of 0.90 = 0.855: 10 (0.82) misses, 100 (0.86) reaches it
    assert (s["n_train_95"] == 100).all()
    assert s["is_95_point"].tolist() == [False, False, True, False, False]
    assert s["reaches_frac"].tolist() == [False, False, True, True, True]
    p = point95(s)
    assert len(p) == 1 and p.loc[0, "n_train_95"] == 100 and p.loc[0, "train_size"] == "100"
    assert point95(summarize(res, frac=0.99)).loc[0, "n_train_95"] == 250


def test_smallest_size_wins_even_if_curve_dips_and_all_always_reaches():
    res = pd.concat(
        [
            results_for({"5": [0.5], "10": [0.95], "100": [0.7], "all": [0.96]}, "s1"),
            results_for({"5": [0.1], "10": [0.2], "100": [0.3], "all": [0.9]}, "concat"),
        ]
    )
    p = point95(summarize(res)).set_index("features")
    assert p.loc["s1", "n_train_95"] == 10
    assert p.loc["concat", "n_train_95"] == 1000 and p.loc["concat", "train_size"] == "all"
    assert np.isnan(summarize(res).query("features == 's1'")["accuracy_std"]).all()


def test_headline_shares_of_cells_reaching_95_cheaply():
    from eoclip.fewshot import headline

    cheap = results_for({"5": [0.5], "10": [0.9], "100": [0.9], "250": [0.9], "all": [0.9]})
    mid = results_for({"5": [0.5], "10": [0.5], "100": [0.5], "250": [0.9], "all": [0.9]})
    late = results_for({"5": [0.5], "10": [0.5], "100": [0.5], "250": [0.5], "all": [0.9]})
    cells = [c.assign(task=t) for c, t in ((cheap, "tree"), (mid, "built"), (late, "crop"))]
    h = headline(summarize(pd.concat(cells, ignore_index=True)))
    assert h.columns.tolist() == [
        "source",
        "features",
        "n_cells",
        "share_n95_le_250",
        "share_n95_le_500",
    ]
    # n_train_95: 10, 250 and 1000 (only the whole split, 1000 chips, reaches 95 %)
    assert h.loc[0, "n_cells"] == 3
    assert h.loc[0, "share_n95_le_250"] == pytest.approx(2 / 3)
    assert h.loc[0, "share_n95_le_500"] == pytest.approx(2 / 3)
    assert headline(summarize(cheap), sizes=(5,)).loc[0, "share_n95_le_5"] == 0.0


def test_continuous_results_are_summarised_on_r2():
    res = results_for({"5": [0.1, 0.3], "10": [0.5, 0.58], "100": [0.6, 0.6], "all": [0.6, 0.6]})
    res = res.assign(
        target="continuous",
        r2=res["accuracy"],
        mae=1 - res["accuracy"],
        accuracy=np.nan,
        balanced_accuracy=np.nan,
    )
    s = summarize(res)
    assert s["r2_mean"].tolist() == pytest.approx([0.2, 0.54, 0.6, 0.6])
    assert s["mae_mean"].tolist() == pytest.approx([0.8, 0.46, 0.4, 0.4])
    # 95 % of R2 0.6 = 0.57: 10 labels (0.54) miss it, 100 reach it
    assert (s["n_train_95"] == 100).all()
    p = point95(s)
    assert p.loc[0, "full_r2_mean"] == pytest.approx(0.6) and "relative_r2" in p
