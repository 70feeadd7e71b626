"""`eoclip fewshot` through typer's CliRunner on an app built from register()."""

from __future__ import annotations

import pandas as pd
import pytest
import typer
from fewshot_synth import make_table
from typer.testing import CliRunner

from eoclip.cli.fewshot import parse_tables, register
from eoclip.embeddings import write_embedding_table


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")  # a second command keeps typer in multi-command mode
    def _noop() -> None:
        pass

    return app


def test_fewshot_cli_writes_results(tmp_path, app):
    write_embedding_table(
        make_table(n_per_aoi=100),
        tmp_path / "p.parquet",
        {"source": "pretrained", "checkpoint_hash": "abc"},
    )
    out = tmp_path / "out"
    args = [
        "fewshot",
        "--table",
        f"pretrained={tmp_path / 'p.parquet'}",
        "--out",
        str(out),
        "--repeats",
        "2",
        "--train-sizes",
        "5,20",
        "--tasks",
        "tree",
        "--features",
        "s2",
        "--n-jobs",
        "1",
        "--no-progress",
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    res = pd.read_parquet(out / "results.parquet")
    assert len(res) == 2 * 3 * 2 and set(res["source"]) == {"pretrained"}
    assert "n_train_95" in r.output
    bad = CliRunner().invoke(app, [*args[:2], f"x={tmp_path / 'none.parquet'}", *args[3:]])
    assert bad.exit_code == 1 and "none.parquet" in bad.output
    bad = CliRunner().invoke(app, [*args, "--head", "svm"])
    assert bad.exit_code == 1 and "unknown head" in bad.output


def test_parse_tables():
    assert parse_tables(["a=x.parquet", "s3://b/y.parquet"]) == {
        "a": "x.parquet",
        "y": "s3://b/y.parquet",
    }
    assert parse_tables(["p=s3://b/y.parquet"]) == {"p": "s3://b/y.parquet"}
    with pytest.raises(typer.BadParameter, match="twice"):
        parse_tables(["a=x.parquet", "a=y.parquet"])
