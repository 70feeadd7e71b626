"""Hand-made per-chip features that serve as baselines for learned embeddings."""

from eoclip.features.stats import (
    STATS,
    STATS_HASH,
    channel_stats,
    feature_names,
    quantized_percentiles,
    stats_features,
    stats_table,
    write_stats_table,
)

__all__ = [
    "STATS",
    "STATS_HASH",
    "channel_stats",
    "feature_names",
    "quantized_percentiles",
    "stats_features",
    "stats_table",
    "write_stats_table",
]
