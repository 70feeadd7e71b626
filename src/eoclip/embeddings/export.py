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
from dataclasses import asdict, dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from eoclip import fsio
from eoclip.data.store import ChipStore
from eoclip.distributed import DistEnv, barrier, cleanup_distributed, setup_distributed
from eoclip.embeddings.channels import (
    count_images,
    parse_channel_policy,
    policy_dim,
    stacks_channels,
)
from eoclip.embeddings.compute import iter_part_tables, reader_processes
from eoclip.embeddings.table import read_embedding_table, write_embedding_table
from eoclip.errors import CheckpointError, EmbedError
from eoclip.lock import output_lock
from eoclip.model import ModelConfig, MultiTowerCLIP
from eoclip.model.fp8 import require_fp8, to_float8
from eoclip.model.pretrained import from_pretrained, model_folder, read_model_meta

__all__ = ["EmbedConfig", "EmbedError", "embed_store", "load_embedder"]

MANIFEST = "manifest.json"


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
    bf16: bool = True  # bfloat16 autocast on CUDA (ignored on the CPU, which stays float32)
    num_workers: int | None = None  # reader processes; None: 0 on a CPU, cores - 2 (<= 16) on a GPU
    compile: bool | str = False  # torch.compile the towers: True (inductor, for GPUs) or a backend
    fp8: bool = False  # float8 matrix products in the towers' blocks (torchao, H100-class GPUs;
    #   emulated on a CPU): embeddings differ slightly (cosine >= 0.9993 on the demo world)
    progress: bool = True  # progress bar (rank 0)

    def validate(self) -> None:
        """Raise EmbedError naming the field for a value that cannot work."""
        if self.batch_size < 1:
            raise EmbedError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers is not None and self.num_workers < 0:
            raise EmbedError(
                f"num_workers must be >= 0 or None (automatic), got {self.num_workers}"
            )
        if self.part_chips is not None and self.part_chips < 1:
            raise EmbedError(f"part_chips must be >= 1, got {self.part_chips}")
        if self.fp8:
            require_fp8()
        if not str(self.out).endswith(".parquet"):
            raise EmbedError(f"out {self.out!r} should be a .parquet file")


def _checkpoint_dir(path: str | Path) -> Path:
    try:
        return model_folder(path)
    except CheckpointError as err:
        raise EmbedError(str(err)) from err


def load_embedder(
    checkpoint: str | Path,
    untrained: bool = False,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[MultiTowerCLIP, str, dict]:
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
    except (CheckpointError, KeyError, ValueError) as err:
        raise EmbedError(f"cannot load checkpoint {path}: {err}") from err
    return model, str(meta["weights_sha256"]), meta


def _write_part(table: pa.Table, path: Path) -> None:
    with fsio.atomic_write(path, "wb") as f:
        pq.write_table(table, f)


def _manifest(
    cfg: EmbedConfig, store: ChipStore, ckpt_hash: str, policies: dict, dim: int, part_chips: int
) -> dict:
    return {
        "store": store.url,
        "store_fingerprint": store.fingerprint(),
        "n_chips": len(store),
        "checkpoint_hash": ckpt_hash,
        "channel_policies": policies,
        "seed": cfg.seed,
        "dim": dim,
        "part_chips": part_chips,
        # only when on, so that parts written before this setting existed still resume
        **({"fp8": True} if cfg.fp8 else {}),
    }


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
                "overwrite=True to discard them"
            )
        if master:
            shutil.rmtree(parts_dir)
    if master:
        parts_dir.mkdir(parents=True, exist_ok=True)
        fsio.write_text_atomic(mpath, json.dumps(manifest, indent=2))


def _up_to_date(out: str, manifest: dict, policy: str) -> bool:
    """True when `out` already holds this export; raises when it holds another one.

    An export is the same when its checkpoint, channel policy, seed, store content
    (`ChipStore.fingerprint`) and float8 setting all are: a table of another store with as
    many chips is not.
    """
    try:
        gdf, meta = read_embedding_table(out)
    except FileNotFoundError:
        return False
    wanted = {
        "checkpoint_hash": manifest["checkpoint_hash"],
        "channel_policy": policy,
        "seed": manifest["seed"],
        "store_fingerprint": manifest["store_fingerprint"],
    }
    changed = [f"{k} {meta.get(k)!r} -> {v!r}" for k, v in wanted.items() if meta.get(k) != v]
    fp8 = bool((meta.get("embed_config") or {}).get("fp8", False))
    if fp8 != manifest.get("fp8", False):
        changed.append(f"fp8 {fp8} -> {not fp8}")
    if changed or len(gdf) != manifest["n_chips"]:
        raise EmbedError(
            f"{out} exists and holds another export ({'; '.join(changed) or 'chips'}"
            f"); pass overwrite=True to replace it"
        )
    return True


