"""Atomic reading and writing of few-shot results (local folders or fsspec URLs)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from eoclip.fewshot.config import FewshotError
from eoclip.fsio import atomic_write

__all__ = [
    "CONFIG_FILE",
    "HEADLINE_FILE",
    "RESULTS_CSV",
    "RESULTS_FILE",
    "SUBSETS_FILE",
    "SUMMARY_FILE",
    "read_results",
    "write_json",
    "write_results",
]

RESULTS_FILE = "results.parquet"
RESULTS_CSV = "results.csv"
SUMMARY_FILE = "summary.csv"
CONFIG_FILE = "fewshot_config.json"
HEADLINE_FILE = "headline.csv"
SUBSETS_FILE = "subsets.csv"


def _atomic(fs: fsspec.AbstractFileSystem, path: str, write: Callable[[io.IOBase], None]) -> None:
    """Write through `write(file)` to a temporary name beside `path`, then rename."""
    with atomic_write(path, "wb", fs=fs) as f:
        write(f)


def write_json(obj: dict, path: str, fs: fsspec.AbstractFileSystem) -> None:
    """Atomically write `obj` as indented JSON."""
    _atomic(fs, path, lambda f: f.write(json.dumps(obj, indent=2, default=str).encode()))


def write_results(results: pd.DataFrame, out_dir: str) -> None:
    """Write `results.parquet`, `results.csv`, `summary.csv` and `headline.csv` atomically,
    and `subsets.csv` (`subset_table`) when the results hold modality subsets."""
    from eoclip.fewshot.summary import has_subsets, headline, subset_table, summarize

    fs, root = fsspec.core.url_to_fs(out_dir)
    fs.makedirs(root, exist_ok=True)
    _atomic(fs, f"{root}/{RESULTS_FILE}", lambda f: results.to_parquet(f, index=False))
    _atomic(fs, f"{root}/{RESULTS_CSV}", lambda f: f.write(results.to_csv(index=False).encode()))
    summary = summarize(results)
    _atomic(fs, f"{root}/{SUMMARY_FILE}", lambda f: f.write(summary.to_csv(index=False).encode()))
    top = headline(summary)
    _atomic(fs, f"{root}/{HEADLINE_FILE}", lambda f: f.write(top.to_csv(index=False).encode()))
    if has_subsets(summary):
        table = subset_table(summary).to_csv(index=False).encode()
        _atomic(fs, f"{root}/{SUBSETS_FILE}", lambda f: f.write(table))


def read_results(
    path: str, fs: fsspec.AbstractFileSystem | None = None, columns: list[str] | None = None
) -> pd.DataFrame:
    """Read a results Parquet file (as written by `write_results`).

    Args:
        columns: read only these (those the file lacks, e.g. columns added by a later
            version, are left out); None reads every column.
    """
    if fs is None:
        fs, path = fsspec.core.url_to_fs(path)
    try:
        with fs.open(path, "rb") as f:
            if columns is not None:
                names = pq.read_schema(f).names
                columns = [c for c in columns if c in names]
                f.seek(0)
            return pd.read_parquet(f, columns=columns)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise FewshotError(f"{path}: cannot read few-shot results ({err})") from err
