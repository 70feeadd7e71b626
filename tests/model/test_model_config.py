"""Model variants, YAML loading, overrides and parameter counts (big models on `meta`)."""

import pytest
import torch
import yaml

from eoclip.model import (
    ModelConfig,
    MultiTowerCLIP,
    TowerConfig,
    create_model,
    list_models,
    load_model_config,
)

PAPER_PARAMS = 259e6  # paper section 4.1: "259M trainable parameters"


def analytic_params(config: ModelConfig) -> int:
    """Parameters of the model from the config alone (timm ViT layout + projection + scale)."""
    t, w = config.tower, config.tower.width
    hidden = int(w * t.mlp_ratio)
    tokens = (t.img_size // t.patch_size) ** 2 + 1  # patches + class token
    patch_embed = t.patch_size**2 * w + w  # conv 1 -> w channels, with bias
    block = 2 * 2 * w + (3 * w * w + 3 * w) + (w * w + w) + (w * hidden + hidden) + (hidden * w + w)
    tower = patch_embed + w + tokens * w + t.depth * block + 2 * w + w * config.embed_dim
    return len(config.modalities) * tower + 1


def meta_params(config: ModelConfig) -> int:
    with torch.device("meta"):
        model = MultiTowerCLIP(config)
    assert all(p.is_meta for p in model.parameters())  # nothing allocated
    return sum(p.numel() for p in model.parameters())


def test_registered_variants():
    assert list_models() == ["demo", "paper", "vit-s", "vit-ti"]


@pytest.mark.parametrize("name", list_models())
def test_variant_loads_and_counts(name):
    config = load_model_config(name)
    assert config.name == name
    assert config.modalities == ("s2rgbm", "s1grdm", "gunw")
    assert meta_params(config) == analytic_params(config)


def test_paper_variant_matches_paper():
    config = load_model_config("paper")
    assert (config.embed_dim, config.tower.img_size, config.tower.patch_size) == (768, 448, 16)
    n = meta_params(config)
    assert abs(n - PAPER_PARAMS) / PAPER_PARAMS < 0.02, n


def test_small_variants_in_paper_range():
    # Paper section 6: smaller variants of 11 M to 100 M parameters, 192/384-d embeddings.
    for name, dim in (("vit-ti", 192), ("vit-s", 384)):
        config = load_model_config(name)
        assert config.embed_dim == dim
        assert 11e6 <= meta_params(config) <= 100e6


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match=r"vit-b.*demo.*paper.*vit-s.*vit-ti"):
        load_model_config("vit-b")
    with pytest.raises(ValueError, match="demo"):
        create_model("nope")


def test_user_yaml_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "embed_dim": 16,
                "modalities": ["a", "b"],
                "tower": {"img_size": 32, "patch_size": 8, "width": 16, "depth": 1, "heads": 2},
            }
        )
    )
    config = load_model_config(path)
    assert config.name == "mine" and config.modalities == ("a", "b")
    model = create_model(str(path))
    assert model.modalities == ("a", "b") and model.embed_dim == 16
    assert model.config.tower == TowerConfig(img_size=32, patch_size=8, width=16, depth=1, heads=2)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"embed_dim": 8, "tower": {"depht": 2}}, r"unknown keys \['depht'\]"),
        ({"embed_dim": 8, "colour": 1}, r"unknown keys \['colour'\]"),
        ({"tower": {"img_size": 30, "patch_size": 8}}, "not a multiple of patch_size"),
        ({"tower": {"width": 10, "heads": 3}}, "not a multiple of heads"),
        ({"tower": {"global_pool": "max"}}, "global_pool"),
        ({"modalities": ["a", "a"]}, "repeat"),
        ({"modalities": ["a.b"]}, "bad modality name"),
        ({"embed_dim": 0}, "embed_dim"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_yaml_names_file_and_problem(tmp_path, content, match):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(ValueError, match=match) as info:
        load_model_config(path)
    assert "bad.yaml" in str(info.value)


def test_invalid_yaml_syntax(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("tower: [unclosed\n")
    with pytest.raises(ValueError, match="broken.yaml: not valid YAML"):
        load_model_config(path)


def test_create_model_overrides():
    model = create_model("demo", modalities=("s1grdm", "x"), img_size=32, depth=1, embed_dim=24)
    assert model.modalities == ("s1grdm", "x")
    assert list(model.towers) == ["s1grdm", "x"]
    assert model.config.tower.img_size == 32 and model.config.tower.depth == 1
    assert len(model.towers["x"].backbone.blocks) == 1
    assert model.embed_dim == 24
    assert load_model_config("demo").tower.depth == 3  # registered file untouched
    with pytest.raises(ValueError, match="unknown keys"):
        create_model("demo", n_layers=2)
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        create_model("demo", img_size=60)


def test_config_dict_roundtrip():
    config = load_model_config("vit-s").with_overrides(modalities=["s2rgbm"])
    data = config.to_dict()
    assert data["modalities"] == ["s2rgbm"] and isinstance(data["tower"], dict)
    assert ModelConfig.from_dict(yaml.safe_load(yaml.safe_dump(data))) == config
