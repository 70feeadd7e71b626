"""Ingest throughput of the M3LEO path: chips/s and peak memory for 1, 2, ... worker processes.

Writes (once, seeded) a sample of the authors' download in its real nested layout
(``bench/m3leo_sample.py``: 448 x 448 px files, 36-band S2, 24-band S1, GUNW, three label
rasters, two AOIs), ingests it at 448 px with each worker count into a fresh store, and prints
chips/s (wall clock, pool start included), the speed-up over one worker, the peak resident
memory of each worker process, the CPU seconds the workers spent per chip (and how many cores
they kept busy: on a shared machine wall-clock rates depend on the others' load, CPU time much
less), chips/s "in tasks" (over the slowest worker's time inside its tasks: without the pool's
start, ~1.5 s of interpreter and imports that a 256-chip sample does not amortise and 845 K
chips do), and the hours 845 K chips would take on 64 cores at the measured per-worker rate (and,
in brackets, at the measured CPU seconds per chip, one core per worker). A task owns one store
shard, so the timed runs use shards of
``--shard-chips`` (32: 8 tasks for 256 chips); a last run with one worker writes all chips
into one shard of ``--chips`` chips, the memory of the default 256-chip shards.

    python bench/ingest_throughput.py --chips 256 --workers 1,2 [--rounds 2] [--dir DIR]

Before the timed runs every file of the sample is read once, so that no run pays for a cold
page cache (the 256-chip sample is 6.9 GB: read from disk, the first run of a series measured
2.93 chips/s against 4.41 for the same run warm). ``--rounds N`` runs the worker counts N
times, alternating, and the summary compares the best run of each count (the machine's load
varies from minute to minute).

``--baseline-src DIR`` also times an older eoclip (its ``src`` folder, e.g. from
``git archive 2028023 src | tar -x -C /tmp/eoclip_old``) on the first AOI of the same sample,
through that version's API (``M3LEOConfig(root=<stem folder>, store=..., chips=..., splits=...)``),
in one process.

Run benchmarks one at a time on a shared machine (``flock LOCKFILE python ...``) and note the
load average it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from m3leo_sample import write_sample  # noqa: E402

from eoclip.ingest import ExecutorSpec, M3LEOConfig, StoreSpec, ingest_m3leo  # noqa: E402

PAPER_CHIPS = 845_000
CORES = 64


def run(
    sample: Path,
    store: Path,
    workers: int,
    chip_px: int,
    engine: str,
    batch_size: int,
    shard_chips: int,
) -> dict:
    """One timed ingest into a fresh store."""
    shutil.rmtree(store, ignore_errors=True)
    load = os.getloadavg()[0]
    me = os.times()
    cpu_before = me.user + me.system  # the in-process (1 worker) run counts from here
    t0 = time.perf_counter()
    report = ingest_m3leo(
        M3LEOConfig(root=sample),
        StoreSpec(
            str(store),
            chip_px=chip_px,
            batch_size=batch_size,
            progress=False,
            shard_chips=shard_chips,
        ),
        ExecutorSpec(workers=workers, engine=engine),
    )
    seconds = time.perf_counter() - t0
    rss = sorted(report.worker_rss_mb.values())
    cpu = sum(
        v - (cpu_before if k == str(os.getpid()) else 0.0) for k, v in report.worker_cpu_s.items()
    )
    return {
        "workers": workers,
        "chips": report.chips_written,
        "seconds": round(seconds, 1),
        "chips_per_s": round(report.chips_written / seconds, 2),
        "worker_peak_rss_mb": rss,
        "worker_cpu_s_per_chip": round(cpu / max(report.chips_written, 1), 3),
        "cores_busy": round(cpu / seconds, 2),
        # in tasks only: the slowest process's time in them (no pool start, planning, commits)
        "chips_per_s_in_tasks": round(
            report.chips_written / max(report.worker_busy_s.values(), default=seconds), 2
        ),
        "coordinator_peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def warm_page_cache(root: Path) -> int:
    """Read every file under ``root`` once (into the page cache); returns the bytes read."""
    total = 0
    for f in sorted(root.rglob("*")):
        if f.is_file():
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 24):
                    total += len(chunk)
    return total


def codec_check(store: Path, n: int = 32) -> list[dict]:
    """Write the first ``n`` chips of each modality of ``store`` again with zarr's default zstd
    and with the store's lz4 + bit shuffle (same chunks and shards): ms per chip, ratio."""
    import tempfile

    import numpy as np
    import zarr
    from zarr.codecs import BloscCodec, ZstdCodec

    from eoclip.data.store import ChipStore

    src = ChipStore.open(store)
    rows = []
    for name in src.modalities:
        data = np.asarray(src.arrays(name)["pixels"][:n])
        for label, codec in (
            ("zstd (zarr default)", ZstdCodec(level=0)),
            ("lz4 + bitshuffle", BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")),
        ):
            best = float("inf")
            with tempfile.TemporaryDirectory() as tmp:
                for k in range(2):
                    arr = zarr.create_array(
                        f"{tmp}/{k}.zarr",
                        shape=data.shape,
                        dtype=data.dtype,
                        fill_value=0,
                        chunks=(1, 1, *data.shape[2:]),
                        shards=(256, 1, *data.shape[2:]),
                        compressors=codec,
                    )
                    t0 = time.perf_counter()
                    arr[:] = data
                    best = min(best, time.perf_counter() - t0)
                size = sum(
                    f.stat().st_size for f in Path(f"{tmp}/1.zarr").rglob("*") if f.is_file()
                )
            rows.append(
                {
                    "modality": name,
                    "dtype": str(data.dtype),
                    "codec": label,
                    "write_ms_per_chip": round(best * 1000 / len(data), 1),
                    "ratio": round(data.nbytes / size, 2),
                }
            )
    return rows


BASELINE = """
import json, resource, sys, time
from eoclip.ingest.m3leo import M3LEOConfig, ingest_m3leo
root, store, chips, splits, px = sys.argv[1:6]
t0 = time.perf_counter()
cfg = M3LEOConfig(root=root, store=store, chips=chips, splits=splits, chip_px=int(px),
                 progress=False)
report = ingest_m3leo(cfg)
seconds = time.perf_counter() - t0
print(json.dumps({"chips": report.chips_written, "seconds": round(seconds, 1),
                  "chips_per_s": round(report.chips_written / seconds, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                       1)}))
"""


def run_baseline(src: str, sample: Path, store: Path, chip_px: int) -> dict:
    """Time the older eoclip at ``src`` on the sample's first AOI (flat-layout call)."""
    import subprocess

    shutil.rmtree(store, ignore_errors=True)
    geojson = sorted(sample.glob("*.geojson"))[0]
    folder = geojson.with_suffix("")
    args = [str(folder), str(store), str(geojson), str(folder) + "_splits.csv", str(chip_px)]
    load = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, "-c", BASELINE, *args],
        env={**os.environ, "PYTHONPATH": src},
        capture_output=True,
        text=True,
        check=True,
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    shutil.rmtree(store, ignore_errors=True)
    return {**row, "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--chips", type=int, default=256, help="chips in the sample (>= 200 for the README)"
    )
    ap.add_argument("--chip-px", type=int, default=448)
    ap.add_argument("--workers", default="1,2", help="worker counts to measure, e.g. 1,2")
    ap.add_argument("--engine", default="local", choices=("local", "dask"))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--shard-chips",
        type=int,
        default=32,
        help="chips per store shard = per task in the timed runs (32: 8 tasks of the 256 chips)",
    )
    ap.add_argument("--rounds", type=int, default=1, help="run the worker counts this often")
    ap.add_argument("--no-memory-run", action="store_true", help="skip the one-shard memory run")
    ap.add_argument("--dir", default="/tmp/eoclip_bench", help="where the sample and the stores go")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the rows to this JSON file")
    ap.add_argument("--baseline-src", help="src folder of an older eoclip to time on the first AOI")
    args = ap.parse_args(argv)
    base = Path(args.dir)
    t0 = time.perf_counter()
    sample = write_sample(base / "sample", args.chips, args.chip_px, args.seed)
    print(
        f"sample: {args.chips} chips of {args.chip_px} px in {sample} "
        f"({time.perf_counter() - t0:.0f} s to write "
        f"or reuse); {os.cpu_count()} cores"
    )
    t0 = time.perf_counter()
    print(
        f"page cache: read {warm_page_cache(sample) / 2**30:.1f} GB "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    counts = [int(w) for w in args.workers.split(",")]
    rows = [
        run(
            sample,
            base / "bench.store",
            w,
            args.chip_px,
            args.engine,
            args.batch_size,
            args.shard_chips,
        )
        for _ in range(args.rounds)
        for w in counts
    ]
    one = rows[0]["chips_per_s"] / rows[0]["workers"]
    print(
        f"{'workers':>7} {'chips':>5} {'seconds':>7} {'chips/s':>7} {'in tasks':>8} "
        f"{'speed-up':>8} "
        f"{'cores busy':>10} "
        f"{'CPU s/chip':>10} {'peak RSS/worker MB':>18} {'h, 845K on 64 cores':>19} "
        f"{'load avg':>11}"
    )
    for r in rows:
        per_worker = r["chips_per_s"] / r["workers"]
        hours = PAPER_CHIPS / (per_worker * CORES) / 3600
        r["speedup"] = round(r["chips_per_s"] / (one * rows[0]["workers"]), 2)
        r["hours_845k_64_cores"] = round(hours, 2)
        r["hours_845k_64_cores_from_cpu"] = round(
            PAPER_CHIPS * r["worker_cpu_s_per_chip"] / CORES / 3600, 2
        )
        print(
            f"{r['workers']:>7} {r['chips']:>5} {r['seconds']:>7} {r['chips_per_s']:>7} "
            f"{r['chips_per_s_in_tasks']:>8} {r['speedup']:>8} "
            f"{r['cores_busy']:>10} {r['worker_cpu_s_per_chip']:>10} "
            f"{max(r['worker_peak_rss_mb']):>18.0f} "
            f"{hours:>8.2f} ({r['hours_845k_64_cores_from_cpu']:.2f} cpu) "
            f"{r['load_before']:>5}/{r['load_after']:<5}"
        )
    if args.rounds > 1:
        for key, what in (("chips_per_s", "wall clock"), ("chips_per_s_in_tasks", "in tasks")):
            best = {w: max(r[key] for r in rows if r["workers"] == w) for w in counts}
            print(
                f"best of {args.rounds} rounds, {what}: "
                + ", ".join(
                    f"{w} worker(s) {best[w]} chips/s ({best[w] / best[counts[0]]:.2f}x)"
                    for w in best
                )
            )
            rows.append({"best_of_rounds": args.rounds, "measure": key, "chips_per_s": best})
    if not args.no_memory_run:
        mem = run(
            sample, base / "bench.store", 1, args.chip_px, args.engine, args.batch_size, args.chips
        )
        print(
            f"memory run, 1 worker, one shard of {args.chips} chips: peak RSS "
            f"{max(mem['worker_peak_rss_mb']):.0f} MB, "
            f"{mem['chips_per_s']} chips/s, load {mem['load_before']}/{mem['load_after']}"
        )
        rows.append({"memory_run": True, **mem})
        for c in codec_check(base / "bench.store"):
            print(
                f"  codec {c['modality']:>7} {c['dtype']:>6} {c['codec']:>20}: write "
                f"{c['write_ms_per_chip']:>6} "
                f"ms/chip, compression ratio {c['ratio']}"
            )
            rows.append({"codec_check": True, **c})
    if args.baseline_src:
        old = run_baseline(args.baseline_src, sample, base / "baseline.store", args.chip_px)
        print(
            f"baseline {args.baseline_src}: {old['chips']} chips (first AOI) in {old['seconds']} "
            "s = "
            f"{old['chips_per_s']} chips/s, peak RSS {old['peak_rss_mb']:.0f} MB, load "
            f"{old['load_before']}/{old['load_after']}"
        )
        rows.append({"baseline": args.baseline_src, **old})
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    shutil.rmtree(base / "bench.store", ignore_errors=True)
    (base / "bench.store.ingest.json").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
