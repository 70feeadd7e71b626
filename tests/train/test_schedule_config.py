"""The learning-rate schedule and the config file + override parsing."""

from __future__ import annotations

import math

import pytest

from eoclip.train import (
    PretrainConfig,
    list_pretrain_configs,
    load_pretrain_config,
    lr_at,
    parse_overrides,
)


def test_warmup_then_cosine_to_floor():
    lrs = [lr_at(s, 1.0, warmup_steps=4, total_steps=14, min_lr_ratio=0.1) for s in range(20)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0) and lrs[13] == pytest.approx(0.1)
    assert lrs[13:] == pytest.approx([0.1] * 7)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))
    assert lrs[(4 + 13) // 2] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 9)))
    assert lr_at(0, 2.0, 0, 1) == 2.0 and lr_at(3, 2.0, 5, 5) == pytest.approx(1.6)


def test_schedule_rejects_bad_arguments():
    for args in [(-1, 1.0, 0, 10), (0, 1.0, -1, 10), (0, 1.0, 0, 0)]:
        with pytest.raises(ValueError, match="lr_at"):
            lr_at(*args)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        lr_at(0, 1.0, 0, 10, 1.5)


def test_demo_config_loads_and_overrides_merge():
    assert "demo" in list_pretrain_configs()
    cfg = load_pretrain_config(
        "demo",
        parse_overrides(
            [
                "store=/x",
                "epochs=3",
                "lr=5e-4",
                "model_overrides.depth=1",
                "max_steps=null",
                "modalities=[s2rgbm, s1grdm]",
            ]
        ),
    )
    assert (cfg.store, cfg.epochs, cfg.lr, cfg.model, cfg.max_steps) == (
        "/x",
        3,
        5e-4,
        "demo",
        None,
    )
    assert cfg.model_overrides == {"patch_size": 16, "depth": 1} and cfg.modalities == [
        "s2rgbm",
        "s1grdm",
    ]
    cfg.validate()
    assert PretrainConfig.from_dict(cfg.to_dict()) == cfg


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"unknown pretrain config 'nope'.*\['demo'"):
        load_pretrain_config("nope")
    with pytest.raises(ValueError, match="unknown keys"):
        load_pretrain_config("demo", {"epoch": 3})
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["epochs"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_pretrain_config(bad)
    with pytest.raises(ValueError, match="batch_size"):
        PretrainConfig(store="/x", batch_size=0).validate()
    with pytest.raises(ValueError, match="device"):
        PretrainConfig(store="/x", device="tpu").validate()


def test_long_preset_is_the_demo_recipe_at_8_px_patches():
    assert {"demo", "long"} <= set(list_pretrain_configs())
    demo = load_pretrain_config("demo", {"store": "/x"}).to_dict()
    long = load_pretrain_config("long", {"store": "/x"}).to_dict()
    assert long.pop("model_overrides") == {"patch_size": 8}
    assert demo.pop("model_overrides") == {"patch_size": 16}
    assert long.pop("name") == "long" and demo.pop("name") == "demo"
    # the demo validates every 3rd epoch (its best/ is the last epoch either way), long every one
    assert long.pop("eval_every") == 1 and demo.pop("eval_every") == 3
    assert long == demo
