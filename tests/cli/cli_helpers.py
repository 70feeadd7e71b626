"""Helpers of the command-line tests (a uniquely named module, so test files can import it
whatever other conftest.py files exist)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from eoclip.cli import app

# A model that trains a step in milliseconds at 16 px.
TINY_MODEL = "model_overrides={embed_dim: 8, width: 16, depth: 1, heads: 2, patch_size: 8}"
PRETRAIN_ARGS = [
    "--max-steps",
    "1",
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--num-workers",
    "0",
    "--device",
    "cpu",
    "--no-progress",
    "--set",
    "img_size=16",
    "--set",
    TINY_MODEL,
]


@dataclass
class CliData:
    world: Path  # a ChipStore
    runs: Path  # parent folder of the run "r"
    checkpoint: Path  # runs/r/last
    table: Path  # EmbeddingTable of the world
    emptyopt: Path  # parent of run "r" (same settings as runs/r) whose last/optimizer.pt is empty
    chip: str  # a chip id of the world


def invoke(*args) -> object:
    """Run `eoclip ARGS...` in-process; the result has exit_code and output (stdout + stderr)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    """`text` on one line without rich's box drawing, so wrapped messages can be searched."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())
