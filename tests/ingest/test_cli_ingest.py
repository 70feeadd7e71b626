import json

import typer
from typer.testing import CliRunner

from eoclip.cli.ingest import register
from eoclip.data.store import ChipStore


def _app():
    app = typer.Typer()
    register(app)

    @app.command()
    def version():  # a second command keeps typer from collapsing the app
        pass

    return app


def test_cli_m3leo_and_stac(m3leo_fixture, stac_catalog, tmp_path):
    runner = CliRunner()
    out = tmp_path / "m"
    r = runner.invoke(_app(), ["ingest", "m3leo", str(m3leo_fixture.root), "-o", str(out), "--chip-px", "16",
                               "--s1-direction", "des"])
    assert r.exit_code == 0, r.output
    assert "4 chips written" in r.output and "unreadable GeoTIFF" in r.output
    assert json.loads((tmp_path / "m.ingest.json").read_text())["chips_written"] == 4
    r = runner.invoke(_app(), ["ingest", "m3leo", str(m3leo_fixture.root), "-o", str(out), "--chip-px", "16",
                               "--resume"])
    assert r.exit_code == 0 and "4 already in the store" in r.output
    r = runner.invoke(_app(), ["ingest", "stac", "-o", str(tmp_path / "s"), "--chip-px", "16",
                               "--chips", str(stac_catalog.parent.parent / "chips.geojson"),
                               "--catalog", str(stac_catalog)])
    assert r.exit_code == 0, r.output
    assert ChipStore.open(tmp_path / "s").chip_ids == ["a"]
    r = runner.invoke(_app(), ["ingest", "stac", "-o", str(tmp_path / "x"), "--aoi", "conus", "--bounds", "1,2,3"])
    assert r.exit_code != 0 and "bounds" in r.output
