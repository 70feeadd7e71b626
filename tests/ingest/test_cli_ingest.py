import json
import shutil

import pytest
import typer
from typer.testing import CliRunner

from eoclip.cli.conventions import EoclipGroup
from eoclip.cli.ingest import register
from eoclip.data.store import ChipStore


def _app():
    app = typer.Typer(cls=EoclipGroup)  # the eoclip app's error handling
    register(app)

    @app.command()
    def version():  # a second command keeps typer from collapsing the app
        pass

    return app


def _invoke(*args):
    return CliRunner().invoke(_app(), ["ingest", *map(str, args)])


def test_cli_m3leo_and_stac(m3leo_fixture, stac_catalog, tmp_path):
    out = tmp_path / "m"
    r = _invoke(
        "m3leo",
        m3leo_fixture.root,
        "-o",
        out,
        "--chip-px",
        16,
        "--s1-direction",
        "des",
        "--workers",
        1,
    )
    assert r.exit_code == 0, r.output
    assert "4 chips written" in r.output and "unreadable GeoTIFF" in r.output
    assert json.loads((tmp_path / "m.ingest.json").read_text())["chips_written"] == 4
    r = _invoke("m3leo", m3leo_fixture.root, "-o", out, "--chip-px", 16, "--resume", "--workers", 1)
    assert r.exit_code == 0 and "4 already in the store" in r.output
    r = _invoke(
        "stac",
        "-o",
        tmp_path / "s",
        "--chip-px",
        16,
        "--chips",
        stac_catalog.parent.parent / "chips.geojson",
        "--catalog",
        stac_catalog,
        "--workers",
        1,
    )
    assert r.exit_code == 0, r.output
    assert ChipStore.open(tmp_path / "s").chip_ids == ["a"]


def _one_line_error(r, *words):
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(
        r.exception, SystemExit
    )  # no library exception escaped
    errors = [line for line in r.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, r.output
    for word in words:
        assert word in errors[0], errors[0]


@pytest.mark.parametrize(
    "args,words",
    [
        (["--months", "1,2,13"], ["months must be calendar months"]),
        (["--chip-px", "0"], ["chip_px must be >= 1"]),
        (["--s1-direction", "up"], ["s1_direction"]),
        (["--workers", "0"], ["workers must be >= 1"]),
    ],
)
def test_cli_bad_options_are_one_line_errors(m3leo_fixture, tmp_path, args, words):
    _one_line_error(_invoke("m3leo", m3leo_fixture.root, "-o", tmp_path / "x", *args), *words)


def test_cli_bad_inputs_are_one_line_errors(m3leo_fixture, m3leo_nested, tmp_path):
    _one_line_error(_invoke("m3leo", tmp_path / "nope", "-o", tmp_path / "x"), "does not exist")
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.geojson", "b.geojson"):
        shutil.copy(m3leo_fixture.root / "tiny_chips.geojson", two / name)
    _one_line_error(
        _invoke("m3leo", two, "-o", tmp_path / "x"), "2 chips GeoJSONs", "a.geojson, b.geojson"
    )
    out = tmp_path / "exists"
    assert (
        _invoke("m3leo", m3leo_fixture.root, "-o", out, "--chip-px", 8, "--workers", 1).exit_code
        == 0
    )
    _one_line_error(
        _invoke("m3leo", m3leo_fixture.root, "-o", out, "--chip-px", 8, "--workers", 1),
        "already exists",
        "resume",
    )
    _one_line_error(
        _invoke(
            "m3leo",
            m3leo_nested.root,
            "-o",
            tmp_path / "g",
            "--modalities",
            "gunw,s2rgbm",
            "--labels",
            "",
            "--year",
            2019,
        ),
        "no product folder",
    )
    _one_line_error(
        _invoke("stac", "-o", tmp_path / "x", "--aoi", "nowhere"), "unknown AOI 'nowhere'"
    )
    # Malformed option values are usage errors (exit status 2), reported by click.
    for r in (
        _invoke("stac", "-o", tmp_path / "x", "--aoi", "conus", "--bounds", "1,2,3"),
        _invoke("m3leo", m3leo_fixture.root, "-o", tmp_path / "x", "--months", "jan"),
    ):
        assert r.exit_code == 2 and "Traceback" not in r.output, r.output
        assert "bounds are" in r.output or "months must be comma-separated integers" in r.output


def test_cli_nothing_written_fails(m3leo_nested, tmp_path):
    root = tmp_path / "broken"
    stem = m3leo_nested.stems["china"]
    (root / stem / "s2rgbm-2020").mkdir(parents=True)
    for suffix in (".geojson", "_splits.csv"):
        shutil.copy(m3leo_nested.root / f"{stem}{suffix}", root)
    (root / stem / "s2rgbm-2020" / "cn0.tif").write_bytes(b"II*\0 not a tiff")
    r = _invoke(
        "m3leo",
        root,
        "-o",
        tmp_path / "e",
        "--modalities",
        "s2rgbm",
        "--labels",
        "",
        "--workers",
        1,
    )
    _one_line_error(r, "no chip written", "unreadable GeoTIFF")
    assert "0 chips written" in r.output  # the summary comes first


def test_python_m_eoclip_with_worker_processes(m3leo_nested, tmp_path):
    """Through the real entry point: worker processes must not run the command line again."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": str(src)}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "eoclip",
            "ingest",
            "m3leo",
            str(m3leo_nested.root),
            "-o",
            str(tmp_path / "w"),
            "--chip-px",
            "8",
            "--workers",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (
        "6 chips written" in r.stdout
        and "problem: gunw" in r.stdout
        and "Traceback" not in r.stderr
    )
    assert json.loads((tmp_path / "w.ingest.json").read_text())["runs"][-1]["workers"] == 2
