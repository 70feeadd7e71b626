"""Peak memory of `eoclip fewshot` and `eoclip tsne` against the number of AOIs in a table.

    .venv/bin/python bench/fewshot_memory.py [--chips-per-aoi 12000] [--n-jobs 1,2]

Writes two synthetic EmbeddingTables (3 modalities x 768-d, so `concat` is 2304-d) with the
same AOI size, one with 1 AOI and one with 5, and runs few-shot (every feature set, one task,
train sizes 10 and 100 + all, 2 repeats, the paper's forest) and t-SNE on each in a fresh
process. Prints that process's peak RSS (VmHWM, reset after the imports), its RSS right after
the imports, and the
difference in units of ONE AOI's concat matrix (chips x 2304 x 4 bytes). Bounded memory means
the 5-AOI peak equals the 1-AOI peak and stays under 3 matrices above the imports.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def _status_mb(key: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Start VmHWM afresh (Linux), so a transient peak of the imports does not hide ours."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def child(kind: str, table: str, n_jobs: int, out: str) -> None:
    """Run one job in this (fresh) process and print its memory as JSON."""
    from eoclip.fewshot import PAPER_RF, FewshotConfig, run_fewshot
    from eoclip.tsne import TsneConfig, run_tsne

    base = _status_mb("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    if kind == "fewshot":
        cfg = FewshotConfig(
            grid=(PAPER_RF,),
            train_sizes=(10, 100),
            repeats=2,
            tasks=("tree",),
            n_jobs=n_jobs,
            progress=False,
        )
        run_fewshot({"s": table}, cfg, out_dir=out)
    else:
        run_tsne({"s": table}, TsneConfig(max_points=2000, n_iter=100, progress=False))
    print(
        json.dumps(
            {"base_mb": base, "peak_mb": _status_mb("VmHWM"), "seconds": time.perf_counter() - t0}
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chips-per-aoi", type=int, default=12_000)
    ap.add_argument("--n-jobs", default="1,2")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, table, n_jobs, out = args.child
        return child(kind, table, int(n_jobs), out)
    from fewshot_tables import write_table

    n = args.chips_per_aoi
    matrix_mb = n * 2304 * 4 / 2**20
    print(
        f"load average {os.getloadavg()[0]:.2f}; one AOI's concat matrix: {n} x 2304 float32 "
        f"= {matrix_mb:.0f} MB"
    )
    with tempfile.TemporaryDirectory(prefix="fewshot_memory-") as tmp:
        tables = {
            k: write_table(f"{tmp}/{k}aoi.parquet", n, tuple(f"aoi_{i}" for i in range(k)))
            for k in (1, 5)
        }
        jobs = [("fewshot", int(j)) for j in args.n_jobs.split(",")] + [("tsne", 1)]
        print(
            f"{'job':16s} {'AOIs':>4s} {'file MB':>8s} {'imports MB':>10s} {'peak MB':>8s} "
            f"{'above':>7s} {'matrices':>8s} {'seconds':>7s}"
        )
        for kind, n_jobs in jobs:
            for k, path in tables.items():
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    kind,
                    path,
                    str(n_jobs),
                    f"{tmp}/out_{kind}_{k}_{n_jobs}",
                ]
                res = subprocess.run(cmd, capture_output=True, text=True, check=True)
                r = json.loads(res.stdout.strip().splitlines()[-1])
                above = r["peak_mb"] - r["base_mb"]
                name = f"{kind} n_jobs={n_jobs}" if kind == "fewshot" else kind
                print(
                    f"{name:16s} {k:4d} {os.path.getsize(path) / 2**20:8.0f} "
                    f"{r['base_mb']:10.0f} {r['peak_mb']:8.0f} {above:7.0f} "
                    f"{above / matrix_mb:8.2f} {r['seconds']:7.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
