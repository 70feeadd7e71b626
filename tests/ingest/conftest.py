import pytest
from m3leo_fixtures import write_m3leo, write_m3leo_nested


@pytest.fixture(scope="session")
def m3leo_fixture(tmp_path_factory):
    """The seeded flat M3LEO dataset (written once per session)."""
    return write_m3leo(tmp_path_factory.mktemp("m3leo") / "tiny", seed=0)


@pytest.fixture(scope="session")
def m3leo_nested(tmp_path_factory):
    """The seeded download in geetiles' nested layout, two AOIs (written once per session)."""
    return write_m3leo_nested(tmp_path_factory.mktemp("m3leo_nested") / "download", seed=0)


@pytest.fixture(scope="session")
def nested_reference(m3leo_nested, tmp_path_factory):
    """The nested download ingested serially at 16 px in shards of 2 chips: the reference."""
    from eoclip.ingest.m3leo import M3LEOConfig, ingest_m3leo
    from eoclip.ingest.runner import StoreSpec

    out = tmp_path_factory.mktemp("reference") / "ref.store"
    ingest_m3leo(
        M3LEOConfig(root=m3leo_nested.root),
        StoreSpec(str(out), chip_px=16, shard_chips=2, progress=False),
    )
    return out


@pytest.fixture(scope="session")
def stac_catalog(tmp_path_factory):
    """The seeded static STAC catalogue; returns the catalog.json path."""
    from stac_fixtures import write_stac

    return write_stac(tmp_path_factory.mktemp("stac"))
