"""What the paper's few-shot grid costs: timed fits, a cost model, projected core-hours.

    .venv/bin/python bench/fewshot_cost.py                      # the paper's 5 AOIs, 3 sources
    .venv/bin/python bench/fewshot_cost.py --aoi-chips conus=167000 --sources 1 --cores 16
    .venv/bin/python bench/fewshot_cost.py --quick              # a smoke run (~1 min)

1. Fits (one process, the library's own fit function): on a synthetic AOI (seeded; 16 latent
   factors seen through each modality with noise, 3 % of chips missing a modality), for each
   feature width, the paper's forest at train sizes 5 ... 20000 and every other grid entry at
   1000 ... 20000, each scored on `--eval-rows` chips; the predict time per row is timed apart.
2. Dispatch (end to end, `run_fewshot` with 2 workers against 1 process, on small forests):
   the extra CPU seconds (this process + its workers) of handing one fit to a worker, at two
   matrix sizes; as the slope over the number of repeats, so reading the table is not counted.
3. The model: fit time log-log interpolated between the timed sizes, extrapolated above the
   largest with the slope of the last two (printed, with a check that predicts the largest
   size from the smaller ones); + predict time x rows scored; + dispatch cost per fit.
4. The projection: every fit of the protocol (selection on validation, then train sizes x
   repeats, on the test split) for every AOI x source x task x feature set of the shape asked.

Works on older versions of eoclip too (the fit function and the selection cap are looked up),
so today's and yesterday's projections come from the same bench.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from fewshot_tables import synthetic_matrix, write_table  # noqa: E402

from eoclip.fewshot import DEFAULT_GRIDS, PAPER_RF, FewshotConfig, run_fewshot  # noqa: E402
from eoclip.fewshot.heads import make_head  # noqa: E402

PAPER_AOIS = {
    "conus": 167_000,
    "middle_east": 163_000,
    "pakistan_india": 147_000,
    "china": 285_000,
    "south_america": 83_000,
}
PAPER_SIZES = (5, 10, 100, 250, 500, 1000, 5000, 20000)


def _fit_function(X: np.ndarray, labels: np.ndarray, split: np.ndarray):
    """`fit(params, n, seed) -> seconds` through the installed eoclip's own per-fit code."""
    try:  # this version: the matrix and the rows of one task
        from eoclip.fewshot.data import group_rows
        from eoclip.fewshot.fits import evaluate

        rows = group_rows(labels, split, 0)
        try:  # a FitPlan bundles head, parameters and sampler
            from eoclip.fewshot.fits import FitPlan

            def run(params, n, seed):
                return evaluate(X, rows, FitPlan("rf", params, 100), str(n), n, 0, seed)
        except ImportError:

            def run(params, n, seed):
                return evaluate(X, rows, "rf", params, str(n), n, 0, seed, 100)
    except ImportError:  # eoclip <= 2028023: GroupData and run._evaluate
        from eoclip.fewshot.data import prepare_group
        from eoclip.fewshot.run import _evaluate

        data = prepare_group(labels, split, X, 0)

        def run(params, n, seed):
            return _evaluate(data, "rf", params, str(n), n, 0, seed, 100)

    def fit(params, n, seed=0):
        t0 = time.process_time()
        run(params, n, seed)
        return time.process_time() - t0

    return fit


def time_fits(width: int, sizes: dict, eval_rows: int, seed: int = 0) -> dict:
    """CPU seconds of fit+score per (grid entry, n) and predict seconds per row, one width."""
    n_train = max(max(s) for s in sizes.values())
    n = n_train + eval_rows
    blocks, labels = synthetic_matrix(n, (width,), seed=seed)
    X = blocks[0]
    split = np.array(["train"] * n_train + ["test"] * eval_rows)
    fit = _fit_function(X, labels["label_tree"], split)
    out = {"width": width, "eval_rows": eval_rows, "fits": {}, "predict_per_row": {}}
    y = (labels["label_tree"] > np.median(labels["label_tree"][:n_train])).astype(int)
    for key, ns in sizes.items():
        params = json.loads(key)
        times = {}
        for size in ns:
            reps = 3 if size <= 1000 else 1  # short fits: median of three
            times[size] = float(np.median([fit(params, size, s) for s in range(reps)]))
            print(f"  width {width} {key} n={size}: {times[size]:.2f} s", flush=True)
        out["fits"][key] = times
        model = make_head("rf", params, 0, 5000).fit(X[:5000], y[:5000])
        t0 = time.process_time()
        model.predict(X[n_train:])
        out["predict_per_row"][key] = (time.process_time() - t0) / eval_rows
    return out


