"""The pretraining loop on a tiny store: it learns, writes the run folder, resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import TINY_MODEL, tiny_config

from eoclip.model import create_model
from eoclip.train import load_checkpoint, pretrain, train_order
from eoclip.train.metrics import MetricsLog


def _weights(path):
    model, _ = load_checkpoint(path)
    return model.state_dict()


def test_pretrain_learns_and_writes_run_folder(tiny_store, tmp_path):
    result = pretrain(tiny_config(tiny_store, tmp_path, epochs=6, lr=5e-3))
    assert result.step == 6 * 3 and result.epoch == 6
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {
        "last",
        "best",
        "metrics.jsonl",
        "config.yaml",
        ".eoclip.lock",
    }  # the writer lock stays, released
    first, last = result.history[0], result.history[-1]
    # Learned: validation loss well under chance (log 8 - per-pair n) and under epoch 1's.
    assert last["val_loss"] < first["val_loss"]
    assert last["val_loss"] < last["val_chance_loss"] - 0.3
    r1 = [v["r@1"] for v in last["recall"].values()]
    assert len(last["recall"]) == 6  # ordered pairs of 3 modalities
    assert sum(r1) / len(r1) > 2 * last["recall"]["s2rgbm->s1grdm"]["chance@1"]
    # best/ is the epoch with the lowest val loss; its metadata says so.
    best_meta = json.loads((run / "best" / "checkpoint.json").read_text())
    assert best_meta["best_val_loss"] == pytest.approx(min(h["val_loss"] for h in result.history))
    assert best_meta["modalities"] == ["s2rgbm", "s1grdm", "gunw"] and best_meta["img_size"] == 16
    records = MetricsLog(run / "metrics.jsonl").read()
    assert sum(r["kind"] == "epoch" for r in records) == 6
    assert sum(r["kind"] == "train" for r in records) == 18
    assert not [p for p in run.iterdir() if p.name.startswith(".tmp")]  # no temporary folders left


def test_resume_mid_epoch_gives_identical_weights(tiny_store, tmp_path):
    full = pretrain(tiny_config(tiny_store, tmp_path / "a", epochs=2))
    # Stop after 4 steps: epoch 2 (index 1), one batch done; then resume to the end.
    stopped = pretrain(tiny_config(tiny_store, tmp_path / "b", epochs=2, max_steps=4))
    assert stopped.step == 4 and stopped.epoch == 1
    meta = json.loads((tmp_path / "b" / "run" / "last" / "checkpoint.json").read_text())
    assert meta["step"] == 4
    resumed = pretrain(tiny_config(tiny_store, tmp_path / "b", epochs=2), resume=True)
    assert resumed.step == full.step == 6
    a, b = _weights(full.last), _weights(resumed.last)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.best_val_loss == full.best_val_loss


def test_resume_from_step_checkpoint_at_epoch_boundary(tiny_store, tmp_path):
    full = pretrain(tiny_config(tiny_store, tmp_path / "a", epochs=2))
    pretrain(tiny_config(tiny_store, tmp_path / "b", epochs=2, max_steps=3, checkpoint_every=2))
    resumed = pretrain(tiny_config(tiny_store, tmp_path / "b", epochs=2), resume=True)
    a, b = _weights(full.last), _weights(resumed.last)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["epoch"] for h in resumed.history] == [2]  # epoch 1 was not trained twice


def test_existing_run_is_not_overwritten(tiny_store, tmp_path):
    pretrain(tiny_config(tiny_store, tmp_path, epochs=1, max_steps=1))
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain(tiny_config(tiny_store, tmp_path, epochs=1))


def test_bad_inputs_are_named(tiny_store, tmp_path):
    with pytest.raises(ValueError, match="cannot fill one batch"):
        pretrain(tiny_config(tiny_store, tmp_path, batch_size=64))
    with pytest.raises(ValueError, match="no store"):
        pretrain(tiny_config("", tmp_path))
    with pytest.raises(ValueError, match="lr"):
        pretrain(tiny_config(tiny_store, tmp_path, lr=-1.0))


def test_train_order_is_a_deterministic_partition():
    one = train_order(20, epoch=3, seed=1)
    assert one == train_order(20, epoch=3, seed=1) and one != train_order(20, epoch=4, seed=1)
    ranks = [train_order(20, 3, 1, rank=r, world_size=2) for r in range(2)]
    assert ranks[0] == one[0::2] and ranks[1] == one[1::2]


def test_resume_refuses_another_store_or_changed_settings(tiny_store, tmp_path):
    from train_helpers import make_store

    from eoclip.errors import ResumeMismatchError

    pretrain(tiny_config(tiny_store, tmp_path, epochs=2, max_steps=1))
    with pytest.raises(ResumeMismatchError, match=r"batch_size: 8 -> 4"):
        pretrain(tiny_config(tiny_store, tmp_path, epochs=2, batch_size=4), resume=True)
    with pytest.raises(ResumeMismatchError, match=r"lr: 0.003 -> 0.001"):
        pretrain(tiny_config(tiny_store, tmp_path, epochs=2, lr=1e-3), resume=True)
    other = make_store(tmp_path / "other", n=40, seed=1)  # same size, other chips
    with pytest.raises(ResumeMismatchError, match="store content"):
        pretrain(tiny_config(other.url, tmp_path, epochs=2), resume=True)
    # Extending the run is allowed, and so is the same store under another path.
    import shutil

    shutil.copytree(tiny_store, tmp_path / "copy")
    result = pretrain(tiny_config(tmp_path / "copy", tmp_path, epochs=3, max_steps=4), resume=True)
    assert result.step == 4


def test_resume_cleans_a_killed_attempt(tiny_store, tmp_path):
    pretrain(tiny_config(tiny_store, tmp_path, epochs=2, max_steps=3))
    run = tmp_path / "run"
    # What a kill leaves: a half-written checkpoint folder and log lines past the checkpoint.
    (run / ".tmp-last-deadbeef").mkdir()
    log = MetricsLog(run / "metrics.jsonl")
    log.write({"kind": "train", "step": 5, "epoch": 1, "loss": 1.0})
    log.write({"kind": "epoch", "epoch": 2, "step": 6, "train_loss": 1.0})
    pretrain(tiny_config(tiny_store, tmp_path, epochs=2), resume=True)
    records = log.read()
    assert not (run / ".tmp-last-deadbeef").exists()
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 7))
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]


def test_a_second_writer_is_refused_at_once(tiny_store, tmp_path):
    from eoclip.errors import OutputLockedError
    from eoclip.lock import output_lock

    with output_lock(tmp_path / "run"):  # another process's pretrain, as far as the lock goes
        with pytest.raises(OutputLockedError, match=r"being written by pid \d+"):
            pretrain(tiny_config(tiny_store, tmp_path))
    pretrain(tiny_config(tiny_store, tmp_path, epochs=1))  # released: the next writer goes on


def test_compiled_towers_and_grad_checkpointing_train_like_eager(tiny_store, tmp_path):
    # The GPU switches (torch.compile, activation checkpointing) on a CPU: `aot_eager` runs
    # dynamo's graph capture and AOT autograd without generating code, so it is cheap here.
    eager = pretrain(tiny_config(tiny_store, tmp_path / "a", epochs=1))
    other = pretrain(
        tiny_config(
            tiny_store, tmp_path / "b", epochs=1, compile="aot_eager", grad_checkpointing=True
        )
    )
    a, b = _weights(eager.last), _weights(other.last)
    assert a.keys() == b.keys()  # compiled modules keep their parameter names
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="compile must be"):
        tiny_config(tiny_store, tmp_path / "c", compile="true").validate()


def test_optimizer_is_fused_only_on_cuda(tiny_store, tmp_path):
    from eoclip.train.loop import make_optimizer

    config = tiny_config(tiny_store, tmp_path)
    model = create_model("demo", img_size=16, **config.model_overrides)
    assert not make_optimizer(model, config).defaults["fused"]


def test_reconstruction_term_trains_resumes_and_leaves_export_alone(tiny_store, tmp_path):
    from eoclip.data.dataset import ChipDataset, collate_samples

    cfg = dict(epochs=3, recon_weight=1.0, lr=5e-3)
    result = pretrain(tiny_config(tiny_store, tmp_path / "a", **cfg))
    train = [
        r
        for r in MetricsLog(tmp_path / "a" / "run" / "metrics.jsonl").read()
        if r["kind"] == "train"
    ]
    assert all(r["loss"] == pytest.approx(r["clip"] + r["recon"], rel=1e-4) for r in train)
    assert train[-1]["recon"] < 0.7 * train[0]["recon"]  # the heads learn the cell means
    model, _ = load_checkpoint(result.last)
    assert model.config.recon_channels == {"s2rgbm": 9, "s1grdm": 9, "gunw": 1}
    assert set(model.recon) == {"s2rgbm", "s1grdm", "gunw"}
    # The validation loss is the CLIP loss alone (validation samples carry no targets).
    assert result.history[-1]["val_loss"] < result.history[-1]["val_chance_loss"] + 1
    batch = collate_samples([ChipDataset(tiny_store, "val", seed=0)[i] for i in range(4)])
    assert "recon" not in model.eval()(batch)
    # Stopped after 4 steps and resumed: the same weights as the uninterrupted run.
    pretrain(tiny_config(tiny_store, tmp_path / "b", max_steps=4, **cfg))
    resumed = pretrain(tiny_config(tiny_store, tmp_path / "b", **cfg), resume=True)
    a, b = _weights(result.last), _weights(resumed.last)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_reconstruction_settings_are_checked(tiny_store, tmp_path):
    with pytest.raises(ValueError, match="recon_weight must be >= 0"):
        pretrain(tiny_config(tiny_store, tmp_path, recon_weight=-1.0))
    with pytest.raises(ValueError, match="crop_scale cannot be combined with recon_weight"):
        pretrain(tiny_config(tiny_store, tmp_path, recon_weight=1.0, augment={"crop_scale": 0.5}))


def test_fp8_trains_like_float32_and_stays_fixed_for_a_run(tiny_store, tmp_path):
    # Float8 block linears, emulated on the CPU: the same run, the same curve within fp8's
    # rounding, the same checkpoint layout; a run cannot switch precision when resumed.
    pytest.importorskip("torchao")
    from eoclip.errors import ResumeMismatchError

    ref = pretrain(tiny_config(tiny_store, tmp_path / "a", epochs=2))
    # compiled as on a GPU (`aot_eager` traces the float8 casts without generating code)
    f8 = pretrain(tiny_config(tiny_store, tmp_path / "b", epochs=2, fp8=True, compile="aot_eager"))
    a, b = _weights(ref.last), _weights(f8.last)
    assert a.keys() == b.keys()  # loads into a plain model: fp8 is not in the checkpoint
    torch.manual_seed(0)
    init = create_model("demo", img_size=16, **TINY_MODEL).state_dict()
    ref_update = torch.cat([(a[k] - init[k]).flatten() for k in a])
    fp8_update = torch.cat([(b[k] - init[k]).flatten() for k in a])
    # The same update up to float8 rounding: measured 0.12 of its size here (another batch
    # size gives 0.94, no training 1), and not float32's update to the bit.
    rel = ((fp8_update - ref_update).norm() / ref_update.norm()).item()
    assert 1e-3 < rel < 0.25, rel
    with pytest.raises(ResumeMismatchError, match=r"fp8: True -> False"):
        pretrain(tiny_config(tiny_store, tmp_path / "b", epochs=3), resume=True)
    with pytest.raises(ValueError, match="fp8 must be true or false"):
        tiny_config(tiny_store, tmp_path / "c", fp8="yes").validate()
