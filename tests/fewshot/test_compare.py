"""paired_gain on hand-built results with known answers."""

from __future__ import annotations

import pandas as pd
import pytest

from eoclip.fewshot import FewshotError, paired_gain


def _rows(acc: dict) -> pd.DataFrame:
    """acc: (aoi, train_size, repeat) -> accuracy; one source, task and feature set."""
    n = {"5": 5, "10": 10}
    return pd.DataFrame(
        [
            {
                "source": "p",
                "aoi": a,
                "task": "tree",
                "features": "concat",
                "train_size": s,
                "n_train": n[s],
                "repeat": r,
                "accuracy": v,
            }
            for (a, s, r), v in acc.items()
        ]
    )


def test_paired_gain_mean_and_spread_over_repeats():
    ref = _rows({(a, s, r): 0.6 for a in ("x", "y") for s in ("5", "10") for r in (0, 1)})
    new = _rows(
        {
            ("x", "5", 0): 0.7,
            ("y", "5", 0): 0.8,
            ("x", "5", 1): 0.6,
            ("y", "5", 1): 0.6,
            ("x", "10", 0): 0.6,
            ("y", "10", 0): 0.6,
            ("x", "10", 1): 0.6,
            ("y", "10", 1): 0.6,
        }
    )
    g = paired_gain(new, ref)
    assert g["train_size"].tolist() == ["5", "10"]
    five = g.iloc[0]
    # per repeat, mean over AOIs: repeat 0 gains 0.15, repeat 1 gains 0.0
    assert five["gain_mean"] == pytest.approx(0.075)
    assert five["gain_std"] == pytest.approx(pd.Series([0.15, 0.0]).std())
    assert five["gain_min"] == pytest.approx(0.0) and five["gain_max"] == pytest.approx(0.15)
    assert five["accuracy"] == pytest.approx(0.675) and five["accuracy_ref"] == pytest.approx(0.6)
    assert five["n_aois"] == 2 and five["n_repeats"] == 2
    assert g.iloc[1]["gain_mean"] == pytest.approx(0.0)
    with pytest.raises(FewshotError, match="share no"):
        paired_gain(new.assign(source="q"), ref)
    with pytest.raises(FewshotError, match="'r2'"):
        paired_gain(new, ref, metric="r2")