def _cpu_seconds() -> float:
    """CPU time of this process and of its live children (the local workers)."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:  # a worker that just exited
            pass
    return total


def dispatch_cost(chips: list[int], repeats: tuple[int, int], width: int, workdir: str) -> dict:
    """CPU seconds per fit of handing fits to 2 local workers, beyond the fit itself.

    The fits are small forests on the whole train split (~0.5 s each): long enough that
    joblib hands them over one at a time, as it does the real fits (it batches fits that
    take milliseconds, which would hide a per-dispatch cost). CPU time of this process and
    its workers, not wall time, so other load on the machine does not count.
    """
    small = ({"n_estimators": 10, "max_depth": 2},)
    out = {}
    for n in chips:
        path = write_table(f"{workdir}/dispatch_{n}.parquet", n, dims=(width // 3,) * 3)
        per_fit = {}
        for jobs in (1, 2):

            def cfg(r, jobs=jobs):
                return FewshotConfig(
                    grid=small,
                    train_sizes=(),
                    repeats=r,
                    tasks=("tree",),
                    features=("concat",),
                    n_jobs=jobs,
                    progress=False,
                )

            run_fewshot({"s": path}, cfg(1))  # start the worker pool before timing
            cpu = []
            for r in repeats:
                c0 = _cpu_seconds()
                run_fewshot({"s": path}, cfg(r))
                cpu.append(_cpu_seconds() - c0)
            # one fit per repeat (size "all"); the slope leaves out reading the table
            per_fit[jobs] = (cpu[1] - cpu[0]) / (repeats[1] - repeats[0])
        overhead = max(0.0, per_fit[2] - per_fit[1])
        out[n * width * 4] = {
            "chips": n,
            "serial_cpu_s": per_fit[1],
            "two_workers_cpu_s": per_fit[2],
            "overhead_core_s": overhead,
        }
        print(
            f"  dispatch, {n} chips x {width}: {per_fit[1]:.3f} CPU s/fit in one process, "
            f"{per_fit[2]:.3f} with 2 workers -> overhead {overhead:.3f} core-s/fit",
            flush=True,
        )
    return out


class CostModel:
    """Fit seconds from timed sizes; predict and dispatch costs per fit."""

    def __init__(self, timings: list[dict], dispatch: dict) -> None:
        for d in timings:  # sizes are int keys (strings after a JSON round trip)
            d["fits"] = {k: {int(n): t for n, t in v.items()} for k, v in d["fits"].items()}
        self.t = {int(d["width"]): d for d in timings}
        pts = sorted((float(b), v["overhead_core_s"]) for b, v in dispatch.items())
        self.dispatch_pts = pts

    def fit_seconds(self, width: int, params: dict, n: int) -> float:
        d = self.t[width]
        key = json.dumps(params, sort_keys=True)
        pts = sorted(d["fits"][key].items())
        ns = np.array([float(k) for k, _ in pts])
        ts = np.array([max(v - d["predict_per_row"][key] * d["eval_rows"], 1e-4) for _, v in pts])
        if n <= ns[0]:
            return float(ts[0])
        if n <= ns[-1]:
            return float(np.exp(np.interp(np.log(n), np.log(ns), np.log(ts))))
        return float(ts[-1] * (n / ns[-1]) ** self.slope(width, params))

    def slope(self, width: int, params: dict) -> float:
        """Exponent k of t ~ n^k between the two largest timed sizes."""
        d = self.t[width]["fits"][json.dumps(params, sort_keys=True)]
        (n1, t1), (n2, t2) = sorted((float(k), v) for k, v in d.items())[-2:]
        return float(np.log(t2 / t1) / np.log(n2 / n1))

    def predict_seconds(self, width: int, params: dict, rows: int) -> float:
        return self.t[width]["predict_per_row"][json.dumps(params, sort_keys=True)] * rows

    def dispatch_seconds(self, nbytes: float) -> float:
        (b1, o1), (b2, o2) = self.dispatch_pts[0], self.dispatch_pts[-1]
        return max(0.0, o1 + (o2 - o1) * (nbytes - b1) / (b2 - b1)) if b2 > b1 else o1


def _plan(sizes, n_split):
    return [s for s in sorted(set(sizes)) if s < n_split] + [n_split]


def project(model: CostModel, args, grid, select_cap, repeats_all=None) -> dict:
    """Core-seconds of the grid, split into selection, protocol fits, predictions, dispatch."""
    tot = {
        "selection": 0.0,
        "fits": 0.0,
        "predict": 0.0,
        "dispatch": 0.0,
        "n_fits": 0,
        "longest_fit_s": 0.0,
    }
    mult = args.sources * args.tasks
    for n_aoi in args.aoi_chips.values():
        n_tr = round(args.train_frac * n_aoi)
        n_val = round(args.val_frac * n_aoi)
        n_te = n_aoi - n_tr - n_val
        for w in args.widths:
            disp = model.dispatch_seconds(n_aoi * w * 4)
            if len(grid) > 1:
                n_sel = n_tr if select_cap is None else min(n_tr, select_cap)
                for p in grid:
                    tot["selection"] += mult * (
                        model.fit_seconds(w, p, n_sel) + model.predict_seconds(w, p, n_val) + disp
                    )
                    tot["n_fits"] += mult
            for n in _plan(args.train_sizes, n_tr):
                reps = args.repeats if n < n_tr or repeats_all is None else repeats_all
                f = model.fit_seconds(w, PAPER_RF, n)
                tot["longest_fit_s"] = max(tot["longest_fit_s"], f)
                tot["fits"] += mult * reps * f
                tot["predict"] += mult * reps * model.predict_seconds(w, PAPER_RF, n_te)
                tot["dispatch"] += mult * reps * disp
                tot["n_fits"] += mult * reps
    tot["core_hours"] = (tot["selection"] + tot["fits"] + tot["predict"] + tot["dispatch"]) / 3600
    return tot


def _aois(text: str) -> dict:
    return {k: int(v) for k, v in (p.split("=") for p in text.split(","))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--aoi-chips",
        type=_aois,
        default=PAPER_AOIS,
        help="name=chips,... (default: the paper's five AOIs)",
    )
    ap.add_argument("--train-frac", type=float, default=0.6)
    ap.add_argument("--val-frac", type=float, default=0.2)
    ap.add_argument("--sources", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--widths", default="768,768,768,2304", help="feature widths of the sets")
    ap.add_argument("--train-sizes", default=",".join(map(str, PAPER_SIZES)))
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument(
        "--repeats-all", type=int, default=None, help="repeats at size 'all' (default: --repeats)"
    )
    ap.add_argument("--cores", type=int, default=64, help="for the wall-clock projection")
    ap.add_argument("--eval-rows", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="small timed sizes (smoke test)")
    ap.add_argument("--json", help="write timings and projection here")
    ap.add_argument("--fits-from", help="take the fit timings from this --json of an earlier run")
    ap.add_argument("--dispatch-from", help="take the dispatch costs from this --json")
    args = ap.parse_args()
    args.widths = [int(w) for w in args.widths.split(",")]
    args.train_sizes = tuple(int(s) for s in args.train_sizes.split(","))
    grid = DEFAULT_GRIDS["rf"]
    select_cap = getattr(FewshotConfig(), "select_max_train", None)
    big = 2000 if args.quick else 20_000
    paper = [5, 100, 1000, 5000, big] if not args.quick else [5, 100, 500, big]
    others = [1000, 5000, big] if not args.quick else [500, big]
    sizes = {json.dumps(p, sort_keys=True): (paper if p == PAPER_RF else others) for p in grid}
    eval_rows = 2000 if args.quick else args.eval_rows
    print(
        f"eoclip at {os.path.dirname(__import__('eoclip').__file__)}; selection cap "
        f"{select_cap}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    t0 = time.perf_counter()
    if args.fits_from:  # reuse the fit timings of an earlier run (same machine, same code)
        timings = json.loads(Path(args.fits_from).read_text())["timings"]
    else:
        timings = [time_fits(w, sizes, eval_rows) for w in sorted(set(args.widths))]
    if args.dispatch_from:
        dispatch = json.loads(Path(args.dispatch_from).read_text())["dispatch"]
    else:
        work = tempfile.mkdtemp(prefix="fewshot_cost-")
        try:
            chips = [2000, 6000] if args.quick else [5000, 20000]
            dispatch = dispatch_cost(
                chips, (2, 6) if args.quick else (4, 12), max(args.widths), work
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    model = CostModel(timings, dispatch)
    report(model, args, grid, select_cap, timings, dispatch, time.perf_counter() - t0)


def report(model, args, grid, select_cap, timings, dispatch, seconds) -> None:
    """Print the model's exponents, its check, and the projection(s)."""
    print("\nfit time exponents (t ~ n^k above the largest timed size):")
    for w in sorted(set(args.widths)):
        for p in grid:
            print(f"  width {w} {p}: k = {model.slope(w, p):.2f}")
    for w in sorted(set(args.widths)):  # predict the largest timed size from the smaller ones
        d = model.t[w]["fits"][json.dumps(PAPER_RF, sort_keys=True)]
        ns = sorted(d)
        sub = CostModel(
            [
                {
                    **model.t[w],
                    "fits": {json.dumps(PAPER_RF, sort_keys=True): {k: d[k] for k in ns[:-1]}},
                }
            ],
            dispatch,
        )
        guess = sub.fit_seconds(w, PAPER_RF, ns[-1])
        real = model.fit_seconds(w, PAPER_RF, ns[-1])
        print(
            f"  check width {w}: n={ns[-1]} extrapolated from n<={ns[-2]}: {guess:.1f} s, "
            f"timed {real:.1f} s ({100 * (guess / real - 1):+.0f} %)"
        )
    shape = (
        f"{len(args.aoi_chips)} AOIs ({sum(args.aoi_chips.values())} chips), "
        f"{args.sources} sources x {args.tasks} tasks x widths {args.widths}, sizes "
        f"{args.train_sizes} + all, {args.repeats} repeats, grid of {len(grid)}"
    )
    print(f"\nprojection for {shape}:")
    variants = [(select_cap, args.repeats_all)]
    if select_cap is not None:  # what the selection cap and fewer 'all' repeats each save
        variants += [(None, args.repeats_all)]
        if args.repeats_all is not None:
            variants += [(select_cap, None), (None, None)]
    result = {}
    for cap, rep_all in variants:
        p = project(model, args, grid, cap, rep_all)
        label = "selection on the whole train split" if cap is None else f"selection on {cap}"
        label += f", {rep_all if rep_all is not None else args.repeats} repeats at 'all'"
        print(
            f"  {label}: {p['core_hours']:.1f} core-hours = selection "
            f"{p['selection'] / 3600:.1f} + fits {p['fits'] / 3600:.1f} + predict "
            f"{p['predict'] / 3600:.1f} + dispatch {p['dispatch'] / 3600:.1f}; {p['n_fits']} "
            f"fits; on {args.cores} cores {60 * p['core_hours'] / args.cores:.0f} min "
            f"(longest single fit {p['longest_fit_s'] / 60:.1f} min)"
        )
        result[f"select={cap},repeats_all={rep_all}"] = p
    print(f"bench took {seconds:.0f} s; load average {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"timings": timings, "dispatch": dispatch, "projection": result},
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
