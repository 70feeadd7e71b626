"""Run the few-shot protocol of paper section 4.2 over one or more EmbeddingTables.

For every source table, AOI, task and feature set (each modality and `concat`):

1. binarise `label_<task>` at the median of the AOI's TRAIN split (value > median -> 1);
2. choose the head's parameters ONCE on the validation split: each grid entry is fitted on the
   train split (on a seeded sample of `select_max_train` chips where the split is larger) and
   the best validation accuracy wins (ties go to the earlier entry, so the paper's 50-tree
   depth-7 forest is the default);
3. for each train size (paper: 5 ... 20000 and all; sizes not below the split size are dropped,
   `all` is always run) and each of `repeats` repeats (`repeats_all` at size `all`, where a
   repeat only re-seeds the forest), fit the head on a uniform random sample of the AOI's
   train split and score it on the whole test split.

Missing features: a chip lacking a modality has a NaN row for that modality and a NaN block in
`concat`; it stays in every split (the whole test split is scored). A vector holding NaN or inf
keeps its finite entries (inf becomes NaN, i.e. a missing value), is counted (`n_nonfinite`)
and logged; a modality without a single finite value in the table is refused. The paper's forest
takes NaN natively (scikit-learn >= 1.4);
`logreg` and `knn` impute the train-sample mean first.

Every sample and fit is seeded with `derive_seed(seed, aoi, task, train_size, repeat)`:
same seed, same numbers, whatever `n_jobs` or `scheduler`; neither the source nor the feature
set is part of the seed, so every table of the same chips and every feature set (an imported
product's own vector against eoclip's concatenation) is scored on the same train samples (a
paired comparison).

Memory: tables are read piecewise (`eoclip.embeddings.reader`): one AOI's matrix for one
feature set at a time, shared once with the workers (`eoclip.fewshot.executor`), released when
its fits are done. The next matrix is read while the workers still have fits to run (at most
two in flight, one more per 16 workers).

Resuming: with `out_dir`, results are rewritten (temporary name, then rename) when a group of
(source, aoi, task, features) finishes and `CHECKPOINT_S` seconds have passed since the last
write, when the run ends, and when it is interrupted (an exception or Ctrl-C): a `kill -9`
loses at most `CHECKPOINT_S` seconds of fits. (Rewriting after every group took 10.2 of
102 s in a cProfile of the demo's pretrained table in one process.) On a rerun, groups
(source, aoi, task, features, train_size) that already hold all repeats are kept and skipped;
incomplete ones are recomputed. A folder written with different numbers-changing settings, or
from a table whose content differs, is refused unless `overwrite=True` (`eoclip.fewshot.resume`).
Rows already in the folder for sources, tasks or feature sets not asked for this time are kept.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from eoclip.embeddings.reader import TableReader, TableScan, open_tables
from eoclip.fewshot.config import FewshotConfig, FewshotError
from eoclip.fewshot.data import (
    GroupRows,
    aoi_order,
    derive_seed,
    feature_sets,
    group_rows,
    train_size_plan,
)
from eoclip.fewshot.executor import FitExecutor, make_executor
from eoclip.fewshot.featuresets import blank_columns, blank_test_rows, feature_mods
from eoclip.fewshot.fits import FitPlan, evaluate, selection_rows, val_accuracy
from eoclip.fewshot.io import write_results
from eoclip.fewshot.resume import GROUP_KEYS, RESULT_COLUMNS, existing_results, source_record

__all__ = ["GROUP_KEYS", "RESULT_COLUMNS", "run_fewshot"]

log = logging.getLogger(__name__)

CHECKPOINT_S = 30.0  # least seconds between two writes of the results during a run


@dataclass
class _Group:
    """One (source, aoi, task, features) cell and the train sizes still to run."""

    source: str
    aoi: str
    task: str
    features: str
    plan: list[tuple[str, int]]
    todo: list[tuple[str, int]] = field(default_factory=list)
    n_nonfinite: int = 0
    blank: tuple[int, int] | None = None  # columns of a modality missing at test time
    # filled while running
    rows: GroupRows | None = None
    params: dict | None = None
    val_acc: float = float("nan")
    scores: dict = field(default_factory=dict)
    results: list = field(default_factory=list)


@dataclass
class _Matrix:
    """One (source, aoi, features) feature matrix and the task groups that use it."""

    source: str
    aoi: str
    features: str
    groups: list[_Group]
    handle: object = None
    open_groups: int = 0


def _feature_mods(features: str, mods: list[str]) -> list[str]:
    return feature_mods(features, list(mods))


def _check_source(source: str, reader: TableReader, scan: TableScan, feats: list[str]) -> None:
    """Refuse a modality without one finite value; warn about vectors holding NaN/inf."""
    used = {m for f in feats for m in _feature_mods(f, reader.modalities)}
    for m in reader.modalities:
        n_bad = int(scan.nonfinite[m].sum())
        if n_bad:
            # a table that declares NaN entries as its missing values (the channel statistics:
            # a channel a chip lacks) is as expected; anywhere else NaN means a broken export
            expected = bool(reader.meta.get("nan_means_missing"))
            log.log(
                logging.INFO if expected else logging.WARNING,
                "%s: %d emb_%s vectors hold NaN/inf; NaN/inf entries are missing values to "
                "the head (column n_nonfinite)",
                reader.name,
                n_bad,
                m,
            )
        if m in used and not scan.usable[m].any():
            n_missing = reader.num_rows - int((scan.valid[m] | scan.nonfinite[m]).sum())
            raise FewshotError(
                f"{reader.name}: modality {m!r} has no finite value ({n_bad} vectors of NaN/inf, "
                f"{n_missing} missing); re-export the embeddings or leave {m!r} out of the "
                "feature sets"
            )


def _plan(readers: dict, scans: dict, config: FewshotConfig, done: set) -> list[_Matrix]:
    """Every matrix to read, with its task groups, their size plans and the sizes not yet done."""
    matrices = []
    for source, reader in readers.items():
        mods, scan = reader.modalities, scans[source]
        feats = (
            list(config.features)
            if config.features is not None
            else feature_sets(mods, config.modality_subsets)
        )
        known = feature_sets(mods, subsets=True)  # a subset may be named without the flag
        unknown = [f for f in feats if f not in known]
        if unknown:
            raise FewshotError(
                f"unknown feature set {unknown[0]!r} for source {source!r}; "
                f"available: {feature_sets(mods, config.modality_subsets)}"
            )
        dims = {m: reader.dim(m) for m in mods}
        for task in config.tasks:
            if f"label_{task}" not in reader.label_columns:
                raise FewshotError(
                    f"source {source!r} has no 'label_{task}' column (has {reader.label_columns})"
                )
        _check_source(source, reader, scan, feats)
        index = reader.index()
        for aoi in sorted(index["aoi"].unique()):
            sub = index[index["aoi"] == aoi]
            for f in feats:  # one matrix serves every task of the AOI
                fm = _feature_mods(f, mods)
                bad = int(np.any([scan.nonfinite[m][sub.index] for m in fm], axis=0).sum())
                if not np.any([scan.usable[m][sub.index] for m in fm]):
                    log.warning("%s/%s/%s: no finite value in this AOI, skipped", source, aoi, f)
                    continue
                groups = []
                for task in config.tasks:
                    known = sub[f"label_{task}"].notna()
                    n_split = int(((sub["split"] == "train") & known).sum())
                    if n_split == 0:
                        log.warning("%s/%s/%s: no labelled train chips, skipped", source, aoi, task)
                        continue
                    plan = train_size_plan(config.train_sizes, n_split)
                    g = _Group(
                        source,
                        aoi,
                        task,
                        f,
                        plan,
                        n_nonfinite=bad,
                        blank=blank_columns(f, list(mods), dims),
                    )
                    g.todo = [p for p in plan if (source, aoi, task, f, p[0]) not in done]
                    if g.todo:
                        groups.append(g)
                if groups:
                    matrices.append(_Matrix(source, aoi, f, groups))
    return matrices


def read_matrix(reader: TableReader, index: pd.DataFrame, features: str) -> np.ndarray:
    """Feature matrix float32 (n, D) of the rows of `index` (an `aoi_order` frame).

    `concat` blocks are written in place, one modality at a time: no per-modality copies.
    """
    mods = _feature_mods(features, reader.modalities)
    dims = [reader.dim(m) for m in mods]
    X = np.empty((len(index), sum(dims)), dtype=np.float32)
    rows, start = index["row"].to_numpy(), 0
    for m, d in zip(mods, dims, strict=True):
        reader.read_vectors(m, rows, X[:, start : start + d])
        start += d
    return X


class _Runner:
    """Feeds the executor: selection fits, then each group's protocol fits, matrix by matrix."""

    def __init__(self, readers, config, ex: FitExecutor, results, out_dir, bar) -> None:
        self.readers, self.config, self.ex = readers, config, ex
        self.results, self.out_dir, self.bar = results, out_dir, bar
        self.pending: dict = {}  # future -> (callback, args)
        self.unsaved, self.saved_at = False, time.monotonic()  # results not yet in out_dir
        self.open_matrices = 0
        self.index_cache: tuple = (None, None)

    def _index(self, source: str) -> pd.DataFrame:
        if self.index_cache[0] != source:  # one source's small columns at a time
            self.index_cache = (source, self.readers[source].index())
        return self.index_cache[1]

    def start(self, m: _Matrix) -> None:
        """Read and share one matrix, then start its groups."""
        sub = aoi_order(self._index(m.source), m.aoi)
        X = read_matrix(self.readers[m.source], sub, m.features)
        m.handle = self.ex.share(X)
        del X  # the executor holds it (or its file) from here
        self.open_matrices += 1
        m.open_groups = len(m.groups)
        cfg = self.config
        for g in m.groups:
            g.rows = group_rows(
                sub[f"label_{g.task}"].to_numpy(),
                sub["split"].to_numpy(),
                derive_seed(cfg.seed, g.aoi, g.task),
                cfg.max_test,
                cfg.max_val,
                cfg.target,
            )
            self._select(m, g)

    def _previous_params(self, g: _Group) -> bool:
        r = self.results
        prev = r[
            (r["source"] == g.source)
            & (r["aoi"] == g.aoi)
            & (r["task"] == g.task)
            & (r["features"] == g.features)
        ]
        if len(prev):  # resuming: the selection is deterministic, reuse it
            g.params = json.loads(prev["head_params"].iloc[0])
            g.val_acc = float(prev["val_accuracy"].iloc[0])
        return bool(len(prev))

    def _select(self, m: _Matrix, g: _Group) -> None:
        grid = self.config.head_grid
        if self._previous_params(g):
            return self._protocol(m, g)
        if len(grid) == 1 or len(g.rows.y_val) == 0:
            if len(grid) > 1:
                log.warning(
                    "%s/%s/%s/%s: empty validation split, using %s",
                    g.source,
                    g.aoi,
                    g.task,
                    g.features,
                    grid[0],
                )
            g.params = dict(grid[0])
            return self._protocol(m, g)
        seed = derive_seed(self.config.seed, g.aoi, g.task, g.features, "select")
        train = selection_rows(
            len(g.rows.y_train),
            self.config.select_max_train,
            derive_seed(self.config.seed, g.aoi, g.task),
        )
        for i, params in enumerate(grid):
            fut = self.ex.submit(
                val_accuracy,
                m.handle,
                g.rows,
                self.config.head,
                params,
                seed,
                train,
                self.config.target,
                priority=1e9,
            )  # selection first: protocol waits on it
            self.pending[fut] = (self._selected, (m, g, i))

    def _selected(self, score: float, m: _Matrix, g: _Group, i: int) -> None:
        g.scores[i] = score
        grid = self.config.head_grid
        if len(g.scores) == len(grid):
            scores = [g.scores[k] for k in range(len(grid))]
            best = int(np.argmax(scores))  # first maximum: earlier grid entries win ties
            g.params, g.val_acc = dict(grid[best]), float(scores[best])
            self._protocol(m, g)

    def _protocol(self, m: _Matrix, g: _Group) -> None:
        cfg = self.config
        # largest train sizes first: the long fits start early instead of ending the run alone
        blank_rows = (
            None
            if g.blank is None
            else blank_test_rows(
                len(g.rows.y_test),
                cfg.missing_frac,
                derive_seed(cfg.seed, g.aoi, g.task, g.features, "missing"),
            )
        )
        plan = FitPlan(
            cfg.head, g.params, cfg.max_resample, cfg.sampler, cfg.target, g.blank, blank_rows
        )
        for label, n in sorted(g.todo, key=lambda p: -p[1]):
            for rep in range(cfg.repeats_for(label)):
                seed = derive_seed(cfg.seed, g.aoi, g.task, label, rep)
                # k-means picks ignore the task: every task of the matrix labels the same chips
                sample_seed = derive_seed(cfg.seed, g.aoi, label, rep, cfg.sampler)
                fut = self.ex.submit(
                    evaluate,
                    m.handle,
                    g.rows,
                    plan,
                    label,
                    n,
                    rep,
                    seed,
                    sample_seed,
                    priority=float(n),
                )
                self.pending[fut] = (self._evaluated, (m, g))

    def _evaluated(self, row: dict, m: _Matrix, g: _Group) -> None:
        g.results.append(row)
        self.bar.update(1)
        if len(g.results) < sum(self.config.repeats_for(label) for label, _ in g.todo):
            return
        self._finish_group(g)
        m.open_groups -= 1
        if m.open_groups == 0:
            self.ex.release(m.handle)
            m.handle = None
            self.open_matrices -= 1

    def _finish_group(self, g: _Group) -> None:
        df = pd.DataFrame(g.results).assign(
            source=g.source,
            aoi=g.aoi,
            task=g.task,
            features=g.features,
            head=self.config.head,
            head_params=json.dumps(g.params, sort_keys=True),
            val_accuracy=g.val_acc,
            threshold=g.rows.threshold,
            n_train_split=len(g.rows.y_train),
            n_nonfinite=g.n_nonfinite,
            sampler=self.config.sampler,
            target=self.config.target,
        )[RESULT_COLUMNS]
        g.results, g.rows = [], None
        self.results = (
            df if self.results.empty else pd.concat([self.results, df], ignore_index=True)
        )
        self.unsaved = True
        if time.monotonic() - self.saved_at >= CHECKPOINT_S:
            self.save()

    def save(self) -> None:
        """Write the results so far to `out_dir` (if any and if anything is new)."""
        if self.out_dir is not None and self.unsaved:
            write_results(_sorted(self.results), self.out_dir)
        self.unsaved, self.saved_at = False, time.monotonic()

    def run(self, matrices: list[_Matrix]) -> pd.DataFrame:
        """Run everything; the results are saved at the end, also when interrupted."""
        try:
            return self._run(matrices)
        finally:
            self.save()

    def _run(self, matrices: list[_Matrix]) -> pd.DataFrame:
        """Start a matrix when the workers are about to run out of fits, until all are done."""
        queue = list(reversed(matrices))
        # one matrix in this process; with workers two, and one more per 16 workers, so a
        # cluster is not left idle while a matrix's last long fits finish
        max_open = 1 if self.ex.n_workers == 1 else max(2, self.ex.n_workers // 16)
        while True:
            # start the next matrix when the workers are about to run out of work
            while (
                queue
                and self.open_matrices < max_open
                and (self.open_matrices == 0 or len(self.pending) < 2 * self.ex.n_workers)
            ):
                self.start(queue.pop())
            if not self.pending:
                if queue:
                    continue
                return self.results
            done, _ = self.ex.wait_any(list(self.pending))
            for fut in done:
                callback, args = self.pending.pop(fut)
                callback(fut.result(), *args)


def run_fewshot(
    tables: dict[str, str | Path | pd.DataFrame],
    config: FewshotConfig | None = None,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Evaluate few-shot heads on the embeddings of one or more sources.

    Args:
        tables: source name -> EmbeddingTable path/URL or frame, e.g.
            `{"pretrained": "emb/pretrained.parquet", "stats": "emb/stats.parquet"}`.
        config: settings; defaults reproduce the paper (RF, 10 repeats, 5 ... 20000 + all).
            `config.n_jobs` local processes, or a Dask cluster with `config.scheduler`.
        out_dir: folder (or fsspec URL) for `results.parquet`, `results.csv`, `summary.csv`
            and `fewshot_config.json`; enables resuming. None: compute in memory only.
        overwrite: discard results already in `out_dir`.

    Returns:
        Tidy results, one row per (source, aoi, task, features, train_size, repeat), columns
        `RESULT_COLUMNS`; `n_train` is the number of labelled chips actually used and
        `n_nonfinite` the AOI's chips whose vectors held NaN/inf (used as missing).

    Raises:
        FewshotError: no tables, unknown feature set, missing label column, a modality without
            a finite vector, incompatible `out_dir`.
        EmbeddingTableError: a table that cannot be read or lacks chip_id/aoi/split.
    """
    config = config or FewshotConfig()
    if not tables:
        raise FewshotError("no EmbeddingTables given")
    readers = open_tables(tables)
    scans = {s: r.scan() for s, r in readers.items()}
    records = {s: source_record(r, scans[s]) for s, r in readers.items()}
    out = None if out_dir is None else str(out_dir)
    results = existing_results(out, config, records, overwrite)
    done = set(map(tuple, results[GROUP_KEYS].to_numpy().tolist()))
    matrices = _plan(readers, scans, config, done)
    del scans  # validity masks: a few bytes per chip, not needed any more
    total = sum(
        config.repeats_for(label) for m in matrices for g in m.groups for label, _ in g.todo
    )
    with (
        tqdm(total=total, desc="fewshot", unit="fit", disable=not config.progress) as bar,
        make_executor(config.n_jobs, config.scheduler, config.tmp_dir) as ex,
    ):
        if matrices:
            log.info("fewshot: %d fits on %s", total, ex.name)
        results = _Runner(readers, config, ex, results, out, bar).run(matrices)
    if out is not None and not matrices and not results.empty:
        write_results(_sorted(results), out)  # nothing new; rewrites summary.csv
    return _sorted(results)


def _sorted(results: pd.DataFrame) -> pd.DataFrame:
    return results.sort_values(
        ["source", "aoi", "task", "features", "n_train", "train_size", "repeat"], kind="stable"
    ).reset_index(drop=True)
