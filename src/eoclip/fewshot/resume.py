"""What an output folder already holds, and whether it may be resumed.

`fewshot_config.json` records the settings that change the numbers (`result_key`) and, per
source, the checkpoint hash and a content fingerprint of its table (chip ids, splits, labels
and every vector; see `TableReader.scan`). A rerun into the folder keeps its complete groups
only if both match; otherwise it is refused, naming what changed, unless `overwrite=True`.
"""

from __future__ import annotations

import json

import fsspec
import pandas as pd

from eoclip.embeddings.reader import TableReader, TableScan
from eoclip.fewshot.config import VARIANT_DEFAULTS, FewshotConfig, FewshotError
from eoclip.fewshot.io import CONFIG_FILE, RESULTS_FILE, read_results, write_json

__all__ = [
    "COLUMN_DEFAULTS",
    "GROUP_KEYS",
    "RESULT_COLUMNS",
    "existing_results",
    "source_record",
    "table_changes",
]

GROUP_KEYS = ["source", "aoi", "task", "features", "train_size"]
RESULT_COLUMNS = [
    *GROUP_KEYS[:4],
    "train_size",
    "n_train",
    "repeat",
    "head",
    "head_params",
    "val_accuracy",
    "accuracy",
    "balanced_accuracy",
    "pos_frac_train",
    "pos_frac_test",
    "n_test",
    "threshold",
    "n_train_split",
    "n_resamples",
    "single_class",
    "seed",
    "n_nonfinite",
    "sampler",
    "target",
    "r2",
    "mae",
]
# columns added after the first release, with the value older results have
COLUMN_DEFAULTS = {
    "n_nonfinite": 0,
    "sampler": "random",
    "target": "binary",
    "r2": float("nan"),
    "mae": float("nan"),
}


def source_record(reader: TableReader, scan: TableScan) -> dict:
    """What `fewshot_config.json` remembers of one source table."""
    return {
        "table": reader.path or "in-memory frame",
        "checkpoint_hash": reader.checkpoint_hash,
        "fingerprint": scan.fingerprint,
    }


def table_changes(old: dict | str | None, new: dict) -> list[str]:
    """Human-readable differences between a stored source record and the current one.

    A record of an older eoclip (the checkpoint hash alone) is compared on the hash only.
    """
    if not isinstance(old, dict):
        old = {"checkpoint_hash": old}
    changes = []
    if old.get("checkpoint_hash") != new.get("checkpoint_hash"):
        changes.append(f"checkpoint {old.get('checkpoint_hash')} -> {new.get('checkpoint_hash')}")
    a, b = old.get("fingerprint"), new.get("fingerprint") or {}
    if a is None:
        return changes
    if a.get("rows") != b.get("rows"):
        changes.append(f"rows {a.get('rows')} -> {b.get('rows')}")
    if a.get("chips") != b.get("chips"):
        changes.append("chip ids, AOIs or splits")
    for key in sorted((set(a) | set(b)) - {"rows", "chips"}):
        what = f"labels {key}" if key.startswith("label_") else f"vectors {key}"
        if key not in a:
            changes.append(f"{what} added")
        elif key not in b:
            changes.append(f"{what} removed")
        elif a[key] != b[key]:
            changes.append(what)
    return changes


def _read_config(fs: fsspec.AbstractFileSystem, path: str) -> dict:
    try:
        with fs.open(path) as f:
            stored = json.load(f)
        if not isinstance(stored, dict) or not isinstance(stored.get("result_key"), dict):
            raise ValueError("no 'result_key' object")
        stored.setdefault("sources", {})
        return stored
    except (ValueError, OSError) as err:
        raise FewshotError(
            f"{path} is damaged ({err}); delete it, use another output folder or overwrite=True"
        ) from err


def _check(out_dir: str, stored: dict, config: FewshotConfig, records: dict) -> None:
    # variant settings are in a key only when not at their default: compare them in full
    key = {**VARIANT_DEFAULTS, **config.result_key()}
    stored_key = {**VARIANT_DEFAULTS, **stored["result_key"]}
    old_key = {k: stored_key.get(k) for k in key}  # other keys added later default to None
    if old_key != key:
        diff = {k: (old_key[k], key[k]) for k in key if old_key[k] != key[k]}
        raise FewshotError(
            f"{out_dir} holds results of other settings (stored -> now: {diff}); "
            "use another output folder or overwrite=True"
        )
    for name, record in records.items():
        if name in stored["sources"]:
            changes = table_changes(stored["sources"][name], record)
            if changes:
                raise FewshotError(
                    f"{out_dir}: source {name!r} is not the table its results were computed "
                    f"from ({'; '.join(changes)}); use another output folder or overwrite=True"
                )


def existing_results(
    out_dir: str | None, config: FewshotConfig, records: dict[str, dict], overwrite: bool
) -> pd.DataFrame:
    """Complete groups already in `out_dir` (an empty frame when none); records this run.

    Args:
        records: source name -> `source_record(...)` of the tables of this run.

    Raises:
        FewshotError: the folder holds other settings or another table, or a damaged config.
    """
    empty = pd.DataFrame(columns=RESULT_COLUMNS)
    if out_dir is None:
        return empty
    fs, root = fsspec.core.url_to_fs(str(out_dir))
    cfg_path, res_path = f"{root}/{CONFIG_FILE}", f"{root}/{RESULTS_FILE}"
    stored = {"result_key": config.result_key(), "sources": {}}
    if not overwrite and fs.exists(cfg_path):
        stored = _read_config(fs, cfg_path)
        _check(str(out_dir), stored, config, records)
    elif not overwrite and fs.exists(res_path):
        raise FewshotError(f"{res_path} exists without {CONFIG_FILE}; pass overwrite=True")
    stored["result_key"] = config.result_key()
    stored["sources"].update(records)
    stored["config"] = config.to_dict()
    fs.makedirs(root, exist_ok=True)
    write_json(stored, cfg_path, fs)
    if overwrite or not fs.exists(res_path):
        return empty
    df = read_results(res_path, fs)
    for col, value in COLUMN_DEFAULTS.items():  # results of an older eoclip
        if col not in df.columns:
            df[col] = value
    need = df["train_size"].astype(str).map(config.repeats_for)
    complete = df.groupby(GROUP_KEYS)["repeat"].transform("nunique") >= need
    return df[complete].reset_index(drop=True)
