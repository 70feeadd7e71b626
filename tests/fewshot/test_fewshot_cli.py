"""`eoclip fewshot` through typer's CliRunner on an app built from register()."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import typer
from fewshot_synth import make_table
from typer.testing import CliRunner

from eoclip.cli.conventions import EoclipGroup
from eoclip.cli.fewshot import parse_tables, register
from eoclip.embeddings import write_embedding_table


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer(cls=EoclipGroup)  # the eoclip app's error handling
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
    args = _args(tmp_path, out)
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


def _args(tmp_path, out, *extra):
    return [
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
        *extra,
    ]


def _one_line_error(result, *words):
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    for w in words:
        assert w in result.output, result.output


def test_fewshot_cli_bad_input_is_one_line(tmp_path, app):
    table = make_table(n_per_aoi=60)
    write_embedding_table(table, tmp_path / "p.parquet", {"checkpoint_hash": "abc"})
    out = tmp_path / "out"
    run = CliRunner().invoke
    _one_line_error(run(app, _args(tmp_path, out, "--max-test", "0")), "max_test must be >= 1")
    _one_line_error(run(app, _args(tmp_path, out, "--n-jobs", "0")), "n_jobs must be >= 1")
    assert run(app, _args(tmp_path, out)).exit_code == 0
    (out / "fewshot_config.json").write_text("{not json")
    _one_line_error(run(app, _args(tmp_path, out)), "fewshot_config.json is damaged")
    assert run(app, _args(tmp_path, out, "--overwrite")).exit_code == 0
    table.at[3, "emb_s2"] = table.at[3, "emb_s2"] + 1  # same file size, other content
    write_embedding_table(table, tmp_path / "p.parquet", {"checkpoint_hash": "abc"})
    _one_line_error(run(app, _args(tmp_path, out)), "not the table", "vectors emb_s2")
    table["emb_s2"] = [np.full(6, np.nan, np.float32)] * len(table)
    write_embedding_table(table, tmp_path / "p.parquet", {"checkpoint_hash": "abc"})
    _one_line_error(run(app, _args(tmp_path, tmp_path / "o2")), "'s2' has no finite value")


def test_fewshot_cli_notes_nonfinite_and_runs_on_dask(tmp_path, app):
    distributed = pytest.importorskip("distributed")
    table = make_table(n_per_aoi=60)
    table.at[2, "emb_s2"] = np.full(6, np.inf, np.float32)
    write_embedding_table(table, tmp_path / "p.parquet", {"checkpoint_hash": "abc"})
    local = CliRunner().invoke(app, _args(tmp_path, tmp_path / "local"))
    assert local.exit_code == 0, local.output
    assert "note: chips whose vectors held NaN/inf were used as missing" in local.output
    assert "pretrained/aoi_a/s2: 1" in local.output
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        r = CliRunner().invoke(
            app, _args(tmp_path, tmp_path / "dask", "--scheduler", cluster.scheduler_address)
        )
    assert r.exit_code == 0, r.output
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "local" / "results.parquet"),
        pd.read_parquet(tmp_path / "dask" / "results.parquet"),
    )


def test_fewshot_cli_paper_preset(tmp_path, app):
    write_embedding_table(
        make_table(n_per_aoi=60), tmp_path / "p.parquet", {"checkpoint_hash": "a"}
    )
    out = tmp_path / "out"
    args = [
        "fewshot",
        "--table",
        f"pretrained={tmp_path / 'p.parquet'}",
        "--out",
        str(out),
        "--tasks",
        "tree",
        "--features",
        "s2",
        "--n-jobs",
        "1",
        "--no-progress",
        "--paper",
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    res = pd.read_parquet(out / "results.parquet")
    # 36 train chips per AOI: sizes 5 and 10 of the paper's list, then all; 10 repeats each
    assert sorted(set(res["train_size"])) == ["10", "5", "all"]
    assert (res.groupby(["aoi", "train_size"])["repeat"].nunique() == 10).all()
    assert set(res["head_params"]) == {'{"max_depth": 7, "n_estimators": 50}'}
    assert "share_n95_le_250" in r.output
    head = pd.read_csv(out / "headline.csv")
    assert head.loc[0, "n_cells"] == 2  # 2 AOIs x 1 task
    _one_line_error(
        CliRunner().invoke(app, [*args, "--head", "knn", "--out", str(tmp_path / "o")]),
        "paper preset fixes ['head']",
    )


def test_fewshot_cli_target_and_sampler(tmp_path, app):
    write_embedding_table(
        make_table(n_per_aoi=60), tmp_path / "p.parquet", {"checkpoint_hash": "a"}
    )
    r = CliRunner().invoke(
        app, _args(tmp_path, tmp_path / "c", "--target", "continuous", "--sampler", "kmeans")
    )
    assert r.exit_code == 0, r.output
    res = pd.read_parquet(tmp_path / "c" / "results.parquet")
    assert set(res["target"]) == {"continuous"} and set(res["sampler"]) == {"kmeans"}
    assert "r2_mean" in r.output and res["r2"].notna().all()
    _one_line_error(
        CliRunner().invoke(app, _args(tmp_path, tmp_path / "d", "--target", "x")),
        "unknown target 'x'",
    )
    _one_line_error(
        CliRunner().invoke(app, _args(tmp_path, tmp_path / "d", "--sampler", "x")),
        "unknown sampler 'x'",
    )


def test_fewshot_cli_modality_subsets(tmp_path, app):
    write_embedding_table(
        make_table(n_per_aoi=60), tmp_path / "p.parquet", {"checkpoint_hash": "a"}
    )
    args = [
        "fewshot",
        "--table",
        f"pretrained={tmp_path / 'p.parquet'}",
        "--out",
        str(tmp_path / "s"),
        "--repeats",
        "1",
        "--train-sizes",
        "5",
        "--tasks",
        "tree",
        "--n-jobs",
        "1",
        "--no-progress",
        "--modality-subsets",
        "--missing-frac",
        "0.3",
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    table = pd.read_csv(tmp_path / "s" / "subsets.csv")
    assert table["features"].tolist() == ["concat", "concat-s1@test", "concat-s2@test", "s1", "s2"]
    assert table.columns.tolist() == ["source", "features", "tree@100", "tree@all"]
    assert table["tree@100"].isna().all() and table["tree@all"].between(0.5, 1).all()
    assert "concat-s2@test" in r.output
    _one_line_error(
        CliRunner().invoke(app, [*args[:-1], "1.5", "--out", str(tmp_path / "t")]),
        "missing_frac must be in (0, 1]",
    )
