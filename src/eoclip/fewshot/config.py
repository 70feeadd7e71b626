"""Few-shot evaluation settings (paper section 4.2) as a plain dataclass."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

from eoclip.data.labels import TASKS as LABEL_TASKS
from eoclip.errors import EoclipError

__all__ = [
    "CONCAT",
    "DEFAULT_GRIDS",
    "HEADS",
    "PAPER_RF",
    "PAPER_TRAIN_SIZES",
    "SAMPLERS",
    "SELECT_MAX_TRAIN",
    "TARGETS",
    "TASKS",
    "VARIANT_DEFAULTS",
    "FewshotConfig",
    "FewshotError",
]

TASKS = tuple(LABEL_TASKS)  # eoclip.data.labels defines the tasks and their columns
# Paper section 4.2: "5, 10, 100, 250, 500, 1000, 5000, 20000 and the full dataset".
PAPER_TRAIN_SIZES = (5, 10, 100, 250, 500, 1000, 5000, 20000)
# Paper section 4.2: the Random Forest chosen on validation, "50 estimators and 7 max depth".
PAPER_RF = {"n_estimators": 50, "max_depth": 7}
CONCAT = "concat"
HEADS = ("rf", "logreg", "knn")
# which train chips get labels: the paper's uniform sample, or the chips nearest the centres of
# a k-means (k = labels) of the unlabelled train features (eoclip.fewshot.samplers)
SAMPLERS = ("random", "kmeans")
# what is predicted: the paper's binary task (label above the AOI's train median), or the
# continuous label mean itself with a regressor (scored by R2 and MAE)
TARGETS = ("binary", "continuous")

# Head selection fits each grid entry on at most this many train chips (a seeded sample of the
# split): at the paper's ~100 K train chips per AOI, fitting the grid (up to 100 unpruned
# trees) on the whole split cost as much as the whole protocol after it (bench/fewshot_cost.py).
SELECT_MAX_TRAIN = 10_000

# Small grids searched on the validation split; the first entry wins ties, so the paper's
# forest is chosen unless another configuration is strictly better on validation.
DEFAULT_GRIDS: dict[str, tuple[dict, ...]] = {
    "rf": (
        PAPER_RF,
        {"n_estimators": 50, "max_depth": 3},
        {"n_estimators": 50, "max_depth": 15},
        {"n_estimators": 100, "max_depth": None},
    ),
    "logreg": ({"C": 1.0}, {"C": 0.01}, {"C": 0.1}, {"C": 10.0}),
    "knn": ({"n_neighbors": 15}, {"n_neighbors": 5}, {"n_neighbors": 45}),
}


# settings beyond the paper's protocol and their defaults (the paper's choices)
VARIANT_DEFAULTS = {
    "sampler": "random",
    "target": "binary",
    "modality_subsets": False,
    "missing_frac": 0.5,
}


class FewshotError(EoclipError, ValueError):
    """Bad few-shot input: unknown task or feature set, missing label column, stale results."""


@dataclass
class FewshotConfig:
    """What `run_fewshot` evaluates.

    `tasks` and `head` are validated here; feature sets are checked against the tables.
    """

    train_sizes: tuple[int, ...] = PAPER_TRAIN_SIZES  # labelled chips per fit; "all" is added
    repeats: int = 10  # independent train samples (and forest seeds) per size, paper: 10
    # Repeats at train size "all", where every repeat fits the same chips and only the forest
    # seed changes; None: `repeats`. Its first k repeats are those of a run with more.
    repeats_all: int | None = None
    head: str = "rf"  # "rf" | "logreg" | "knn"
    sampler: str = "random"  # which train chips get labels: "random" (paper) | "kmeans"
    target: str = "binary"  # "binary" (paper) | "continuous": regress the label mean
    # also every subset of modalities and `concat-<m>@test` (m missing for `missing_frac` of
    # the test chips); see eoclip.fewshot.featuresets
    modality_subsets: bool = False
    missing_frac: float = 0.5  # share of test chips that lose the modality in `concat-<m>@test`
    grid: tuple[dict, ...] | None = None  # head params searched on val; None -> DEFAULT_GRIDS
    seed: int = 0  # root of every derived seed (samples, forests, subsamples)
    n_jobs: int = 1  # parallel fits on this machine (-1: all cores); results do not depend on it
    scheduler: object = None  # Dask scheduler address or distributed.Client: fits on a cluster
    tasks: tuple[str, ...] = TASKS  # label_<task> columns to evaluate
    features: tuple[str, ...] | None = None  # modalities and/or "concat"; None -> all of them
    max_test: int | None = None  # subsample the test split (seeded); None = whole split
    max_val: int | None = None  # subsample the validation split used for head selection
    max_resample: int = 100  # redraws of a one-class train sample before keeping it
    select_max_train: int | None = SELECT_MAX_TRAIN  # train chips per selection fit; None: all
    tmp_dir: str | None = None  # shared matrices of local workers (default /dev/shm or $TMPDIR)
    progress: bool = True  # show a progress bar

    def __post_init__(self) -> None:
        self.train_sizes = tuple(int(s) for s in self.train_sizes)
        self.tasks = tuple(self.tasks)
        if self.features is not None:
            self.features = tuple(self.features)
        if self.head not in HEADS:
            raise FewshotError(f"unknown head {self.head!r}; choose one of {HEADS}")
        if self.target not in TARGETS:
            raise FewshotError(f"unknown target {self.target!r}; choose one of {TARGETS}")
        if self.target == "continuous" and self.head == "logreg":
            raise FewshotError(
                "a continuous target needs a regressor: head 'rf' or 'knn', not 'logreg'"
            )
        if not 0.0 < self.missing_frac <= 1.0:
            raise FewshotError(f"missing_frac must be in (0, 1], got {self.missing_frac}")
        if self.sampler not in SAMPLERS:
            raise FewshotError(f"unknown sampler {self.sampler!r}; choose one of {SAMPLERS}")
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise FewshotError(f"unknown task(s) {bad or '(none)'}; known tasks: {TASKS}")
        if any(s < 2 for s in self.train_sizes):
            raise FewshotError(f"train sizes must be >= 2, got {self.train_sizes}")
        if self.repeats < 1:
            raise FewshotError(f"repeats must be >= 1, got {self.repeats}")
        if self.repeats_all is not None and self.repeats_all < 1:
            raise FewshotError(f"repeats_all must be >= 1 or None, got {self.repeats_all}")
        if self.n_jobs == 0:
            raise FewshotError("n_jobs must be >= 1, or negative to count back from all cores")
        for name in ("max_test", "max_val"):
            value = getattr(self, name)
            if value is not None and value < 1:
                split = name.removeprefix("max_")
                raise FewshotError(f"{name} must be >= 1 (or None for the whole {split} split)")
        if self.select_max_train is not None and self.select_max_train < 2:
            raise FewshotError(
                f"select_max_train must be >= 2 or None, got {self.select_max_train}"
            )
        if self.grid is not None:
            self.grid = tuple(dict(g) for g in self.grid)
            if not self.grid:
                raise FewshotError("grid must hold at least one parameter dict")

    @classmethod
    def paper(cls, **overrides: object) -> FewshotConfig:
        """The paper's protocol exactly (section 4.2): no validation search.

        The Random Forest of 50 trees and depth 7, the paper's train sizes (5 ... 20000 and
        all) and 10 repeats at every size, `all` included. `overrides` may set what does not
        change the protocol (seed, n_jobs, scheduler, tasks, features, max_test, progress, ...).

        Raises:
            FewshotError: an override of a setting the preset fixes, with another value.
        """
        fixed = {
            "head": "rf",
            "grid": (dict(PAPER_RF),),
            "train_sizes": PAPER_TRAIN_SIZES,
            "repeats": 10,
            "repeats_all": None,
        }
        clash = {k: v for k, v in overrides.items() if k in fixed and v != fixed[k]}
        if clash:
            raise FewshotError(
                f"the paper preset fixes {sorted(clash)}; leave them at the "
                f"paper's values { ({k: fixed[k] for k in clash}) }"
            )
        return cls(**{**overrides, **fixed})

    @property
    def head_grid(self) -> tuple[dict, ...]:
        """The parameter dicts searched on validation for `head`."""
        return self.grid if self.grid is not None else DEFAULT_GRIDS[self.head]

    def repeats_for(self, train_size: str) -> int:
        """Repeats of one train size label ("all" may have fewer, see `repeats_all`)."""
        if train_size == "all" and self.repeats_all is not None:
            return self.repeats_all
        return self.repeats

    def result_key(self) -> dict:
        """Settings that change the numbers of a (source, aoi, task, features, n_train) group.

        Resuming into a folder written with a different key is refused. Settings added
        after the first release (`VARIANT_DEFAULTS`) appear only when not at their default,
        so the key of a default run, and folders written before them, stay the same.
        """
        variants = {
            k: getattr(self, k) for k, v in VARIANT_DEFAULTS.items() if getattr(self, k) != v
        }
        return json.loads(
            json.dumps(
                {
                    **variants,
                    "head": self.head,
                    "grid": list(self.head_grid),
                    "seed": self.seed,
                    "repeats": self.repeats,
                    "repeats_all": self.repeats_all,
                    "max_test": self.max_test,
                    "max_val": self.max_val,
                    "max_resample": self.max_resample,
                    # 2: train samples no longer depend on the feature set (paired sources)
                    "sampling": 2,
                    "select_max_train": self.select_max_train,
                }
            )
        )

    def to_dict(self) -> dict:
        """JSON-friendly dict of every field (a scheduler given as a Client becomes its address)."""
        # not dataclasses.asdict: it would deep-copy a Client
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["grid"] = list(self.head_grid)
        if d["scheduler"] is not None and not isinstance(d["scheduler"], str):
            d["scheduler"] = str(getattr(self.scheduler, "scheduler", self.scheduler))
        return json.loads(json.dumps(d, default=str))
