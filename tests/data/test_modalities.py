import numpy as np
import pytest

from eoclip.data.modalities import Modality, get_modality, list_modalities, load_modality


def test_builtins_have_the_papers_channels():
    assert list_modalities() == ["gunw", "s1grdm", "s2rgbm"]
    s2, s1, gunw = get_modality("s2rgbm"), get_modality("s1grdm"), get_modality("gunw")
    assert s2.channels[:3] == ("01_red", "01_green", "01_blue") and len(s2.channels) == 9
    assert s1.channels[2] == "01_vvvh" and len(s1.channels) == 9
    assert gunw.variable and gunw.max_channels == 8 and gunw.pixel_size_m == 90
    assert (s2.dtype, s1.dtype, gunw.dtype) == ("uint8", "int16", "uint8")


def test_encode_decode_roundtrip_within_quantisation():
    s2 = get_modality("s2rgbm")
    x = np.random.default_rng(0).uniform(0, 0.3, (2, 9, 4, 4)).astype(np.float32)
    stored, valid = s2.encode(x)
    assert stored.dtype == np.uint8 and valid.all()
    np.testing.assert_allclose(s2.decode(stored), x, atol=s2.scale / 2 + 1e-6)


def test_encode_marks_cloudy_channels_invalid_and_fills_small_holes():
    s1 = get_modality("s1grdm")
    x = np.full((9, 10, 10), -12.0, dtype=np.float32)
    x[0, 0, :5] = np.nan  # 5 % missing -> filled with the median
    x[1, :5] = np.nan  # 50 % missing -> invalid
    stored, valid = s1.encode(x)
    assert valid.tolist() == [True, False] + [True] * 7
    dec = s1.decode(stored, valid)
    assert np.isnan(dec[1]).all() and np.allclose(dec[0], -12.0)


def test_encode_clips_to_valid_range():
    gunw = get_modality("gunw")
    stored, _ = gunw.encode(np.array([[[[1.7, -0.2]]]], dtype=np.float32))
    assert gunw.decode(stored).ravel().tolist() == [1.0, 0.0]


def test_normalize_uses_channel_kind_and_zeroes_nan():
    s1 = get_modality("s1grdm")
    x = np.stack([np.full((2, 2), -11.0), np.full((2, 2), -18.0), np.full((2, 2), np.nan)])
    out = s1.normalize(x, ["01_vv", "01_vh", "01_vvvh"])
    assert np.allclose(out, 0.0)
    x[0, 0, 0], x[1, 0, 0] = np.inf, -np.inf  # infinite values become 0 too
    out = s1.normalize(x, ["01_vv", "01_vh", "01_vvvh"])
    assert out.dtype == np.float32 and np.isfinite(out).all() and out[0, 0, 0] == 0.0
    swapped = s1.normalize(x[:2], ["01_vh", "01_vv"])  # other names: other statistics
    assert (swapped != 0.0).any()
    with pytest.raises(ValueError, match="channel names"):
        s1.normalize(x, ["01_vv"])


def test_user_modality_from_yaml(tmp_path):
    p = tmp_path / "ndvi.yaml"
    p.write_text(
        "name: ndvi\nchannels: [01_ndvi, 02_ndvi]\npixel_size_m: 10\n"
        "storage: {dtype: int16, scale: 0.0001}\nvalid_range: [-1, 1]\n"
        "normalize: {default: {mean: 0.3, std: 0.2}}\n"
    )
    m = get_modality(p)
    assert m.name == "ndvi" and m.max_channels == 2 and m.stats_for("01_ndvi") == (0.3, 0.2)
    assert Modality.from_dict(m.to_dict()) == m


@pytest.mark.parametrize(
    "text, match",
    [
        ("name: x\nchannels: null\n", "max_channels"),
        ("name: x\nchannels: [a]\nstorage: {dtype: complex64}\n", "dtype"),
        ("- just a list\n", "mapping"),
        ("name: x\nchannels: [a]\nnormalize: {default: {mean: 0, std: 0}}\n", "std"),
    ],
)
def test_bad_modality_yaml_names_the_file(tmp_path, text, match):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        load_modality(p)
    assert "bad.yaml" in str(err.value) or match == "mapping"


def test_unknown_modality_lists_builtins():
    with pytest.raises(ValueError, match="s2rgbm"):
        get_modality("landsat")


def test_unknown_keys_in_a_modality_file_are_refused(tmp_path):
    from eoclip.data.modalities import load_modality
    from eoclip.errors import ConfigError

    spec = tmp_path / "ndvi.yaml"
    spec.write_text(
        "name: ndvi\nchannels: [01_ndvi]\nstorage: {dtype: int16, scale: 0.0001}\n"
        "valid_rnge: [-1, 1]\n"
    )  # a typo must not be ignored
    with pytest.raises(ConfigError, match=r"unknown keys \['valid_rnge'\]"):
        load_modality(spec)
    spec.write_text("name: ndvi\nchannels: [01_ndvi]\nstorage: {dtype: int16, scael: 0.0001}\n")
    with pytest.raises(ConfigError, match=r"unknown keys \['scael'\]"):
        load_modality(spec)
