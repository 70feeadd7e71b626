import json

import numpy as np
import pytest

from eoclip.data.store import ChipStore
from eoclip.errors import ConfigError
from eoclip.ingest.report import IngestError
from eoclip.ingest.runner import GridSpec, StoreSpec, load_grid
from eoclip.ingest.stac import StacConfig, ingest_stac, load_stac_config, search_items

Q = 0.3 / 255  # s2rgbm storage step


@pytest.fixture(scope="module")
def stac_store(stac_catalog, tmp_path_factory):
    grid = load_grid(GridSpec(chips=stac_catalog.parent.parent / "chips.geojson"))
    out = tmp_path_factory.mktemp("out") / "store"
    report = ingest_stac(
        grid, StoreSpec(str(out), chip_px=64, progress=False), StacConfig(catalog=str(stac_catalog))
    )
    return ChipStore.open(out), report, out


def test_search_static_catalogue(stac_catalog):
    cfg = StacConfig(catalog=str(stac_catalog))
    bbox = (10.27, 45.32, 10.29, 45.34)
    jan_mar = search_items(cfg, "sentinel-2-l2a", bbox, "2020-01-01/2020-03-31")
    assert [i.id for i in jan_mar] == ["s2_0105", "s2_0115", "s2_0204", "s2_0214", "s2_0224_offset"]
    assert search_items(cfg, "sentinel-2-l2a", bbox, "2020-04-01/2020-04-30")[0].id == "s2_0410"
    assert search_items(cfg, "sentinel-2-l2a", (0.0, 0.0, 1.0, 1.0), "2020-01-01/2020-12-31") == []


def test_s2_cloud_masked_monthly_median(stac_store):
    store, _, _ = stac_store
    s2 = store.read_chip("a")["s2rgbm"]
    west, east = s2.data[:, 30, 5], s2.data[:, 30, 60]
    # January red: median(0.15, 0.17) west; east the cloudy scene (SCL 9, DN 9999) is masked
    assert west[0] == pytest.approx(0.16, abs=Q) and east[0] == pytest.approx(0.15, abs=Q)
    assert west[1] == pytest.approx(0.15, abs=Q) and west[2] == pytest.approx(0.14, abs=Q)
    # February: the offset -0.1 baseline scene (DN 2200) is 0.12 like the others' median
    assert west[3] == pytest.approx(0.12, abs=Q) and east[5] == pytest.approx(0.10, abs=Q)
    assert s2.valid.tolist() == [True] * 6 + [False] * 3  # no March scene: invalid, not zero
    assert np.isnan(s2.data[6:]).all()


def test_s1_mean_in_linear_then_db(stac_store):
    store, _, _ = stac_store
    s1 = store.read_chip("a")["s1grdm"]
    px = dict(zip(s1.names, s1.data[:, 20, 20], strict=True))
    assert px["01_vv"] == pytest.approx(10 * np.log10(0.2), abs=0.011)  # not mean of dB (-7.6)
    assert px["01_vh"] == pytest.approx(10 * np.log10(0.02), abs=0.011)
    assert px["01_vvvh"] == pytest.approx(10.0, abs=0.011)
    assert px["02_vv"] == pytest.approx(10 * np.log10(0.05), abs=0.011)
    assert not s1.valid[6:].any()


def test_labels_and_skips(stac_store):
    store, report, out = stac_store
    row = store.index.set_index("chip_id").loc["a"]
    assert row["label_crop"] == pytest.approx(0.5) and row["label_water"] == pytest.approx(0.25)
    assert np.isnan(row["label_tree"])
    assert store.chip_ids == ["a"]  # chip b has no S1/S2 scene
    summary = json.loads(out.with_name("store.ingest.json").read_text())
    reasons = {(s["chip_id"], s["product"]): s["reason"] for s in summary["skips"]}
    assert "no usable sentinel-2-l2a" in reasons[("b", "sentinel-2-l2a")]
    assert "no modality" in reasons[("b", "chip")]
    assert report.chips_written == 1


