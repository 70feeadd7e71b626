"""scikit-learn's forest against the lean fit of the same forest (eoclip.fewshot.forest).

    .venv/bin/python bench/forest_overhead.py                  # 192-d, the demo's concat width
    .venv/bin/python bench/forest_overhead.py --dims 2304 --sizes 10,100,1000

For each train size: CPU seconds of fit + predict (median of `--repeats`), through
`RandomForestClassifier(**params, random_state=seed).fit(X, y).predict(X_eval)` and through
`eoclip.fewshot.forest.forest_predict`, on seeded Gaussian features with a NaN block in 20 % of
the rows (a missing modality), and a check that both predict the same labels.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from eoclip.fewshot.forest import forest_predict, lean_forest_ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, default=192)
    ap.add_argument("--sizes", default="10,100,500")
    ap.add_argument("--eval-rows", type=int, default=189)  # the demo's test split per AOI
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--depth", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    assert lean_forest_ok(), "the lean forest does not reproduce this scikit-learn"
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    n = max(sizes) + args.eval_rows
    X = rng.normal(size=(n, args.dims)).astype(np.float32)
    X[rng.random(n) < 0.2, : args.dims // 3] = np.nan
    y = (np.nan_to_num(X[:, -1]) + rng.normal(size=n) > 0).astype(int)
    X_eval = X[-args.eval_rows :]
    params = {"n_estimators": args.trees, "max_depth": args.depth}
    print("| train chips | scikit-learn s | lean s | speed-up | same predictions |")
    print("|---|---|---|---|---|")
    for size in sizes:
        ref, lean, same = [], [], True
        for seed in range(args.repeats):
            t0 = time.process_time()
            want = RandomForestClassifier(**params, random_state=seed, n_jobs=1)
            want = want.fit(X[:size], y[:size]).predict(X_eval)
            t1 = time.process_time()
            got = forest_predict(X[:size], y[:size], X_eval, params, seed)
            t2 = time.process_time()
            ref.append(t1 - t0)
            lean.append(t2 - t1)
            same &= bool(np.array_equal(want, got))
        a, b = float(np.median(ref)), float(np.median(lean))
        print(f"| {size} | {a:.4f} | {b:.4f} | {a / b:.1f}x | {same} |")


if __name__ == "__main__":
    main()
