"""Where is the task information lost? Probes on features from inside the towers.

For a pretrained checkpoint (and an untrained model of the same shape) every chip's channels
go through each tower; `eoclip.embeddings.probe` keeps the patch-token mean and the class token
after every block, the pooled vector and the projected embedding, each combined over a chip's
channels by `mean` or `stack`. A forest (the paper's, at `--labels` labels) and a linear probe
(logistic regression on the whole train split) are fitted per modality and on the
concatenation, and scored on the VALIDATION split (few-shot protocol of `eoclip.fewshot`,
mean over AOIs, tasks and repeats).

    python bench/probe_layers.py --world demo_out/world --checkpoint demo_out/runs/demo/best \
        [--layers patch1,patch3,cls3,pooled,proj] [--labels 100] [--repeats 3] [--out probe.csv]
"""

from __future__ import annotations

import argparse
import logging
import time

import geopandas as gpd
import pandas as pd

from eoclip.data.store import ChipStore
from eoclip.embeddings.export import load_embedder
from eoclip.embeddings.probe import AGGREGATIONS, probe_features
from eoclip.train.selection import fewshot_score

log = logging.getLogger("probe_layers")


def _frame(store: ChipStore, feats: dict, layer: str, agg: str, mods: list[str]) -> pd.DataFrame:
    """An in-memory EmbeddingTable of one (layer, aggregation): `emb_<m>` per modality."""
    idx = store.index
    keep = ["chip_id", "geometry", "aoi", "split", *[c for c in idx if c.startswith("label_")]]
    gdf = gpd.GeoDataFrame(idx[keep].copy(), geometry="geometry", crs=idx.crs)
    for m in mods:
        X = feats[(layer, m, agg)]
        gdf[f"emb_{m}"] = [None if pd.isna(row).all() else row for row in X]
    gdf.attrs["eoclip"] = {
        "modalities": mods,
        "checkpoint_hash": f"probe-{layer}-{agg}",
        "nan_means_missing": agg == "stack",  # NaN blocks of channels a chip lacks
    }
    return gdf


def probe(
    store: ChipStore,
    checkpoint: str,
    untrained: bool,
    layers: list[str],
    labels: int,
    repeats: int,
    features: tuple[str, ...],
    n_jobs: int,
) -> pd.DataFrame:
    """Scores of every (layer, aggregation) of one model; a tidy frame."""
    model, _, _ = load_embedder(checkpoint, untrained=untrained)
    t0 = time.time()
    _, feats = probe_features(model, store)
    log.info(
        "features of %s model: %.0f s", "untrained" if untrained else "pretrained", time.time() - t0
    )
    mods = list(model.modalities)
    rows = []
    for layer in layers:
        for agg in AGGREGATIONS:
            frame = _frame(store, feats, layer, agg, mods)
            forest = fewshot_score({"x": frame}, "val", (labels,), repeats, features, n_jobs=n_jobs)
            forest = forest[forest["train_size"] == str(labels)].assign(probe=f"rf@{labels}")
            linear = fewshot_score(
                {"x": frame},
                "val",
                (),
                1,
                features,
                n_jobs=n_jobs,
                head="logreg",
                params={"C": 0.1},
            )
            linear = linear.assign(probe="logreg@all")
            for part in (forest, linear):
                rows.append(
                    part.assign(
                        layer=layer,
                        aggregation=agg,
                        model="untrained" if untrained else "pretrained",
                    )
                )
            log.info("%s %s done", layer, agg)
    return pd.concat(rows, ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", required=True, help="ChipStore (the demo world)")
    ap.add_argument("--checkpoint", required=True, help="checkpoint folder (e.g. runs/demo/best)")
    ap.add_argument("--layers", default="patch1,patch3,cls3,pooled,proj")
    ap.add_argument("--labels", type=int, default=100, help="train size of the forest probe")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--features", default="s2rgbm,s1grdm,gunw,concat")
    ap.add_argument("--no-untrained", action="store_true", help="skip the untrained model")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--out", default=None, help="CSV of every score")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    store = ChipStore.open(args.world)
    layers = [s for s in args.layers.split(",") if s]
    features = tuple(s for s in args.features.split(",") if s)
    parts = [
        probe(
            store, args.checkpoint, False, layers, args.labels, args.repeats, features, args.n_jobs
        )
    ]
    if not args.no_untrained:
        parts.append(
            probe(
                store,
                args.checkpoint,
                True,
                layers,
                args.labels,
                args.repeats,
                ("concat",),
                args.n_jobs,
            )
        )
    df = pd.concat(parts, ignore_index=True)
    if args.out:
        df.to_csv(args.out, index=False)
    mean = df[df["task"] == "mean"]
    table = mean.pivot_table(
        index=["model", "probe", "layer", "aggregation"],
        columns="features",
        values="accuracy",
        sort=False,
    )
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
