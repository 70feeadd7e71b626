"""Does float8 change what the model learns or exports? Measured on an `eoclip demo` output.

    .venv/bin/python bench/fp8_quality.py --demo demo_out --out /tmp/fp8q

Against the demo's own float32 run (`<demo>/runs/demo`, its `mean` embeddings and few-shot
summary), on the demo's world, with the demo's settings:

1. float8 training: the `demo` preset with `fp8=true` (same seed), exported in float32;
2. float8 export: the demo's float32 checkpoint exported with `fp8=true` (cosine of every
   embedding to the demo's own);
3. the spread between two float32 runs: the preset with another seed (`--other-seed`), and
   float8 training with that seed too.

Each is scored with the demo's few-shot protocol; the table gives the final validation loss,
mean few-shot accuracy (all rows and the concatenation) and the mean absolute difference per
summary row to the demo's (compare the two seed-1 rows with each other). Float8 products are
emulated on a CPU (slow, same numerics as the tensor cores up to accumulation order); on a GPU
they run for real.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import typer

from eoclip.demo import DemoConfig
from eoclip.embeddings.export import EmbedConfig, embed_store
from eoclip.embeddings.table import embedding_matrix, read_embedding_table
from eoclip.fewshot import run_fewshot
from eoclip.train import load_pretrain_config, pretrain

KEY = ["aoi", "task", "features", "train_size"]


def _train(demo: Path, out: Path, name: str, device: str, **values) -> float:
    cfg = {"store": str(demo / "world"), "out": str(out / "runs"), "name": name, "seed": 0}
    cfg.update(device=device, progress=False, **values)
    t0 = time.perf_counter()
    result = pretrain(load_pretrain_config("demo", cfg), resume=True)
    losses = [round(h["val_loss"], 4) for h in result.history if "val_loss" in h]
    print(f"pretrain {name}: {time.perf_counter() - t0:.1f} s, val loss per validation {losses}")
    return result.best_val_loss


def _embed(checkpoint: Path, demo: Path, out: Path, device: str, fp8: bool) -> Path:
    t0 = time.perf_counter()
    cfg = EmbedConfig(
        checkpoint=str(checkpoint),
        store=str(demo / "world"),
        out=str(out),
        channels="mean",
        batch_size=512,
        device=device,
        overwrite=True,
        progress=False,
        fp8=fp8,
    )
    embed_store(cfg)
    print(f"embed {out.name}: {time.perf_counter() - t0:.1f} s")
    return out


def _fewshot(demo: Path, table: Path, out: Path) -> pd.DataFrame:
    fcfg = DemoConfig.read(demo).fewshot_config()
    fcfg.progress = False
    run_fewshot({"pretrained": str(table)}, fcfg, out_dir=str(out))
    return pd.read_csv(out / "summary.csv")


def _cosines(ref: Path, got: Path) -> str:
    a_gdf, b_gdf = read_embedding_table(ref)[0], read_embedding_table(got)[0]
    parts = []
    for mod in ("s2rgbm", "s1grdm", "gunw"):
        a, b = embedding_matrix(a_gdf, mod)[0], embedding_matrix(b_gdf, mod)[0]
        ok = ~np.isnan(a).any(axis=1)
        cos = (a[ok] * b[ok]).sum(1) / np.linalg.norm(a[ok], axis=1) / np.linalg.norm(b[ok], axis=1)
        parts.append(f"{mod} min {cos.min():.5f} median {np.median(cos):.5f}")
    return "; ".join(parts)


def main(
    demo: Path = typer.Option(..., help="An `eoclip demo` output folder (world, runs, ...)."),
    out: Path = typer.Option(Path("fp8_quality"), help="Folder for the runs and tables."),
    other_seed: int = typer.Option(1, help="Seed of the second float32 run (0: skip it)."),
    device: str = typer.Option("cpu", help="cpu (emulated float8) or cuda."),
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ref_summary = pd.read_csv(demo / "fewshot" / "pretrained" / "summary.csv")
    ref_metrics = [json.loads(line) for line in open(demo / "runs" / "demo" / "metrics.jsonl")]
    ref_loss = [r["val_loss"] for r in ref_metrics if r.get("kind") == "epoch" and "val_loss" in r]
    rows = [("float32, seed 0 (the demo's run)", ref_loss[-1], ref_summary)]

    loss = _train(demo, out, "fp8", device, fp8=True)
    table = _embed(out / "runs" / "fp8" / "best", demo, out / "trained_fp8.parquet", device, False)
    rows.append(("float8 training, float32 export", loss, _fewshot(demo, table, out / "fs_train")))
    ref_table = demo / "embeddings" / "pretrained.parquet"
    table = _embed(demo / "runs" / "demo" / "best", demo, out / "export_fp8.parquet", device, True)
    print(f"float8 export against the demo's: cosine {_cosines(ref_table, table)}")
    rows.append(("demo's model, float8 export", None, _fewshot(demo, table, out / "fs_export")))
    if other_seed:
        loss = _train(demo, out, f"seed{other_seed}", device, seed=other_seed)
        table = _embed(
            out / "runs" / f"seed{other_seed}" / "best", demo, out / "seed.parquet", device, False
        )
        rows.append((f"float32, seed {other_seed}", loss, _fewshot(demo, table, out / "fs_seed")))
        loss = _train(demo, out, f"fp8seed{other_seed}", device, fp8=True, seed=other_seed)
        table = _embed(
            out / "runs" / f"fp8seed{other_seed}" / "best",
            demo,
            out / "fp8seed.parquet",
            device,
            False,
        )
        summary = _fewshot(demo, table, out / "fs_fp8seed")
        rows.append((f"float8 training, seed {other_seed}, float32 export", loss, summary))

    print("| run | final val loss | accuracy, all rows | concat | mean abs. diff per row |")
    print("|---|---|---|---|---|")
    for name, val_loss, summary in rows:
        m = ref_summary.merge(summary, on=KEY, suffixes=("_ref", ""))
        diff = (m["accuracy_mean"] - m["accuracy_mean_ref"]).abs().mean()
        concat = m.loc[m["features"] == "concat", "accuracy_mean"].mean()
        loss_text = f"{val_loss:.4f}" if val_loss is not None else "-"
        print(
            f"| {name} | {loss_text} | {m['accuracy_mean'].mean():.4f} | {concat:.4f} | "
            f"{diff:.4f} ({len(m)} rows) |"
        )


if __name__ == "__main__":
    typer.run(main)
