"""One error handler, logging set-up and renamed options (eoclip.cli.conventions)."""

from __future__ import annotations

import logging

import pytest
import typer
from cli_helpers import flat, invoke
from typer.testing import CliRunner

from eoclip.cli.conventions import EoclipGroup, configure_logging, renamed_option, require
from eoclip.data.store import UnknownChipError
from eoclip.errors import ConfigError, error_message


def _app_raising(err: BaseException) -> typer.Typer:
    app = typer.Typer(cls=EoclipGroup)

    @app.command("fail")
    def fail() -> None:
        raise err

    @app.command("ok")
    def ok() -> None:
        typer.echo("fine")

    return app


@pytest.mark.parametrize(
    "err,line",
    [
        (
            ConfigError("pretrain config: lr must be\n  a positive number"),
            "error: pretrain config: lr must be a positive number",
        ),
        (UnknownChipError("chip 'x' is not in s.store"), "error: chip 'x' is not in s.store"),
        (
            FileNotFoundError(2, "No such file or directory", "/data/in.parquet"),
            "error: /data/in.parquet: No such file or directory",
        ),
        (PermissionError(13, "Permission denied", "/out"), "error: /out: Permission denied"),
    ],
)
def test_library_errors_become_one_line_and_status_1(err, line):
    r = CliRunner().invoke(_app_raising(err), ["fail"])
    assert r.exit_code == 1 and r.output.strip() == line and error_message(err) == line[7:]


def test_a_bug_keeps_its_traceback():
    r = CliRunner().invoke(_app_raising(ZeroDivisionError("bug")), ["fail"])
    assert isinstance(r.exception, ZeroDivisionError)  # not turned into a message


def test_log_levels(capsys):
    log = logging.getLogger("eoclip.some.module")
    for kwargs, shown in [
        ({}, {"WARNING"}),
        ({"verbose": True}, {"INFO", "WARNING"}),
        ({"quiet": True}, set()),
    ]:
        configure_logging(**kwargs)
        configure_logging(**kwargs)  # idempotent: still one line per record
        log.info("detail")
        log.warning("careful")
        err = capsys.readouterr().err.splitlines()
        expected = {"INFO": "INFO: detail", "WARNING": "WARNING: careful"}
        assert err == [expected[k] for k in ("INFO", "WARNING") if k in shown]
    with pytest.raises(typer.BadParameter):
        configure_logging(verbose=True, quiet=True)


def test_renamed_option(caplog):
    assert renamed_option("a", None, new="--out", old="--store") == "a"
    with caplog.at_level(logging.WARNING):
        assert renamed_option(None, "b", new="--out", old="--store") == "b"
    assert "--store is deprecated" in caplog.text and "use --out" in caplog.text
    with pytest.raises(typer.BadParameter, match="give only --out"):
        renamed_option("a", "b", new="--out", old="--store")
    with pytest.raises(typer.BadParameter, match="required"):
        require(None, "--out")


def test_old_spellings_still_work_with_a_warning(tmp_path):
    r = invoke("ingest", "stac", "--store", tmp_path / "x", "--aoi", "nowhere")
    assert r.exit_code == 1 and "unknown AOI 'nowhere'" in r.output
    assert (
        "WARNING: --store is deprecated and will be removed in the next release; use --out"
        in r.output
    )
    r = invoke("-q", "ingest", "stac", "--store", tmp_path / "x", "--aoi", "nowhere")
    assert r.exit_code == 1 and "WARNING" not in r.output
    r = invoke("ingest", "stac", "--store", tmp_path / "x", "-o", tmp_path / "y", "--aoi", "conus")
    assert r.exit_code == 2 and "give only --out" in flat(r.output)
    r = invoke("export-model", tmp_path / "nock", tmp_path / "m")  # positional CHECKPOINT OUT
    assert r.exit_code == 1 and "nock does not exist" in r.output
    assert "CHECKPOINT (positional) is deprecated" in r.output


def test_hidden_aliases_stay_out_of_help():
    r = invoke("ingest", "stac", "--help")
    assert r.exit_code == 0 and "--out" in r.output and "--store" not in r.output
