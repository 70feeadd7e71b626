"""Embedding export: every chip of a ChipStore through a checkpoint into an EmbeddingTable.

One process:
    eoclip embed --checkpoint runs/demo/best --store demo_out/world --out emb/pretrained.parquet
Several processes (parts are dealt round-robin to the ranks, rank 0 merges):
    torchrun --nproc_per_node=4 $(which eoclip) embed --checkpoint ... --store ... --out ...

Channel policy (towers take ONE channel per image, paper section 4.1), per modality:

- ``mean`` (default): every valid channel of the chip is embedded; the L2-normalised vectors are
  averaged and re-normalised. Deterministic and uses all the data.
- ``random``: the paper's inference: one random valid channel, seeded per (seed, chip, modality),
  so the result does not depend on the part size or the number of processes.
- a channel name (``02_red``, ``20200312_20200217``): that channel only; a chip where it is
  missing or invalid gets no vector.

Several policies can be given as ``random`` / ``mod=policy,mod=policy``; a bare channel name
applies to the modalities that have it, the others use ``mean``. A chip without a modality (or
without the chosen channel) gets a null vector and an empty ``emb_<m>_channels``, never zeros.

Resuming: chips are processed in parts of ``part_chips`` written to
``<out>.parts/part-XXXXX.parquet`` (temporary name, then rename) with a ``manifest.json`` of the
settings. A rerun computes only the missing parts; once all exist they are merged into ``out``
and the parts folder is removed.
"""

from __future__ import annotations

import json
import shutil
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import zarr
from tqdm.auto import tqdm

from eoclip import fsio
from eoclip.data.modalities import Modality
from eoclip.data.store import ChipStore
from eoclip.embeddings.table import read_embedding_table, write_embedding_table
from eoclip.model import ModelConfig, MultiTowerCLIP
from eoclip.model.pretrained import ModelLoadError, from_pretrained, model_folder, read_model_meta
from eoclip.train.distributed import DistEnv, barrier, cleanup_distributed, setup_distributed

__all__ = ["POLICIES", "EmbedConfig", "EmbedError", "embed_store", "load_embedder",
           "parse_channel_policy", "select_channels"]

POLICIES = ("mean", "random")
MANIFEST = "manifest.json"


class EmbedError(ValueError):
    """Bad embed input: checkpoint, store, channel policy or stale parts (message says the fix)."""


@dataclass
class EmbedConfig:
    """What `embed_store` computes."""

    checkpoint: str  # checkpoint folder (`runs/<name>/best`) or a run folder (its best/ is used)
    store: str  # ChipStore folder or fsspec URL
    out: str  # EmbeddingTable .parquet to write
    channels: str = "mean"  # channel policy: mean | random | <channel> | mod=policy,...
    batch_size: int = 256  # single-channel images per forward pass
    part_chips: int | None = None  # chips per resumable part; None = the store's shard size
    untrained: bool = False  # random init of the checkpoint's architecture (a baseline)
    seed: int = 0  # random channel choice and the untrained init
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    overwrite: bool = False  # discard an existing table and parts made with other settings
    progress: bool = True  # progress bar (rank 0)

    def validate(self) -> None:
        """Raise EmbedError naming the field for a value that cannot work."""
        if self.batch_size < 1:
            raise EmbedError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.part_chips is not None and self.part_chips < 1:
            raise EmbedError(f"part_chips must be >= 1, got {self.part_chips}")
        if not str(self.out).endswith(".parquet"):
            raise EmbedError(f"--out {self.out!r} should be a .parquet file")


def _checkpoint_dir(path: str | Path) -> Path:
    try:
        return model_folder(path)
    except ModelLoadError as err:
        raise EmbedError(str(err)) from err


def load_embedder(checkpoint: str | Path, untrained: bool = False, seed: int = 0,
                  device: str | torch.device = "cpu") -> tuple[MultiTowerCLIP, str, dict]:
    """The model that embeds, its hash and the checkpoint metadata.

    Args:
        checkpoint: checkpoint folder, a run folder holding `best/`, or an exported model
            (`eoclip.model.export_model`; same weights, same hash, same embeddings).
        untrained: build the same architecture with random weights (`torch.manual_seed(seed)`).
        seed: seed of the untrained initialisation.
        device: where the model lives.

    Returns:
        (model in eval mode, checkpoint hash or ``untrained-<seed>``, checkpoint.json dict).

    Raises:
        EmbedError: no such folder, or not a valid checkpoint (the message names the file).
    """
    path = _checkpoint_dir(checkpoint)
    try:
        if untrained:
            meta = read_model_meta(path, verify=False)
            config = ModelConfig.from_dict(meta["model_config"], source=str(path))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = MultiTowerCLIP(config)
            return model.to(device).eval(), f"untrained-{seed}", meta
        model, meta = from_pretrained(path, map_location=device, with_meta=True)
    except (ModelLoadError, KeyError, ValueError) as err:
        raise EmbedError(f"cannot load checkpoint {path}: {err}") from err
    return model, str(meta["weights_sha256"]), meta


