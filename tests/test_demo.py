"""`eoclip demo --quick` end to end in a temporary folder, then a rerun that skips every stage."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from eoclip.cli import app
from eoclip.cli.demo import timing_table
from eoclip.demo import STAGES, DemoConfig, DemoError, StageResult, run_demo


@pytest.mark.timeout(300)
def test_demo_quick_end_to_end_and_resume(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--quick", "--out", str(out), "--no-progress", "--n-jobs", "1"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    report = out / "report" / "index.html"
    assert res.output.strip().endswith(f"report: {report}")
    page = report.read_text()
    for fig in (
        "fig1_aois",
        "fig2_labels",
        "fig4_accuracy",
        "fig6_examples",
        "retrieval",
        "fig5_tsne_tree",
    ):
        assert (out / "report" / "figures" / f"{fig}.png").stat().st_size > 5000
        assert f"figures/{fig}.png" in page
    assert "No " not in page.split("<section id='inputs'>")[0]  # every section has its input
    for kind in ("pretrained", "untrained", "stats"):
        assert (out / "embeddings" / f"{kind}.parquet").is_file()
    for stage in STAGES:
        marker = json.loads((out / "stages" / f"{stage}.json").read_text())
        assert marker["seconds"] > 0 and f"{stage} " in res.output
    # the rerun skips everything and keeps the outputs
    mtime = report.stat().st_mtime_ns
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert res.output.count("skipped") == 2 * len(STAGES)  # stage lines + timing table
    assert all(f"{s}: done earlier" in res.output for s in STAGES)
    assert report.stat().st_mtime_ns == mtime
    # --from-stage reruns that stage and later ones only
    results = run_demo(
        DemoConfig.quick(out=str(out), progress=False, n_jobs=1),
        from_stage="tsne",
        echo=lambda s: None,
    )
    assert [r.status for r in results] == ["skipped"] * 6 + ["ran"] * 2
    # the folder's settings read back as they ran; the few-shot protocol is the demo's
    again = DemoConfig.read(out)
    assert again.to_dict() == DemoConfig.quick().to_dict() and again.out == str(out)
    fcfg = again.fewshot_config(("concat",))
    assert (fcfg.train_sizes, fcfg.repeats, fcfg.features) == ((10,), 1, ("concat",))
    assert list(fcfg.grid) == [{"n_estimators": 50, "max_depth": 7}]
    # other settings in the same folder are refused
    with pytest.raises(DemoError, match="other settings"):
        run_demo(DemoConfig.quick(out=str(out), repeats=3), echo=lambda s: None)
    with pytest.raises(DemoError, match="unknown stage"):
        run_demo(DemoConfig.quick(out=str(out)), from_stage="nope", echo=lambda s: None)


def test_timing_table_and_config():
    table = timing_table(
        [StageResult("world", "ran", 1.5, {}), StageResult("pretrain", "skipped", 10.0, {})]
    )
    lines = table.splitlines()
    assert lines[1].split() == ["world", "ran", "1.5"]
    assert lines[2].split() == ["pretrain", "skipped", "10.0"]
    assert lines[-1].split() == ["total", "11.5"]
    quick = DemoConfig.quick()
    assert quick.n_chips_per_aoi < DemoConfig().n_chips_per_aoi
    assert "out" not in quick.to_dict() and json.dumps(quick.to_dict())


def test_pretrain_config_option_reaches_the_pretrain_stage(tmp_path, monkeypatch):
    import eoclip.demo

    seen = {}

    def fake_run_demo(cfg, **kwargs):
        seen["cfg"] = cfg
        report = StageResult("report", "ran", 1.0, {"report": "r"})
        return [StageResult("pretrain", "ran", 1.0, {}), report]

    monkeypatch.setattr(eoclip.demo, "run_demo", fake_run_demo)
    args = ["demo", "--quick", "--out", str(tmp_path / "d"), "--pretrain-config", "long"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert seen["cfg"].pretrain_config == "long"
    assert seen["cfg"].to_dict()["pretrain_config"] == "long"  # another folder than `demo`'s
    assert DemoConfig.quick().to_dict()["pretrain_config"] == "demo"
