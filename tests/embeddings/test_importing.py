"""ImportConfig validation, kind detection and the `eoclip import-embeddings` verb."""

from __future__ import annotations

import pytest
from import_fixtures import make_store, write_id_table, write_raster
from typer.testing import CliRunner

from eoclip.cli import app
from eoclip.embeddings.importing import ImportConfig, ImportEmbeddingsError, source_kind
from eoclip.embeddings.table import read_embedding_table


def _cfg(**kw) -> ImportConfig:
    base = dict(sources=("a.tif",), store="s", out="o.parquet", product="AlphaEarth 2020")
    return ImportConfig(**{**base, **kw})


def test_config_checks_and_names():
    assert _cfg().modality_name == "alphaearth_2020"
    assert _cfg(modality="aef").modality_name == "aef"
    for bad, match in (
        (dict(pooling="median"), "pooling"),
        (dict(kind="csv"), "kind"),
        (dict(dequantize="log"), "dequantize"),
        (dict(out="o.csv"), ".parquet"),
        (dict(min_valid_fraction=2.0), "min_valid_fraction"),
        (dict(modality="emb_x_count"), "modality name"),
        (dict(product=""), "product"),
    ):
        with pytest.raises(ImportEmbeddingsError, match=match):
            _cfg(**bad).validate()
    assert source_kind(_cfg()) == "raster" and source_kind(_cfg(sources=("t.parquet",))) == "table"
    assert source_kind(_cfg(sources=("x.bin",), kind="table")) == "table"
    with pytest.raises(ImportEmbeddingsError, match="cannot tell"):
        source_kind(_cfg(sources=("x.bin",)))
    with pytest.raises(ImportEmbeddingsError, match="one table at a time"):
        source_kind(_cfg(sources=("a.parquet", "b.parquet")))


def test_cli_imports_and_fails_cleanly(tmp_path):
    make_store(tmp_path / "store")
    write_id_table(tmp_path / "clay.parquet")
    write_raster(tmp_path / "aef.tif")
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "import-embeddings",
            str(tmp_path / "clay.parquet"),
            "--store",
            str(tmp_path / "store"),
            "--out",
            str(tmp_path / "clay_emb.parquet"),
            "--product",
            "clay",
            "--version",
            "1.5",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "11 of 12 chips have a 8-d clay vector (emb_clay)" in r.output
    r = runner.invoke(
        app,
        [
            "import-embeddings",
            str(tmp_path / "aef.tif"),
            "--store",
            str(tmp_path / "store"),
            "--out",
            str(tmp_path / "aef.parquet"),
            "--product",
            "aef",
            "--pooling",
            "mean+std",
            "--bands",
            "1,2",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    gdf, meta = read_embedding_table(tmp_path / "aef.parquet")
    assert meta["dim"] == 4 and meta["provenance"]["options"]["bands"] == [1, 2]
    r = runner.invoke(
        app,
        [
            "import-embeddings",
            str(tmp_path / "aef.tif"),
            "--store",
            str(tmp_path / "nostore"),
            "--out",
            str(tmp_path / "x.parquet"),
            "--product",
            "aef",
        ],
    )
    assert r.exit_code == 1 and "cannot open store" in r.output and "Traceback" not in r.output
    r = runner.invoke(
        app,
        [
            "import-embeddings",
            str(tmp_path / "aef.tif"),
            "--store",
            str(tmp_path / "store"),
            "--out",
            str(tmp_path / "x.parquet"),
            "--product",
            "aef",
            "--bands",
            "one",
        ],
    )
    assert r.exit_code != 0 and "bands are 1-based numbers" in r.output