def _merge(cfg: EmbedConfig, store: ChipStore, parts: list[Path], meta: dict) -> str:
    """Join all parts with the store index and write the EmbeddingTable; remove the parts."""
    table = pa.concat_tables([pq.read_table(p) for p in parts])
    if table["chip_id"].to_pylist() != store.chip_ids:
        raise EmbedError(
            f"{parts[0].parent}: parts do not cover the store's chips in order; "
            "delete the folder and rerun"
        )
    idx = store.index
    keep = ["chip_id", "geometry", "aoi", "split", *[c for c in idx if c.startswith("label_")]]
    gdf = gpd.GeoDataFrame(idx[keep].copy(), geometry="geometry", crs=idx.crs)
    for mod in meta["modalities"]:
        col = table[f"emb_{mod}"].combine_chunks()
        values = np.asarray(col.values, dtype=np.float32).reshape(-1, meta["dims"][mod])
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
        with output_lock(cfg.out, enabled=env.master):
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
        raise EmbedError(
            f"checkpoint towers {list(model.modalities)} share no modality with "
            f"{store.url} ({list(store.modalities)})"
        )
    if model.config.tower.img_size != store.chip_px:
        raise EmbedError(
            f"checkpoint {cfg.checkpoint} takes {model.config.tower.img_size} px "
            f"chips but {store.url} holds {store.chip_px} px chips"
        )
    if cfg.fp8:
        to_float8(model)
    model.compile_towers(cfg.compile)
    return store, model, ckpt_hash, ckpt_meta, mods


def _embed(cfg: EmbedConfig, env: DistEnv) -> str:
    store, model, ckpt_hash, ckpt_meta, mods = _open(cfg, env.device)
    policies = parse_channel_policy(cfg.channels, store, mods)
    part_chips = int(cfg.part_chips or store.shard_chips)
    manifest = _manifest(cfg, store, ckpt_hash, policies, model.embed_dim, part_chips)
    out = Path(cfg.out)
    parts_dir = out.with_name(out.name + ".parts")
    if cfg.overwrite and env.master:  # start from scratch: no part of an earlier run survives
        out.unlink(missing_ok=True)
        shutil.rmtree(parts_dir, ignore_errors=True)
    barrier(env)
    if _up_to_date(cfg.out, manifest, cfg.channels):
        return cfg.out
    if env.master:
        _prepare_parts(parts_dir, manifest, cfg.overwrite, True)
    barrier(env)
    if not env.master:
        _prepare_parts(parts_dir, manifest, False, False)
    starts = list(range(0, len(store), part_chips))
    paths = [parts_dir / f"part-{i:05d}.parquet" for i in range(len(starts))]
    todo = [i for i in range(env.rank, len(starts), env.world_size) if not paths[i].is_file()]
    total = sum(count_images(store, policies, starts[i], part_chips) for i in todo)
    bounds = [(starts[i], min(starts[i] + part_chips, len(store))) for i in todo]
    with tqdm(
        total=total, unit="img", desc="embed", disable=not (cfg.progress and env.master)
    ) as bar:
        tables = iter_part_tables(
            model,
            store,
            policies,
            bounds,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            bf16=cfg.bf16,
            device=env.device,
            bar=bar,
            num_workers=reader_processes(cfg.num_workers, env.device),
        )
        for i, table in zip(todo, tables, strict=True):
            _write_part(table, paths[i])
    barrier(env)
    if env.master:
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise EmbedError(f"{parts_dir}: parts {missing[:5]} are missing after all ranks ran")
        meta = {
            "source": "untrained" if cfg.untrained else "pretrained",
            "channel_policy": cfg.channels,
            "channel_policies": policies,
            "checkpoint_hash": ckpt_hash,
            "checkpoint": str(_checkpoint_dir(cfg.checkpoint)),
            "store": store.url,
            "store_fingerprint": manifest["store_fingerprint"],
            "seed": cfg.seed,
            "modalities": mods,
            "embed_dim": model.embed_dim,
            "dims": {
                m: policy_dim(policies[m], store.modalities[m], model.embed_dim) for m in mods
            },
            "model_config": ckpt_meta.get("model_config"),
            "embed_config": asdict(cfg),
        }
        if any(stacks_channels(policies[m], store.modalities[m]) for m in mods):
            # a stacked vector holds a NaN block for each channel the chip lacks: not an error
            meta["nan_means_missing"] = True
        _merge(cfg, store, paths, meta)
    barrier(env)
    return cfg.out
