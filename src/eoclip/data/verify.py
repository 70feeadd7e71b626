"""``ChipStore.verify``: scan a whole store and list what is missing or corrupt, with the chips
affected (``eoclip describe STORE --check`` prints it).

Per modality, in the order reads depend on them:

1. ``valid`` (and ``names``): every chunk covering chips that the index gives channels must
   exist and decode (crc32c); each chip's valid channels must match the index's
   ``<modality>_channels`` (for variable modalities, name by name).
2. ``pixels``: every shard file covering chips with a valid channel must exist, its chunk
   index must check out, and it must hold a chunk for each valid channel; with ``deep`` every
   shard is also decoded (each chunk's crc32c, in stores that have one).

A ``valid`` chunk that cannot be read leaves its chips' channels unknown: their pixel chunks
are then all taken as needed.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from tqdm.auto import tqdm

from .integrity import (
    ArrayLayout,
    CheckedArray,
    ShardDamage,
    chip_list,
    has_checksum,
    valid_counts_mismatch,
)

__all__ = ["IntegrityReport", "Problem", "verify_store"]

logger = logging.getLogger(__name__)

KINDS = {
    "missing_array": "array missing or unreadable",
    "missing_file": "file missing",
    "missing_chunks": "chunks missing",
    "corrupt": "corrupt",
    "mismatch": "disagrees with index.parquet",
}


@dataclasses.dataclass
class Problem:
    """One damaged file (or array) of a store.

    Attributes:
        array: ``<modality>/<pixels|valid|names>``.
        file: the file, relative to the store (``data.zarr/s1grdm/pixels/c/1/0/0/0``).
        kind: one of ``KINDS``.
        detail: what is wrong, in words.
        chips: ids of the chips whose data it affects.
    """

    array: str
    file: str
    kind: str
    detail: str
    chips: list[str]

    def line(self, limit: int = 20) -> str:
        """One line for a terminal."""
        return (
            f"{self.array}  {KINDS[self.kind]}  {self.file}  {self.detail}; "
            f"{len(self.chips)} chips: {chip_list(self.chips, limit)}"
        )


@dataclasses.dataclass
class IntegrityReport:
    """What ``verify_store`` found.

    Attributes:
        url: the store.
        problems: every damaged file or array (empty when the store is clean).
        chips: chips the index lists.
        files: shard and chunk files checked.
        deep: whether every needed chunk was decoded, not only found.
        checksums: per array, whether its chunks carry a crc32c.
    """

    url: str
    problems: list[Problem]
    chips: int
    files: int
    deep: bool
    checksums: dict[str, bool]

    @property
    def ok(self) -> bool:
        return not self.problems

    def chips_affected(self) -> list[str]:
        """Ids of damaged chips, each once, in the order found."""
        return list(dict.fromkeys(c for p in self.problems for c in p.chips))

    def to_dict(self) -> dict:
        return {
            "url": self.url,
            "ok": self.ok,
            "chips": self.chips,
            "files_checked": self.files,
            "deep": self.deep,
            "checksums": self.checksums,
            "chips_affected": self.chips_affected(),
            "problems": [dataclasses.asdict(p) for p in self.problems],
        }

    def lines(self) -> list[str]:
        """A summary line, then one line per problem."""
        no_crc = sorted(a for a, v in self.checksums.items() if not v)
        crc = f"; without checksums (older store): {', '.join(no_crc)}" if no_crc else ""
        how = "found and decoded" if self.deep else "found (not decoded)"
        n = len(self.problems)
        head = (
            f"{self.url}: DAMAGED, {len(self.chips_affected())} chips affected by {n} "
            f"problem{'s' * (n != 1)}"
            if n
            else f"{self.url}: clean"
        )
        return [
            f"{head} ({self.files} files of {self.chips} chips {how}{crc})",
            *(p.line() for p in self.problems),
        ]


def verify_store(store, deep: bool = True, progress: bool = False) -> IntegrityReport:
    """Check every array, file and needed chunk of an open ChipStore (module docstring).

    Args:
        store: an open ``ChipStore``.
        deep: decode every shard too (reads the whole store), not only find its chunks.
        progress: show a progress bar (files).
    """
    problems: list[Problem] = []
    checksums: dict[str, bool] = {}
    ids = store.index["chip_id"].to_numpy()
    files = 0
    bar = tqdm(desc="verify", unit="file", disable=None if progress else True)
    for m in store.modalities:
        arrays = _arrays(store, m, problems)
        if arrays is None:
            continue
        checksums.update({f"{m}/{k}": has_checksum(a.array) for k, a in arrays.items()})
        counts = store.channel_counts(m)
        valid, known, n = _check_valid(store, m, arrays, counts, ids, problems, bar)
        files += n
        if "names" in arrays:
            files += _check_names(
                store, m, arrays["names"], valid, known, counts, ids, problems, bar
            )
        files += _check_pixels(arrays["pixels"], valid, known, counts, ids, problems, deep, bar)
    bar.close()
    report = IntegrityReport(store.url, problems, len(store), files, deep, checksums)
    logger.info("verified %s: %d problems", store.url, len(problems))
    return report


def _arrays(store, m: str, problems: list[Problem]) -> dict[str, CheckedArray] | None:
    try:
        return store.arrays(m)
    except Exception as err:  # a missing or corrupt zarr.json: zarr raises several types
        problems.append(
            Problem(
                m,
                f"data.zarr/{m}",
                "missing_array",
                f"{type(err).__name__}: {err}",
                store.index["chip_id"].to_numpy()[store.channel_counts(m) > 0].tolist(),
            )
        )
        return None


def _blocks(layout: ArrayLayout, n: int, c: int):
    """(key, rows, channel lo, channel hi) of every shard/chunk file covering chips [0, n)."""
    step_c = layout.outer[1] if len(layout.outer) > 1 else c
    for i, lo in enumerate(range(0, n, layout.outer[0])):
        for j, c_lo in enumerate(range(0, c, step_c)):
            yield (i, j), np.arange(lo, min(lo + layout.outer[0], n)), c_lo, min(c_lo + step_c, c)


def _read_block(
    arr: CheckedArray, rows: np.ndarray, needed: np.ndarray, ids, problems
) -> np.ndarray | None:
    """An unsharded chunk's rows, or None after recording why it cannot be read."""
    key = (int(rows[0]) // arr.layout.outer[0], 0)
    file, who = arr.layout.file(key), ids[rows[needed]].tolist()
    try:
        present = arr.layout.presence(key)
    except ShardDamage as err:  # not sharded: never raised, kept for a sharded valid array
        problems.append(Problem(arr.layout.path, file, "corrupt", str(err), who))
        return None
    if present is None:
        if needed.any():
            problems.append(Problem(arr.layout.path, file, "missing_file", "is missing", who))
        return None
    try:
        return np.asarray(arr.array[int(rows[0]) : int(rows[-1]) + 1])
    except Exception as err:
        problems.append(
            Problem(
                arr.layout.path,
                file,
                "corrupt",
                f"does not decode ({type(err).__name__}: {err})",
                who,
            )
        )
        return None


def _check_valid(
    store, m, arrays, counts, ids, problems, bar
) -> tuple[np.ndarray, np.ndarray, int]:
    """valid (N, C) as read, known (N,) rows read, files checked; records problems."""
    arr = arrays["valid"]
    n, c = len(store), arr.shape[1]
    valid, known = np.zeros((n, c), bool), np.zeros(n, bool)
    files = 0
    if arr.shape[0] < n:
        problems.append(
            Problem(
                arr.layout.path,
                f"data.zarr/{arr.layout.path}/zarr.json",
                "mismatch",
                f"holds {arr.shape[0]} chips, the index {n}",
                ids[arr.shape[0] :].tolist(),
            )
        )
        n = arr.shape[0]
    for _, rows, _, _ in _blocks(arr.layout, n, c):
        files += 1
        bar.update()
        block = _read_block(arr, rows, counts[rows] > 0, ids, problems)
        if block is None:
            continue
        valid[rows], known[rows] = block, True
        bad = rows[valid_counts_mismatch(block, counts[rows])]
        if len(bad):
            problems.append(
                Problem(
                    arr.layout.path,
                    arr.layout.file((int(rows[0]) // arr.layout.outer[0], 0)),
                    "mismatch",
                    "valid channels differ from the index's",
                    ids[bad].tolist(),
                )
            )
    return valid, known, files


def _check_names(store, m, arr, valid, known, counts, ids, problems, bar) -> int:
    """Slot names of valid channels against the index's channel names (variable modality)."""
    files, listed = 0, store.index[f"{m}_channels"]
    for key, rows, _, _ in _blocks(arr.layout, min(len(store), arr.shape[0]), arr.shape[1]):
        files += 1
        bar.update()
        block = _read_block(arr, rows, counts[rows] > 0, ids, problems)
        if block is None:
            continue
        ok = known[rows]
        bad = [
            int(r)
            for r, row, v, yes in zip(rows, block, valid[rows], ok, strict=True)
            if yes and [str(s) for s in row[v]] != [str(s) for s in listed.iat[int(r)]]
        ]
        if bad:
            problems.append(
                Problem(
                    arr.layout.path,
                    arr.layout.file(key),
                    "mismatch",
                    "channel names differ from the index's",
                    ids[bad].tolist(),
                )
            )
    return files


def _check_pixels(arr: CheckedArray, valid, known, counts, ids, problems, deep, bar) -> int:
    """Shard files, their chunk indexes, needed chunks and (deep) their decoding."""
    lay, files = arr.layout, 0
    n, c = min(len(valid), arr.shape[0]), arr.shape[1]
    k = lay.chunk_channels
    for key, rows, c_lo, c_hi in _blocks(lay, n, c):
        files += 1
        bar.update()
        firsts = np.arange(c_lo, c_hi, k)
        need = np.stack(
            [
                np.where(known[rows], valid[rows, f : f + k].any(axis=1), counts[rows] > 0)
                for f in firsts
            ],
            axis=1,
        )
        if not need.any():
            continue
        rr, cc = np.nonzero(need)
        r, ch = rows[rr], firsts[cc]
        missing, what = arr.missing(key, r, ch)
        if len(missing):
            kind = (
                "missing_chunks"
                if what == "lacks the chunks"
                else ("missing_file" if what == "is missing" else "corrupt")
            )
            problems.append(
                Problem(lay.path, lay.file(key), kind, what, ids[np.unique(missing)].tolist())
            )
            if kind != "missing_chunks":
                continue
        if deep:
            _decode(arr, key, rows, c_lo, c_hi, need.any(axis=1), ids, problems)
    return files


def _decode(arr: CheckedArray, key, rows, c_lo, c_hi, needed, ids, problems) -> None:
    """Decode a whole shard; on failure find the chips whose chunks fail, one by one."""
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    try:
        arr.array[lo:hi, c_lo:c_hi]
        return
    except Exception as err:
        first = err
    bad = []
    for r in rows[needed].tolist():
        try:
            arr.array[r, c_lo:c_hi]
        except Exception:
            bad.append(r)
    problems.append(
        Problem(
            arr.layout.path,
            arr.layout.file(key),
            "corrupt",
            f"chunks fail to decode ({type(first).__name__}: {first})",
            ids[bad or rows[needed].tolist()].tolist(),
        )
    )
