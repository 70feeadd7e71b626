import pytest
from m3leo_fixtures import write_m3leo


@pytest.fixture(scope="session")
def m3leo_fixture(tmp_path_factory):
    """The seeded M3LEO dataset (written once per session)."""
    return write_m3leo(tmp_path_factory.mktemp("m3leo") / "tiny", seed=0)


@pytest.fixture(scope="session")
def stac_catalog(tmp_path_factory):
    """The seeded static STAC catalogue; returns the catalog.json path."""
    from stac_fixtures import write_stac

    return write_stac(tmp_path_factory.mktemp("stac"))
