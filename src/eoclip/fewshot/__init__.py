"""Few-shot evaluation of frozen embeddings (paper section 4.2): binary tasks per AOI,
train sizes from 5 chips to the whole train split, a head chosen on validation, accuracy
on the test split."""

from eoclip.fewshot.compare import paired_gain
from eoclip.fewshot.config import (
    CONCAT,
    DEFAULT_GRIDS,
    PAPER_RF,
    PAPER_TRAIN_SIZES,
    SAMPLERS,
    SELECT_MAX_TRAIN,
    TASKS,
    FewshotConfig,
    FewshotError,
)
from eoclip.fewshot.data import derive_seed, train_size_plan
from eoclip.fewshot.executor import make_executor
from eoclip.fewshot.heads import make_head
from eoclip.fewshot.io import read_results
from eoclip.fewshot.run import RESULT_COLUMNS, run_fewshot
from eoclip.fewshot.summary import headline, point95, subset_table, summarize

__all__ = [
    "CONCAT",
    "DEFAULT_GRIDS",
    "PAPER_RF",
    "PAPER_TRAIN_SIZES",
    "RESULT_COLUMNS",
    "SAMPLERS",
    "SELECT_MAX_TRAIN",
    "TASKS",
    "FewshotConfig",
    "FewshotError",
    "derive_seed",
    "headline",
    "make_executor",
    "make_head",
    "paired_gain",
    "point95",
    "read_results",
    "run_fewshot",
    "subset_table",
    "summarize",
    "train_size_plan",
]
