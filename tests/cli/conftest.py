"""Tiny real inputs for the command-line tests, made once per session through the CLI itself:
a 20-chip world of 16 px, two 1-step pretraining runs on it and an EmbeddingTable."""

from __future__ import annotations

import logging

import pytest
from cli_helpers import PRETRAIN_ARGS, CliData, invoke


@pytest.fixture(scope="session")
def cli_data(tmp_path_factory) -> CliData:
    root = tmp_path_factory.mktemp("cli")
    world, runs, table = root / "world", root / "runs", root / "emb.parquet"
    emptyopt = root / "emptyopt"
    steps = [
        [
            "world",
            "--out",
            world,
            "--chips-per-aoi",
            "20",
            "--chip-px",
            "16",
            "--aois",
            "conus",
            "--workers",
            "1",
            "--no-progress",
        ],
        ["pretrain", "--store", world, "--out", runs, "--name", "r", *PRETRAIN_ARGS],
        ["pretrain", "--store", world, "--out", emptyopt, "--name", "r", *PRETRAIN_ARGS],
        [
            "embed",
            "--checkpoint",
            runs / "r" / "last",
            "--store",
            world,
            "--out",
            table,
            "--channels",
            "random",
            "--device",
            "cpu",
            "--no-progress",
        ],
    ]
    # Session set-up runs outside the per-test logging restore of tests/conftest.py: undo the
    # root callback's logging configuration here, or later tests would inherit its handler.
    root_logger = logging.getLogger()
    saved = root_logger.level, list(root_logger.handlers)
    try:
        for args in steps:
            r = invoke(*args)
            assert r.exit_code == 0, r.output
    finally:
        root_logger.setLevel(saved[0])
        root_logger.handlers[:] = saved[1]
    (emptyopt / "r" / "last" / "optimizer.pt").write_bytes(b"")  # (resuming it is an error)
    import pandas as pd

    chip = str(pd.read_parquet(table, columns=["chip_id"])["chip_id"].iloc[0])
    return CliData(world, runs, runs / "r" / "last", table, emptyopt, chip)
