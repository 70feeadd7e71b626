"""Checkpoint folders: round trip, hash check, atomic replacement, resume state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from train_helpers import CHIP_PX, TINY_MODEL

from eoclip.model import create_model
from eoclip.train import CheckpointError, load_checkpoint, save_checkpoint
from eoclip.train.checkpoint import find_resume_checkpoint
from eoclip.train.checkpoint import restore_training_state as resume


@pytest.fixture
def model():
    torch.manual_seed(0)
    return create_model("demo", img_size=CHIP_PX, **TINY_MODEL)


def test_round_trip_restores_weights_and_metadata(model, tmp_path):
    path = save_checkpoint(
        tmp_path / "ck", model, step=7, epoch=1, best_val_loss=1.5, pretrain_config={"lr": 1e-3}
    )
    loaded, meta = load_checkpoint(path)
    assert not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert meta["step"] == 7 and meta["epoch"] == 1 and meta["best_val_loss"] == 1.5
    assert meta["modalities"] == list(model.modalities) and meta["img_size"] == CHIP_PX
    assert meta["pretrain_config"] == {"lr": 1e-3} and len(meta["weights_sha256"]) == 64
    # Readable without eoclip.
    assert set(load_file(str(path / "model.safetensors"))) == set(model.state_dict())
    assert not (path / "optimizer.pt").exists()  # weights-only when no optimizer is given


def test_corrupt_or_missing_files_are_named(model, tmp_path):
    path = save_checkpoint(tmp_path / "ck", model, step=1, epoch=0)
    with pytest.raises(CheckpointError, match="is not an eoclip model"):
        load_checkpoint(tmp_path)
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)
    (path / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt JSON"):
        load_checkpoint(path)


def test_overwrite_is_atomic_and_leaves_no_temporaries(model, tmp_path):
    save_checkpoint(tmp_path / "last", model, step=1, epoch=0)
    with torch.no_grad():
        model.logit_scale.add_(1.0)
    save_checkpoint(tmp_path / "last", model, step=2, epoch=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    _, meta = load_checkpoint(tmp_path / "last")
    assert meta["step"] == 2


def test_resume_restores_optimizer_rng_and_data_state(model, tmp_path):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.logit_scale.grad = torch.ones(())
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    torch.manual_seed(5)
    np.random.seed(5)  # noqa: NPY002  (the global generator is what resume restores)
    random.seed(5)
    save_checkpoint(
        tmp_path / "last",
        model,
        step=3,
        epoch=1,
        optimizer=opt,
        data_state={"epoch": 1, "batch_in_epoch": 2},
    )
    expected = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    torch.manual_seed(0)
    fresh = create_model("demo", img_size=CHIP_PX, **TINY_MODEL)
    opt2 = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    state = resume(find_resume_checkpoint(tmp_path), fresh, opt2)
    assert state["step"] == 3 and state["data"] == {"epoch": 1, "batch_in_epoch": 2}
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])  # noqa: NPY002
    assert random.random() == expected[2]
    assert torch.equal(
        opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
    )
    assert all(
        torch.equal(a, b) for a, b in zip(fresh.parameters(), model.parameters(), strict=True)
    )


def test_resume_needs_optimizer_state_and_matching_model(model, tmp_path):
    save_checkpoint(tmp_path / "w", model, step=1, epoch=0)
    opt = torch.optim.AdamW(model.parameters())
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        resume(tmp_path / "w", model, opt)
    assert find_resume_checkpoint(tmp_path) is None
    other = create_model("demo", img_size=CHIP_PX, **{**TINY_MODEL, "width": 16})
    save_checkpoint(tmp_path / "last", model, step=1, epoch=0, optimizer=opt)
    with pytest.raises(CheckpointError, match="does not fit"):
        resume(tmp_path / "last", other, torch.optim.AdamW(other.parameters()))
