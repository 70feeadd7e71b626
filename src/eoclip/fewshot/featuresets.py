"""Names of the feature sets a source is evaluated on, and what each one reads.

- a modality (`s2rgbm`): that modality's vector;
- `concat`: every modality of the table, concatenated (a NaN block where a chip lacks one);
- with modality subsets (the paper's robustness argument, measured): every other subset of two
  or more modalities, named by joining them with `+` in the table's order (`s2rgbm+gunw`);
- and `concat-<m>@test`: the `concat` matrix, fitted as usual, but with modality `<m>` blanked
  (a NaN block) for a seeded fraction of the TEST chips, i.e. present at training time and
  missing at test time.
"""

from __future__ import annotations

import itertools
import re

import numpy as np

from eoclip.fewshot.config import CONCAT, FewshotError

__all__ = ["blank_columns", "feature_mods", "feature_sets", "missing_at_test", "blank_test_rows"]

_AT_TEST = re.compile(rf"^{CONCAT}-(.+)@test$")


def feature_sets(modalities: list[str], subsets: bool = False) -> list[str]:
    """Each modality, plus `concat` when a source has two or more.

    With `subsets`: also every subset of 2 .. n-1 modalities (`a+b`), then one
    `concat-<m>@test` per modality.
    """
    mods = list(modalities)
    out = mods + ([CONCAT] if len(mods) > 1 else [])
    if subsets and len(mods) > 1:
        out += ["+".join(c) for k in range(2, len(mods)) for c in itertools.combinations(mods, k)]
        out += [f"{CONCAT}-{m}@test" for m in mods]
    return out


def missing_at_test(features: str) -> str | None:
    """The modality a `concat-<m>@test` set blanks at test time, else None."""
    m = _AT_TEST.match(features)
    return m.group(1) if m else None


def feature_mods(features: str, modalities: list[str]) -> list[str]:
    """The modalities whose vectors make up the matrix of `features`, in table order.

    Raises:
        FewshotError: a name that is no feature set of these modalities.
    """
    if features == CONCAT or missing_at_test(features) in modalities:
        return list(modalities)
    parts = features.split("+")
    if all(p in modalities for p in parts) and len(set(parts)) == len(parts):
        return [m for m in modalities if m in parts]
    raise FewshotError(
        f"unknown feature set {features!r}; available: {feature_sets(modalities, subsets=True)}"
    )


def blank_columns(features: str, modalities: list[str], dims: dict[str, int]) -> tuple | None:
    """(start, stop) columns of the modality a `concat-<m>@test` set blanks, else None."""
    m = missing_at_test(features)
    if m is None:
        return None
    start = sum(dims[x] for x in modalities[: modalities.index(m)])
    return (start, start + dims[m])


def blank_test_rows(n_test: int, frac: float, seed: int) -> np.ndarray:
    """Sorted positions within the test split whose blanked modality is removed.

    `round(frac * n_test)` of them, a seeded choice shared by every train size and repeat.
    """
    k = int(round(frac * n_test))
    return np.sort(np.random.default_rng(seed).choice(n_test, size=k, replace=False))
