"""Ingest on Dask distributed: a 2-worker LocalCluster on 127.0.0.1, one worker killed."""

import cloudpickle
import ingest_helpers
import pytest
from ingest_helpers import KillOnceSource, assert_same_store

from eoclip.ingest.executors import ExecutorSpec
from eoclip.ingest.m3leo import M3LEOConfig, load_m3leo_grid
from eoclip.ingest.report import IngestReport
from eoclip.ingest.runner import StoreSpec, run_ingest

pytest.importorskip("distributed")


def test_executor_spec_checks():
    assert ExecutorSpec(scheduler="tcp://127.0.0.1:8786").engine == "dask"
    assert ExecutorSpec(workers=None).workers >= 1
    with pytest.raises(ValueError, match="engine"):
        ExecutorSpec(engine="spark")
    with pytest.raises(ValueError, match="workers"):
        ExecutorSpec(workers=0)


def test_dask_local_cluster_reruns_a_lost_workers_task(m3leo_nested, nested_reference, tmp_path):
    cloudpickle.register_pickle_by_value(
        ingest_helpers
    )  # the cluster's workers cannot import tests/
    try:
        cfg = M3LEOConfig(root=m3leo_nested.root)
        report = IngestReport("m3leo")
        grid, datasets = load_m3leo_grid(cfg, report)
        marker = tmp_path / "killed"
        source = KillOnceSource(cfg, datasets, target="us3", marker=str(marker))
        out = StoreSpec(str(tmp_path / "d"), chip_px=16, shard_chips=2, progress=False)
        report = run_ingest(grid, out, source, ExecutorSpec(workers=2, engine="dask"), report)
    finally:
        cloudpickle.unregister_pickle_by_value(ingest_helpers)
    assert marker.exists()  # the worker reading us3 died; the scheduler ran its task elsewhere
    assert report.chips_written == 6 and report.runs[-1]["engine"] == "dask"
    assert_same_store(tmp_path / "d", nested_reference)
