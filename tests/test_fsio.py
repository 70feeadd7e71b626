import pytest

from eoclip import fsio


@pytest.mark.parametrize("root", ["local", "memory://eoclip-fsio"])
def test_atomic_write_replaces_whole_files_only(tmp_path, root):
    base = str(tmp_path) if root == "local" else root
    path = f"{base}/sub/out.json"
    fsio.write_text_atomic(path, "first")
    fs, fs_path, _ = fsio.resolve(path)
    assert fs.cat_file(fs_path) == b"first"
    with pytest.raises(RuntimeError), fsio.atomic_write(path) as f:
        f.write(b"half of a new ver")
        raise RuntimeError("killed mid-write")
    assert fs.cat_file(fs_path) == b"first"  # the old file survives, no temporary is left
    assert [p.rsplit("/", 1)[1] for p in fs.ls(fs_path.rsplit("/", 1)[0], detail=False)] == [
        "out.json"
    ]
    fsio.write_json_atomic(fs, fs_path, {"b": 1, "a": 2})
    assert fsio.read_json(fs, fs_path) == {"b": 1, "a": 2}


def test_read_json_names_a_corrupt_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{nope")
    fs, fs_path, _ = fsio.resolve(p)
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        fsio.read_json(fs, fs_path)
