"""`eoclip pretrain` and `python -m eoclip.train` parse options into a PretrainConfig and train."""

from __future__ import annotations

import subprocess
import sys

import yaml
from train_helpers import tiny_config
from typer.testing import CliRunner

from eoclip.cli import app


def test_cli_pretrain_trains_and_resumes(tiny_store, tmp_path):
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump(tiny_config(tiny_store, "unused").to_dict()))
    args = [
        "pretrain",
        "--config",
        str(cfg_file),
        "--store",
        str(tiny_store),
        "--out",
        str(tmp_path / "runs"),
        "--name",
        "cli",
        "--set",
        "epochs=2",
        "--max-steps",
        "2",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "done: 2 steps" in result.output
    saved = yaml.safe_load((tmp_path / "runs" / "cli" / "config.yaml").read_text())
    assert saved["epochs"] == 2 and saved["max_steps"] == 2 and saved["name"] == "cli"

    again = CliRunner().invoke(app, args)  # same run folder without --resume: refused
    assert again.exit_code == 1 and "--resume" in again.output
    resumed = CliRunner().invoke(app, [*args[:-2], "--resume"])
    assert resumed.exit_code == 0 and "done: 6 steps, 2 epochs" in resumed.output


def test_cli_reports_bad_input(tmp_path):
    result = CliRunner().invoke(
        app, ["pretrain", "--store", str(tmp_path / "missing"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 1 and "missing" in result.output
    result = CliRunner().invoke(app, ["pretrain", "--store", "x", "--set", "nonsense"])
    assert result.exit_code == 1 and "key=value" in result.output


def test_module_entry_point_is_the_same_command():
    out = subprocess.run(
        [sys.executable, "-m", "eoclip.train", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "--resume" in out.stdout and "--set" in out.stdout


def test_module_entry_point_errors_are_one_line(capsys, tmp_path):
    from eoclip.train.__main__ import main

    assert main(["--set", "nonsense"]) == 1
    assert (
        capsys.readouterr().err.strip()
        == "error: override 'nonsense' is not key=value (e.g. epochs=3)"
    )
    assert main(["--store", str(tmp_path / "nostore"), "--set", "weight_decay=abc"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weight_decay must be a number" in err