def parse_channel_policy(spec: str, store: ChipStore, modalities: list[str]) -> dict[str, str]:
    """Per-modality policy from a spec like ``mean``, ``random``, ``02_red`` or ``s2rgbm=02_red``.

    Raises:
        EmbedError: unknown modality, or a channel name no modality has (lists the names).
    """
    policies = {m: "mean" for m in modalities}
    for item in [s.strip() for s in str(spec).split(",") if s.strip()]:
        mod, sep, policy = item.partition("=")
        if sep:
            if mod not in policies:
                raise EmbedError(f"channel policy {item!r}: no modality {mod!r} in {modalities}")
            _check_channel(policy, store, [mod])
            policies[mod] = policy
        elif item in POLICIES:
            policies = dict.fromkeys(modalities, item)
        else:
            for m in _check_channel(item, store, modalities):
                policies[m] = item
    return policies


def _check_channel(policy: str, store: ChipStore, mods: list[str]) -> list[str]:
    """Modalities of `mods` that know channel `policy` (raises if none does)."""
    if policy in POLICIES:
        return list(mods)
    having = [m for m in mods if policy in _all_channel_names(store, m)]
    if not having:
        known = {m: sorted(_all_channel_names(store, m))[:12] for m in mods}
        raise EmbedError(
            f"channel {policy!r} is not a policy {POLICIES} nor a channel of {mods}; "
            f"channels are e.g. {known}"
        )
    return having


def _all_channel_names(store: ChipStore, mod: str) -> set[str]:
    m = store.modalities[mod]
    if not m.variable:
        return set(m.channels)
    return {c for chans in store.index[f"{mod}_channels"] for c in chans}


def select_channels(policy: str, valid: np.ndarray, names: np.ndarray, positions: np.ndarray,
                    seed: int, modality: str) -> np.ndarray:
    """Which channel slots of each chip feed its vector.

    Args:
        policy: ``mean``, ``random`` or a channel name.
        valid: bool (N, C) validity of each slot.
        names: str (N, C) slot names.
        positions: int (N,) store positions of the chips (seed the random choice).
        seed: root seed of the random choice.
        modality: modality name (part of the random seed).

    Returns:
        bool (N, C): the chosen slots (a row of False = no vector for that chip).
    """
    if policy == "mean":
        return valid.copy()
    if policy == "random":
        sel = np.zeros_like(valid)
        salt = zlib.crc32(modality.encode())
        for i, (pos, row) in enumerate(zip(positions, valid, strict=True)):
            slots = np.flatnonzero(row)
            if len(slots):
                rng = np.random.default_rng([seed, int(pos), salt])
                sel[i, rng.choice(slots)] = True
        return sel
    return valid & (names == policy)


def _slot_names(store: ChipStore, mod: str, lo: int, hi: int) -> np.ndarray:
    m = store.modalities[mod]
    if m.variable:
        raw = np.asarray(store.arrays(mod)["names"][lo:hi])
        return np.array([[str(v) for v in row] for row in raw], dtype=object).reshape(raw.shape)
    return np.tile(np.array(m.channels, dtype=object), (hi - lo, 1))


@torch.inference_mode()
def _embed_modality(model: MultiTowerCLIP, m: Modality, stored: np.ndarray, sel: np.ndarray,
                    names: np.ndarray, batch_size: int, device: torch.device, bar) -> np.ndarray:
    """Vectors of one modality for a part: float32 (N, D), NaN rows where nothing was selected."""
    rows, slots = np.nonzero(sel)
    out = np.zeros((len(sel), model.embed_dim), dtype=np.float64)
    for b in range(0, len(rows), batch_size):
        r, s = rows[b : b + batch_size], slots[b : b + batch_size]
        x = m.normalize(m.decode(stored[r, s]), names[r, s].tolist())  # (k, H, W)
        emb = model.encode(m.name, torch.from_numpy(x[:, None]).to(device), normalize=True)
        np.add.at(out, r, emb.float().cpu().numpy().astype(np.float64))
        bar.update(len(r))
    count = sel.sum(axis=1)
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.divide(out, norm, out=np.zeros_like(out), where=norm > 0)
    out[count == 0] = np.nan
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


