"""An imported pixel-embedding product next to the demo's embeddings, end to end.

    python bench/compare_imported.py --demo demo_out

There is no AlphaEarth or TESSERA data offline, so this writes a stand-in with the same
shape over the demo's synthetic world: per AOI one int8 GeoTIFF in the AOI's UTM zone (the
chips' own grid), 64 bands, AlphaEarth's coding (unit vectors, sign(e) sqrt(|e|) * 127.5,
nodata -128). Each pixel's vector is a fixed random projection of its normalised S2 and S1
channels (18 values) through tanh, so the "product" knows the pixels but was never trained.
Then, timed:

1. `import_embeddings` pools the rasters over every chip (AlphaEarth dequantisation);
2. `run_fewshot` scores it with the demo's few-shot settings into `<demo>/fewshot/pixel_product`
   (same seeds, so the same train samples as the demo's sources);
3. `build_report` redraws `<demo>/report` with it beside the demo's embeddings and baselines.

Prints the accuracy table (concatenations; the product's own vector) and the timings.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.transform import from_origin

from eoclip.data.store import ChipStore
from eoclip.demo import DemoConfig
from eoclip.embeddings.importing import ImportConfig, import_embeddings
from eoclip.fewshot import read_results, run_fewshot, summarize
from eoclip.report import ReportConfig, build_report, summary_table

CHIP_M = 4480.0
_ID = re.compile(r"_(\d{4,5})_E(\d+)_N(\d+)$")


def _pixel_features(store: ChipStore, pos: np.ndarray) -> np.ndarray:
    """float32 (n, 18, H, W) normalised S2 and S1 channels; NaN where missing."""
    parts = []
    for mod in ("s2rgbm", "s1grdm"):
        m = store.modalities[mod]
        valid = store.valid_mask(mod)[pos]
        stored = np.asarray(store.arrays(mod)["pixels"].get_orthogonal_selection((pos,)))
        x = np.stack([m.decode(stored[i], valid[i]) for i in range(len(pos))])
        parts.append(
            np.stack(
                [m.normalize(x[:, c], [m.channels[c]] * len(pos)) for c in range(x.shape[1])],
                axis=1,
            )
        )
    return np.concatenate(parts, axis=1)


def _encode(feat: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(18, H, W) -> int8 (64, H, W) in AlphaEarth's coding; -128 where a channel is missing."""
    x = np.moveaxis(feat, 0, -1)  # (H, W, 18)
    with np.errstate(invalid="ignore"):  # missing pixels are NaN here and -128 below
        e = np.tanh(x @ W)
        e /= np.linalg.norm(e, axis=-1, keepdims=True)
        q = np.clip(np.round(np.sign(e) * np.sqrt(np.abs(e)) * 127.5), -127, 127)
        q = np.nan_to_num(q).astype(np.int8)
    q[np.isnan(x).any(axis=-1)] = -128
    return np.moveaxis(q, -1, 0)


def write_product(store: ChipStore, out: Path, dim: int = 64, seed: int = 0) -> list[str]:
    """One GeoTIFF per AOI; returns their paths."""
    W = np.random.default_rng(seed).normal(size=(18, dim)) / np.sqrt(18)
    px = store.chip_px
    paths = []
    for aoi in sorted(store.index["aoi"].unique()):
        pos = np.flatnonzero(store.index["aoi"].to_numpy() == aoi)
        keys = np.array(
            [[int(g) for g in _ID.search(c).groups()] for c in store.index["chip_id"].iloc[pos]]
        )
        epsg, cols, rows = keys[0, 0], keys[:, 1], keys[:, 2]
        c0, r1 = cols.min(), rows.max() + 1
        width, height = (cols.max() + 1 - c0) * px, (r1 - rows.min()) * px
        data = np.full((dim, height, width), -128, dtype=np.int8)
        for lo in range(0, len(pos), 128):
            feats = _pixel_features(store, pos[lo : lo + 128])
            for f, c, r in zip(feats, cols[lo : lo + 128], rows[lo : lo + 128], strict=True):
                y, x = (r1 - 1 - r) * px, (c - c0) * px  # raster rows run north to south
                data[:, y : y + px, x : x + px] = _encode(f, W)
        path = out / f"pixel_product_{aoi}.tif"
        transform = from_origin(c0 * CHIP_M, r1 * CHIP_M, CHIP_M / px, CHIP_M / px)
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=width,
            height=height,
            count=dim,
            dtype="int8",
            crs=f"EPSG:{epsg}",
            transform=transform,
            nodata=-128,
            tiled=True,
            blockxsize=256,
            blockysize=256,
            compress="deflate",
        ) as dst:
            dst.write(data)
        paths.append(str(path))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", required=True, help="an `eoclip demo` output folder")
    ap.add_argument("--dim", type=int, default=64)
    args = ap.parse_args()
    demo = Path(args.demo)
    store = ChipStore.open(demo / "world")
    out = demo / "pixel_product"
    out.mkdir(exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.2f}")
    t = time.perf_counter()
    tifs = write_product(store, out, args.dim)
    print(f"wrote {len(tifs)} rasters in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    table = import_embeddings(
        ImportConfig(
            sources=tuple(tifs),
            store=str(demo / "world"),
            product="pixel_product",
            version="synthetic-v1",
            out=str(demo / "embeddings" / "pixel_product.parquet"),
            dequantize="aef",
            overwrite=True,
            progress=False,
        )
    )
    print(f"import-embeddings: {len(store)} chips in {time.perf_counter() - t:.1f} s -> {table}")
    fcfg = DemoConfig.read(demo).fewshot_config()
    fcfg.progress = False
    t = time.perf_counter()
    run_fewshot(
        {"pixel_product": table},
        fcfg,
        out_dir=str(demo / "fewshot" / "pixel_product"),
        overwrite=True,
    )
    print(f"fewshot: {time.perf_counter() - t:.1f} s")
    report = build_report(
        ReportConfig(
            out=str(demo / "report"),
            run=str(demo),
            title="eoclip demo: synthetic world",
            baselines=("stats", "untrained", "pixel_product"),
        )
    )
    print(f"report: {report}")
    results = [read_results(str(p)) for p in sorted((demo / "fewshot").rglob("results.parquet"))]
    summary = summarize(pd.concat(results, ignore_index=True))
    table = summary_table(
        summary,
        ["pretrained", "stats", "untrained", "pixel_product"],
        sizes=("10", "100", "500", "all"),
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
