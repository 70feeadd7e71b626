"""The forward side of the embedding export: stored pixels of a chip range in, vectors out.

Reading (zarr, in a thread) overlaps with the model; pixels cross to the device in their
compact stored dtype and are normalised there; bf16 autocast on CUDA.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import torch
import zarr

from eoclip.data.modalities import Modality
from eoclip.data.store import ChipStore
from eoclip.embeddings.channels import select_channels, slot_names
from eoclip.model import MultiTowerCLIP, autocast_for

__all__ = ["iter_part_tables", "model_input", "normalisation_stats"]


def normalisation_stats(m: Modality, names: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image normalisation (mean, std), float32 of shape (k, 1, 1), from k channel names."""
    st = np.array([m.stats_for(str(n)) for n in names], dtype=np.float32).reshape(-1, 2, 1, 1)
    return torch.from_numpy(st[:, 0].copy()), torch.from_numpy(st[:, 1].copy())


def model_input(m: Modality, stored: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Stored pixels (k, H, W) to the tower input (k, 1, H, W), on the tensor's device.

    The same float32 operations in the same order as ``m.normalize(m.decode(x), names)``
    (bit-identical on the CPU), but run where the model is: only the compact stored dtype
    (uint8 / int16) crosses to the GPU, a quarter or half of the float32 bytes.
    """
    x = stored.float()
    if m.quantized:
        x = x * torch.tensor(m.scale, dtype=torch.float32) + torch.tensor(m.offset, dtype=torch.float32)
    x = (x - mean.to(x.device)) / std.to(x.device)
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)[:, None]


@torch.inference_mode()
def _embed_modality(model: MultiTowerCLIP, m: Modality, stored: np.ndarray, sel: np.ndarray,
                    names: np.ndarray, batch_size: int, bf16: bool, device: torch.device,
                    bar) -> np.ndarray:
    """Vectors of one modality for a chip range: float32 (N, D), NaN rows where none selected.

    Every selected (chip, channel) image goes through the tower in batches of `batch_size`; a
    chip's vectors are summed on the device (float64) and normalised once, so there is one
    device-to-host copy per range and the CPU prepares the next batch while the GPU computes.
    """
    rows, slots = np.nonzero(sel)
    acc = torch.zeros((len(sel), model.embed_dim), dtype=torch.float64, device=device)
    for b in range(0, len(rows), batch_size):
        r, s = rows[b : b + batch_size], slots[b : b + batch_size]
        x = torch.from_numpy(np.ascontiguousarray(stored[r, s]))
        if device.type == "cuda":
            x = x.pin_memory()
        x = model_input(m, x.to(device, non_blocking=True), *normalisation_stats(m, names[r, s]))
        with autocast_for(device, bf16):
            emb = model.encode(m.name, x, normalize=True)
        acc.index_add_(0, torch.from_numpy(r).to(device), emb.double())
        bar.update(len(r))
    out = acc.cpu().numpy()
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.divide(out, norm, out=np.zeros_like(out), where=norm > 0)
    out[sel.sum(axis=1) == 0] = np.nan
    return out.astype(np.float32)


def _read_pixels(pixels: zarr.Array, lo: int, hi: int, sel: np.ndarray) -> np.ndarray:
    """Stored pixels (N, C, H, W) of chips [lo, hi), read only where `sel` (N, C) needs them.

    With one channel per chip (random or fixed policy) only those chunks are read, a ninth of
    the bytes of the whole block; unselected slots stay 0.
    """
    if sel.sum() > 0.5 * sel.size:
        return np.asarray(pixels[lo:hi])
    out = np.zeros((hi - lo, *pixels.shape[1:]), dtype=pixels.dtype)
    for slot in np.flatnonzero(sel.any(axis=0)):
        rows = np.flatnonzero(sel[:, slot])
        out[rows, slot] = pixels.get_orthogonal_selection((lo + rows, int(slot)))
    return out


def _load_range(store: ChipStore, policies: dict[str, str], seed: int, lo: int, hi: int) -> dict:
    """I/O of a chip range, per modality: (chosen slots (N, C), slot names (N, C), pixels)."""
    loaded = {}
    for mod, policy in policies.items():
        valid = store.valid_mask(mod)[lo:hi]
        names = slot_names(store, mod, lo, hi)
        sel = select_channels(policy, valid, names, np.arange(lo, hi), seed, mod)
        loaded[mod] = (sel, names, _read_pixels(store.arrays(mod)["pixels"], lo, hi, sel))
    return loaded


def iter_part_tables(model: MultiTowerCLIP, store: ChipStore, policies: dict[str, str],
                     bounds: list[tuple[int, int]], *, batch_size: int, seed: int, bf16: bool,
                     device: torch.device, bar) -> Iterator[pa.Table]:
    """The embeddings of each chip range ``[lo, hi)`` of `bounds`, in order, as Arrow tables.

    A reader thread loads range k + 1 (zarr decompression releases the GIL) while range k is
    embedded, so storage and the model work at the same time.

    Args:
        model: the embedder (eval mode, on `device`).
        store: the ChipStore.
        policies: channel policy per modality (`parse_channel_policy`).
        bounds: chip position ranges.
        batch_size: single-channel images per forward pass.
        seed: root seed of the ``random`` channel choice.
        bf16: bfloat16 autocast on CUDA.
        device: where the model runs.
        bar: a tqdm bar, advanced by the images embedded.

    Yields:
        Tables with ``chip_id``, ``emb_<m>`` (null where no channel was chosen) and
        ``emb_<m>_channels`` per range.
    """
    with ThreadPoolExecutor(1) as reader:
        ahead = reader.submit(_load_range, store, policies, seed, *bounds[0]) if bounds else None
        for k, (lo, hi) in enumerate(bounds):
            loaded = ahead.result()
            if k + 1 < len(bounds):
                ahead = reader.submit(_load_range, store, policies, seed, *bounds[k + 1])
            cols = {"chip_id": pa.array(store.index["chip_id"].iloc[lo:hi].astype(str).tolist())}
            for mod, (sel, names, stored) in loaded.items():
                vecs = _embed_modality(model, store.modalities[mod], stored, sel, names,
                                       batch_size, bf16, device, bar)
                flat = pa.array(np.nan_to_num(vecs).ravel(), pa.float32())
                cols[f"emb_{mod}"] = pa.FixedSizeListArray.from_arrays(
                    flat, model.embed_dim, mask=pa.array(sel.sum(axis=1) == 0))
                cols[f"emb_{mod}_channels"] = pa.array(
                    [names[i][sel[i]].tolist() for i in range(len(sel))], pa.list_(pa.string()))
            yield pa.table(cols)