def _part_table(model, store, policies, cfg, lo, hi, device, bar) -> pa.Table:
    """Embeddings of chips [lo, hi) as an Arrow table (chip_id, emb_<m>, emb_<m>_channels)."""
    cols = {"chip_id": pa.array(store.index["chip_id"].iloc[lo:hi].astype(str).tolist())}
    for mod, policy in policies.items():
        m = store.modalities[mod]
        valid = store.valid_mask(mod)[lo:hi]
        names = _slot_names(store, mod, lo, hi)
        sel = select_channels(policy, valid, names, np.arange(lo, hi), cfg.seed, mod)
        stored = _read_pixels(store.arrays(mod)["pixels"], lo, hi, sel)
        vecs = _embed_modality(model, m, stored, sel, names, cfg.batch_size, device, bar)
        absent = sel.sum(axis=1) == 0
        flat = pa.array(np.nan_to_num(vecs).ravel(), pa.float32())
        cols[f"emb_{mod}"] = pa.FixedSizeListArray.from_arrays(
            flat, model.embed_dim, mask=pa.array(absent))
        cols[f"emb_{mod}_channels"] = pa.array(
            [names[i][sel[i]].tolist() for i in range(len(sel))], pa.list_(pa.string()))
    return pa.table(cols)


def _write_part(table: pa.Table, path: Path) -> None:
    with fsio.atomic_write(path, "wb") as f:
        pq.write_table(table, f)


def _manifest(cfg: EmbedConfig, store: ChipStore, ckpt_hash: str, policies: dict, dim: int,
              part_chips: int) -> dict:
    return {"store": store.url, "n_chips": len(store), "checkpoint_hash": ckpt_hash,
            "channel_policies": policies, "seed": cfg.seed, "dim": dim, "part_chips": part_chips,
            "first_chip": store.chip_ids[0] if len(store) else None,
            "last_chip": store.chip_ids[-1] if len(store) else None}


def _prepare_parts(parts_dir: Path, manifest: dict, overwrite: bool, master: bool) -> None:
    mpath = parts_dir / MANIFEST
    if mpath.is_file():
        old = json.loads(mpath.read_text())
        if old == manifest:
            return
        if not overwrite:
            raise EmbedError(
                f"{parts_dir} holds parts of another export ({mpath} differs: e.g. checkpoint "
                f"{old.get('checkpoint_hash')} vs {manifest['checkpoint_hash']}); pass "
                "--overwrite to discard them"
            )
        if master:
            shutil.rmtree(parts_dir)
    if master:
        parts_dir.mkdir(parents=True, exist_ok=True)
        fsio.write_text_atomic(mpath, json.dumps(manifest, indent=2))


def _up_to_date(out: str, manifest: dict, policy: str) -> bool:
    """True when `out` already holds this export; raises when it holds another one."""
    try:
        gdf, meta = read_embedding_table(out)
    except FileNotFoundError:
        return False
    same = (meta.get("checkpoint_hash") == manifest["checkpoint_hash"]
            and meta.get("channel_policy") == policy and meta.get("seed") == manifest["seed"]
            and len(gdf) == manifest["n_chips"])
    if not same:
        raise EmbedError(f"{out} exists and holds another export (checkpoint "
                         f"{meta.get('checkpoint_hash')}, policy {meta.get('channel_policy')!r});"
                         " pass --overwrite to replace it")
    return True


def _merge(cfg: EmbedConfig, store: ChipStore, parts: list[Path], meta: dict) -> str:
    """Join all parts with the store index and write the EmbeddingTable; remove the parts."""
    table = pa.concat_tables([pq.read_table(p) for p in parts])
    if table["chip_id"].to_pylist() != store.chip_ids:
        raise EmbedError(f"{parts[0].parent}: parts do not cover the store's chips in order; "
                         "delete the folder and rerun")
    idx = store.index
    keep = ["chip_id", "geometry", "aoi", "split", *[c for c in idx if c.startswith("label_")]]
    gdf = gpd.GeoDataFrame(idx[keep].copy(), geometry="geometry", crs=idx.crs)
    dim = meta["dim"]
    for mod in meta["modalities"]:
        col = table[f"emb_{mod}"].combine_chunks()
        values = np.asarray(col.values, dtype=np.float32).reshape(-1, dim)
        null = np.asarray(col.is_null())
        gdf[f"emb_{mod}"] = [None if n else v for v, n in zip(values, null, strict=True)]
        gdf[f"emb_{mod}_channels"] = table[f"emb_{mod}_channels"].to_pylist()
    gdf["checkpoint_hash"] = meta["checkpoint_hash"]
    path = write_embedding_table(gdf, cfg.out, meta)
    shutil.rmtree(parts[0].parent, ignore_errors=True)
    return path


