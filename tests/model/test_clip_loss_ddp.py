"""Two gloo processes on half batches reproduce one process on the whole batch.

Each rank wraps the same tiny `MultiTowerCLIP` in DDP (find_unused_parameters=False) and
computes `MultiModalClipLoss(rank, 2)` on its rows. Expected, as the loss module documents:
- the loss and per-pair losses on every rank equal the single-process ones;
- d loss / d (local features) on rank r equals world_size x the single-process gradient of
  those rows: each rank's loss is the global loss, and the loss scales the local gradient by
  world_size to undo DDP's averaging over ranks;
- hence the DDP-averaged parameter gradients (towers and logit scale) equal the
  single-process gradients.
The second scenario splits 5/3 (unequal batch sizes) and runs a second DDP step, which fails
if any parameter missed a gradient in the first (the gunw tower on rank 1 sees no chip).
"""

import socket
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from eoclip.model import MultiModalClipLoss, create_model

WORLD_SIZE = 2
BATCH = 8
SPLITS = [[(0, 4), (4, 8)], [(0, 5), (5, 8)]]  # per scenario, (start, stop) of each rank


def tiny_model():
    torch.manual_seed(0)
    model = create_model("demo", img_size=16, width=16, depth=1, heads=2, embed_dim=8)
    return model.double()


def make_batch():
    gen = torch.Generator().manual_seed(0)
    present = {
        "s2rgbm": torch.tensor([1, 1, 0, 1, 1, 1, 0, 1], dtype=torch.bool),
        "s1grdm": torch.tensor([1, 0, 1, 1, 1, 1, 1, 1], dtype=torch.bool),
        "gunw": torch.tensor([1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.bool),
    }
    batch = {"chip_id": [f"c{i}" for i in range(BATCH)]}
    for mod, mask in present.items():
        x = torch.randn(BATCH, 1, 16, 16, generator=gen, dtype=torch.float64)
        batch[mod] = x * mask[:, None, None, None]
        batch[f"{mod}_present"] = mask
    return batch


def slice_batch(batch, lo, hi):
    return {k: v[lo:hi] for k, v in batch.items()}


def step(model, loss_fn, batch):
    """One forward/backward; returns loss, pairs, feature grads and parameter grads."""
    model.zero_grad()
    out = model(batch)
    for feats in out["features"].values():
        feats.retain_grad()
    result = loss_fn(out)
    result["loss"].backward()
    inner = model.module if isinstance(model, DistributedDataParallel) else model
    return {
        "loss": result["loss"].detach(),
        "pairs": {k: v.detach() for k, v in result["pairs"].items()},
        "feat_grads": {m: f.grad.clone() for m, f in out["features"].items()},
        "param_grads": {n: p.grad.clone() for n, p in inner.named_parameters()},
    }


def _worker(rank, port, folder):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=timedelta(seconds=60),
    )
    try:
        model = DistributedDataParallel(tiny_model())
        loss_fn = MultiModalClipLoss(rank=rank, world_size=WORLD_SIZE)
        batch = make_batch()
        results = [step(model, loss_fn, slice_batch(batch, *split[rank])) for split in SPLITS]
        torch.save(results, f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(180)
def test_two_processes_match_one(tmp_path):
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]
    reference = step(tiny_model(), MultiModalClipLoss(), make_batch())
    assert set(reference["pairs"]) == {"s2rgbm~s1grdm", "s2rgbm~gunw", "s1grdm~gunw"}

    for scenario, split in enumerate(SPLITS):
        for rank, (lo, hi) in enumerate(split):
            got = ranks[rank][scenario]
            assert torch.allclose(got["loss"], reference["loss"], rtol=1e-10, atol=0)
            assert got["pairs"].keys() == reference["pairs"].keys()
            for key, value in reference["pairs"].items():
                assert torch.allclose(got["pairs"][key], value, rtol=1e-10, atol=0)
            for mod, grad in reference["feat_grads"].items():
                assert got["feat_grads"][mod].shape == (hi - lo, 8)
                torch.testing.assert_close(
                    got["feat_grads"][mod], WORLD_SIZE * grad[lo:hi], rtol=1e-9, atol=1e-12
                )
            for name, grad in reference["param_grads"].items():
                torch.testing.assert_close(
                    got["param_grads"][name], grad, rtol=1e-8, atol=1e-12, msg=name
                )
    # the check is not vacuous: the gunw tower and the logit scale did get gradients
    assert reference["param_grads"]["towers.gunw.proj.weight"].abs().sum() > 0
    assert reference["param_grads"]["logit_scale"].abs() > 0