def test_orbit_filter_and_config_yaml(stac_catalog, tmp_path):
    path = tmp_path / "stac.yaml"
    path.write_text(f"catalog: {stac_catalog}\ns1_orbit_state: descending\n")
    cfg = load_stac_config(path)
    assert cfg.s1_orbit_state == "descending" and cfg.s2_collection == "sentinel-2-l2a"
    grid = load_grid(GridSpec(chips=stac_catalog.parent.parent / "chips.geojson"))
    ingest_stac(
        grid.iloc[:1],
        StoreSpec(str(tmp_path / "s"), chip_px=16, progress=False),
        cfg,
        modalities=("s1grdm",),
    )
    s1 = ChipStore.open(tmp_path / "s").read_chip("a")["s1grdm"]
    assert s1.valid.tolist() == [False] * 3 + [True] * 3 + [False] * 3  # only the February scene
    path.write_text("catalgo: x\n")
    with pytest.raises(ConfigError, match="unknown keys \\['catalgo'\\]"):
        load_stac_config(path)
    path.write_text("s1_units: [db\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_stac_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_stac_config(tmp_path / "none.yaml")


def test_default_config_is_planetary_computer():
    cfg = StacConfig()
    assert cfg.catalog == "https://planetarycomputer.microsoft.com/api/stac/v1"
    assert (cfg.s2_collection, cfg.s1_collection, cfg.worldcover_collection) == (
        "sentinel-2-l2a",
        "sentinel-1-rtc",
        "esa-worldcover",
    )
    assert cfg.datetime_range() == "2020-01-01/2020-03-31"
    with pytest.raises(ValueError, match="cannot be imported"):
        StacConfig(modifier="no_such_pkg.sign").modifier_fn()


def test_one_search_per_block_of_chips(stac_catalog, tmp_path, monkeypatch):
    """Both chips fall in one shard: each collection is searched once, not once per chip."""
    import eoclip.ingest.stac as stac_mod

    calls = []
    real = stac_mod.search_items

    def counting(config, collection, bbox, datetime):
        calls.append((collection, bbox))
        return real(config, collection, bbox, datetime)

    monkeypatch.setattr(stac_mod, "search_items", counting)
    grid = load_grid(GridSpec(chips=stac_catalog.parent.parent / "chips.geojson"))
    report = ingest_stac(
        grid,
        StoreSpec(str(tmp_path / "s"), chip_px=16, progress=False),
        StacConfig(catalog=str(stac_catalog)),
    )
    assert sorted(c for c, _ in calls) == ["esa-worldcover", "sentinel-1-rtc", "sentinel-2-l2a"]
    west, south, east, north = calls[0][1]
    for geom in grid.geometry:  # the block's box covers every chip of the block
        assert west <= geom.bounds[0] and east >= geom.bounds[2] and south <= geom.bounds[1]
    assert report.chips_written == 1  # chip b has no S1/S2 item: the items were filtered per chip
    calls.clear()
    ingest_stac(
        grid,
        StoreSpec(str(tmp_path / "t"), chip_px=16, progress=False, shard_chips=1),
        StacConfig(catalog=str(stac_catalog)),
    )
    assert len(calls) == 6  # shards of one chip: one search per collection and chip


class _FlakyStacApi:
    """A STAC API on 127.0.0.1 serving the fixture's S2 items; the first search answers 503."""

    def __init__(self, catalog):
        import pystac

        self.items = [
            i.to_dict()
            for i in pystac.read_file(str(catalog)).get_items(recursive=True)
            if i.collection_id == "sentinel-2-l2a"
        ]
        self.searches, self.fail = 0, 1

    def __enter__(self):
        import http.server
        import threading

        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                base = f"http://127.0.0.1:{self.server.server_port}"
                self._send(
                    200,
                    {
                        "type": "Catalog",
                        "id": "flaky",
                        "description": "test",
                        "stac_version": "1.0.0",
                        "conformsTo": [
                            "https://api.stacspec.org/v1.0.0/core",
                            "https://api.stacspec.org/v1.0.0/item-search",
                        ],
                        "links": [
                            {"rel": "self", "href": base + "/"},
                            {"rel": "root", "href": base + "/"},
                            {
                                "rel": "search",
                                "href": base + "/search",
                                "method": "POST",
                                "type": "application/geo+json",
                            },
                        ],
                    },
                )

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                api.searches += 1
                if api.fail > 0:
                    api.fail -= 1
                    self._send(503, {"code": "busy"})
                else:
                    self._send(
                        200, {"type": "FeatureCollection", "features": api.items, "links": []}
                    )

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


def test_api_search_is_retried(stac_catalog):
    with _FlakyStacApi(stac_catalog) as api:
        cfg = StacConfig(catalog=api.url, modifier=None, retry_backoff=0.0)
        items = search_items(
            cfg, "sentinel-2-l2a", (10.0, 45.0, 11.0, 46.0), "2020-01-01/2020-03-31"
        )
        assert api.searches == 2 and len(items) == len(api.items)  # a 503, then the answer
        api.fail, api.searches = 5, 0  # longer than the retries allow
        with pytest.raises(IngestError, match="search of sentinel-2-l2a .* failed after 1 retries"):
            search_items(
                StacConfig(catalog=api.url, modifier=None, retry_backoff=0.0, max_retries=1),
                "sentinel-2-l2a",
                (10.0, 45.0, 11.0, 46.0),
                "2020-01-01/2020-03-31",
            )
        assert api.searches == 2