def embed_store(cfg: EmbedConfig) -> str:
    """Export the embeddings of every chip of a store (see the module docstring).

    Returns:
        The path of the EmbeddingTable (on every rank, once rank 0 has merged it).

    Raises:
        EmbedError: bad checkpoint, store, policy, size mismatch, stale parts or table.
    """
    cfg.validate()
    env = setup_distributed(cfg.device)
    try:
        return _embed(cfg, env)
    finally:
        cleanup_distributed(env)


def _open(cfg: EmbedConfig, device: torch.device):
    try:
        store = ChipStore.open(cfg.store)
    except (OSError, RuntimeError) as err:
        raise EmbedError(f"cannot open store {cfg.store}: {err}") from err
    if len(store) == 0:
        raise EmbedError(f"store {store.url} holds no chips")
    model, ckpt_hash, ckpt_meta = load_embedder(cfg.checkpoint, cfg.untrained, cfg.seed, device)
    mods = [m for m in model.modalities if m in store.modalities]
    if not mods:
        raise EmbedError(f"checkpoint towers {list(model.modalities)} share no modality with "
                         f"{store.url} ({list(store.modalities)})")
    if model.config.tower.img_size != store.chip_px:
        raise EmbedError(f"checkpoint {cfg.checkpoint} takes {model.config.tower.img_size} px "
                         f"chips but {store.url} holds {store.chip_px} px chips")
    return store, model, ckpt_hash, ckpt_meta, mods


def _embed(cfg: EmbedConfig, env: DistEnv) -> str:
    store, model, ckpt_hash, ckpt_meta, mods = _open(cfg, env.device)
    policies = parse_channel_policy(cfg.channels, store, mods)
    part_chips = int(cfg.part_chips or store.shard_chips)
    manifest = _manifest(cfg, store, ckpt_hash, policies, model.embed_dim, part_chips)
    out = Path(cfg.out)
    if cfg.overwrite and env.master and out.exists():
        out.unlink()
    barrier(env)
    if _up_to_date(cfg.out, manifest, cfg.channels):
        return cfg.out
    parts_dir = out.with_name(out.name + ".parts")
    if env.master:
        _prepare_parts(parts_dir, manifest, cfg.overwrite, True)
    barrier(env)
    if not env.master:
        _prepare_parts(parts_dir, manifest, False, False)
    starts = list(range(0, len(store), part_chips))
    paths = [parts_dir / f"part-{i:05d}.parquet" for i in range(len(starts))]
    todo = [i for i in range(env.rank, len(starts), env.world_size) if not paths[i].is_file()]
    total = sum(_n_images(store, policies, cfg, starts[i], part_chips) for i in todo)
    with tqdm(total=total, unit="img", desc="embed", disable=not (cfg.progress and env.master)) as bar:
        for i in todo:
            lo, hi = starts[i], min(starts[i] + part_chips, len(store))
            _write_part(_part_table(model, store, policies, cfg, lo, hi, env.device, bar),
                        paths[i])
    barrier(env)
    if env.master:
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise EmbedError(f"{parts_dir}: parts {missing[:5]} are missing after all ranks ran")
        meta = {"source": "untrained" if cfg.untrained else "pretrained",
                "channel_policy": cfg.channels, "channel_policies": policies,
                "checkpoint_hash": ckpt_hash, "checkpoint": str(_checkpoint_dir(cfg.checkpoint)),
                "store": store.url, "seed": cfg.seed, "modalities": mods, "dim": model.embed_dim,
                "model_config": ckpt_meta.get("model_config"), "embed_config": asdict(cfg)}
        _merge(cfg, store, paths, meta)
    barrier(env)
    return cfg.out


def _n_images(store: ChipStore, policies: dict, cfg: EmbedConfig, lo: int, n: int) -> int:
    """Images a part will embed (for the progress bar), from the index's valid channel lists."""
    total = 0
    for mod, policy in policies.items():
        chans = store.index[f"{mod}_channels"].iloc[lo : lo + n]
        if policy == "mean":
            total += int(sum(len(c) for c in chans))
        elif policy == "random":
            total += int(sum(len(c) > 0 for c in chans))
        else:
            total += int(sum(policy in list(c) for c in chans))
    return total
