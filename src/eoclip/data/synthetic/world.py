"""The synthetic world: a ChipStore of all three modalities plus labels, with no downloads.

Per AOI a compact block of contiguous chips (:func:`eoclip.geo.subgrid`) is split into
geographic bands (:func:`eoclip.geo.band_splits`); every chip's cover fractions come from the
AOI's continuous fields (:mod:`.fields`) and are rendered into ``s2rgbm``, ``s1grdm`` and
``gunw`` (:mod:`.render`). Each chip depends only on (seed, chip id), so the same config gives
the same store byte for byte, and an interrupted generation resumes where the store's index
stops.

Example:
    >>> store = make_world("demo_out/world", n_chips_per_aoi=200)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import geopandas as gpd
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from eoclip import fsio
from eoclip.data.modalities import MAX_NAN_FRACTION, encode_chips
from eoclip.data.store import ChipStore, StoreError
from eoclip.data.synthetic.fields import (
    AOI_NAMES,
    AoiFields,
    chip_labels,
    chip_rng,
    cover_fractions,
    get_profile,
)
from eoclip.data.synthetic.render import (
    crop_greenness,
    gunw_pairs,
    render_gunw,
    render_s1,
    render_s2,
)
from eoclip.errors import ConfigError
from eoclip.geo import PAPER_CHIP_SIZE_M, band_splits, subgrid
from eoclip.parallel import in_order

__all__ = ["MODALITIES", "WorldConfig", "world_grid", "generate_chip", "make_world"]

MODALITIES = ("s2rgbm", "s1grdm", "gunw")
GUNW_MAX_PAIRS = 8  # slots of the gunw modality (configs/modalities/gunw.yaml)
_WORLD_FILE = "world.json"  # the config that made a store, kept beside store.json
_BATCH_BYTES = 256 * 2**20  # float32 working memory of one batch


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """Everything that determines a synthetic world (same config -> same bytes)."""

    n_chips_per_aoi: int = 1000  # chips in each AOI's contiguous block
    chip_px: int = 64  # pixels per chip side (448 = the paper's 10 m pixels)
    aois: tuple[str, ...] = AOI_NAMES  # built-in AOIs, in store order
    seed: int = 0  # fields, block positions, splits and every chip's draws
    chip_size_m: float = PAPER_CHIP_SIZE_M  # chip footprint side (4480 m, paper)
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train/val/test (paper)
    missing: tuple[float, float, float] = (0.02, 0.02, 0.05)  # P(modality absent), s2/s1/gunw
    s1_looks: float = 6.0  # equivalent number of looks of the monthly S1 mean (speckle)
    shard_chips: int = 256  # chips per zarr shard

    def __post_init__(self) -> None:
        object.__setattr__(self, "aois", tuple(self.aois))
        object.__setattr__(self, "split_fractions", tuple(self.split_fractions))
        object.__setattr__(self, "missing", tuple(self.missing))
        if self.n_chips_per_aoi < 1:
            raise ConfigError(f"n_chips_per_aoi must be >= 1, got {self.n_chips_per_aoi}")
        if self.chip_px < 4:
            raise ConfigError(f"chip_px must be >= 4, got {self.chip_px}")
        if not self.aois:
            raise ConfigError("a world needs at least one AOI")
        if len(set(self.aois)) != len(self.aois):
            raise ConfigError(f"duplicate AOIs in {self.aois}")
        for aoi in self.aois:
            get_profile(aoi)  # raises on an unknown AOI
        if len(self.missing) != 3 or not all(0 <= p <= 1 for p in self.missing):
            raise ConfigError(f"missing must be 3 probabilities (s2, s1, gunw), got {self.missing}")

    @property
    def pixel_size_m(self) -> float:
        return self.chip_size_m / self.chip_px

    @property
    def batch_chips(self) -> int:
        """Chips generated and appended at once (bounded memory at any chip_px)."""
        per_chip = 4 * (9 + 9 + GUNW_MAX_PAIRS) * self.chip_px**2
        return int(np.clip(_BATCH_BYTES // per_chip, 1, 128))

    def to_dict(self) -> dict:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def world_grid(config: WorldConfig) -> gpd.GeoDataFrame:
    """All chips of the world, AOI by AOI: a contiguous block each, with band splits.

    Returns:
        GeoDataFrame (EPSG:4326) with chip_id, aoi, geometry, utm_epsg, col, row, split.
    """
    parts = []
    for aoi in config.aois:
        grid = subgrid(aoi, config.n_chips_per_aoi, config.chip_size_m, seed=config.seed)
        parts.append(band_splits(grid, fractions=config.split_fractions, seed=config.seed))
    return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parts[0].crs)


def generate_chip(
    chip: pd.Series, config: WorldConfig, fields: AoiFields
) -> tuple[dict[str, float], dict[str, np.ndarray | None], list[str]]:
    """One chip: labels, the three modalities (physical units) and its gunw pair names.

    Args:
        chip: a row of :func:`world_grid` (chip_id, aoi, col, row).
        config: the world config.
        fields: the chip's AOI fields.

    Returns:
        (labels, arrays, gunw_names): arrays maps each modality to float32 (C, H, W), or None
        when the chip lacks it; gunw_names is empty when gunw is absent.
    """
    cid, profile, seed = str(chip["chip_id"]), get_profile(chip["aoi"]), config.seed
    size, px = config.chip_size_m, config.chip_px
    frac = cover_fractions(
        fields,
        profile,
        float(chip["col"]) * size,
        float(chip["row"]) * size,
        size,
        px,
        chip_rng(seed, cid, "cover"),
    )
    green = crop_greenness(profile, chip_rng(seed, cid, "phenology"))
    present = chip_rng(seed, cid, "presence").random(3) >= np.asarray(config.missing)
    arrays: dict[str, np.ndarray | None] = dict.fromkeys(MODALITIES)
    names: list[str] = []
    if present[0]:
        arrays["s2rgbm"] = render_s2(
            frac, profile, green, chip_rng(seed, cid, "s2"), config.pixel_size_m
        )
    if present[1]:
        arrays["s1grdm"] = render_s1(
            frac, profile, green, chip_rng(seed, cid, "s1"), config.s1_looks
        )
    if present[2]:
        rng = chip_rng(seed, cid, "gunw")
        names = gunw_pairs(rng, 2, GUNW_MAX_PAIRS)
        arrays["gunw"] = render_gunw(frac, profile, green, rng, names, size)
    return chip_labels(frac), arrays, names


def _encoded_batch(chips: gpd.GeoDataFrame, config: WorldConfig, modalities: dict, max_nan: float):
    """Generate a batch and encode it for the store: (index rows, `encode_chips` output per
    modality). Workers send the stored dtypes: a quarter of the float32 bytes through the
    pipe, and the main process, which writes, does not quantise."""
    index, arrays, names = _batch(chips, config)
    encoded = {
        name: encode_chips(
            m,
            arrays.get(name),
            names if name == "gunw" else None,
            len(index),
            config.chip_px,
            max_nan,
            where="synthetic world",
        )
        for name, m in modalities.items()
    }
    return index, encoded


def _batch(chips: gpd.GeoDataFrame, config: WorldConfig):
    """Generate a batch: (index rows with labels, arrays per modality, gunw names)."""
    fields = {aoi: AoiFields.create(config.seed, aoi) for aoi in chips["aoi"].unique()}
    n, px = len(chips), config.chip_px
    arrays = {
        "s2rgbm": np.full((n, 9, px, px), np.nan, np.float32),
        "s1grdm": np.full((n, 9, px, px), np.nan, np.float32),
        "gunw": np.full((n, GUNW_MAX_PAIRS, px, px), np.nan, np.float32),
    }
    labels, gunw_names = [], []
    for i, (_, chip) in enumerate(chips.iterrows()):
        lab, arr, names = generate_chip(chip, config, fields[chip["aoi"]])
        labels.append(lab)
        gunw_names.append(names)
        for mod, a in arr.items():
            if a is not None:
                arrays[mod][i, : len(a)] = a
    index = chips[["chip_id", "geometry", "aoi", "split"]].reset_index(drop=True)
    index = index.join(pd.DataFrame(labels))
    return gpd.GeoDataFrame(index, geometry="geometry", crs=chips.crs), arrays, gunw_names


def _open_or_create(out: str | os.PathLike, config: WorldConfig, overwrite: bool) -> ChipStore:
    """A new store, or the partial/complete one at ``out`` if it was made by the same config."""
    fs, root, url = fsio.resolve(out)
    world_path = fsio.join(root, _WORLD_FILE)
    if not overwrite and fs.exists(world_path):
        made_by = fsio.read_json(fs, world_path)
        if made_by != config.to_dict():
            raise StoreError(
                f"{url} holds a synthetic world made with a different config ({made_by}); "
                "pass overwrite=True or choose another output location"
            )
        return ChipStore.open(url, mode="a")
    store = ChipStore.create(
        url,
        list(MODALITIES),
        chip_px=config.chip_px,
        pixel_size_m=config.pixel_size_m,
        shard_chips=config.shard_chips,
        overwrite=overwrite,
    )
    fsio.write_json_atomic(fs, world_path, config.to_dict())
    return store


def make_world(
    out: str | os.PathLike,
    n_chips_per_aoi: int = 1000,
    chip_px: int = 64,
    aois: Sequence[str] | None = None,
    seed: int = 0,
    *,
    config: WorldConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
    max_chips: int | None = None,
    workers: int | None = None,
    batch_chips: int | None = None,
) -> ChipStore:
    """Generate (or finish generating) a synthetic world into a ChipStore at ``out``.

    Args:
        out: store folder or fsspec URL. If it holds a world made with the same config, the
            generation resumes after the last committed chip (a complete world is returned
            as is); a different config is an error unless ``overwrite``.
        n_chips_per_aoi, chip_px, aois, seed: see :class:`WorldConfig` (ignored if ``config``).
        config: the full config.
        overwrite: replace whatever is at ``out``.
        progress: show a progress bar.
        max_chips: stop after this many chips in total (for tests and staged runs; calling
            again continues).
        workers: processes generating chips while the main process writes (default: up to
            2); 1 generates in-process. The output does not depend on it.
        batch_chips: chips generated and appended at once (default: from the config's
            memory budget). The output does not depend on it.

    Returns:
        The store, open for appending (``len(store)`` chips written so far).
    """
    if config is None:
        config = WorldConfig(
            n_chips_per_aoi=n_chips_per_aoi,
            chip_px=chip_px,
            aois=tuple(aois) if aois else AOI_NAMES,
            seed=seed,
        )
    grid = world_grid(config)
    store = _open_or_create(out, config, overwrite)
    done = len(store)
    if store.chip_ids != grid["chip_id"].iloc[:done].tolist():
        raise StoreError(
            f"{store.url}: its chips are not the first {done} chips of this world; "
            "pass overwrite=True to regenerate"
        )
    stop = len(grid) if max_chips is None else min(len(grid), max_chips)
    step = int(batch_chips or config.batch_chips)
    batches = [grid.iloc[s : min(s + step, stop)] for s in range(done, stop, step)]
    workers = min(os.cpu_count() or 1, 2) if workers is None else int(workers)
    with tqdm(
        total=len(grid), initial=done, unit="chip", desc="synthetic world", disable=not progress
    ) as bar:
        encode = (dict(store.modalities), store.meta.get("max_nan_fraction", MAX_NAN_FRACTION))
        for index, encoded in _generate(batches, config, workers, encode):
            store.append_encoded(index, encoded)
            store.flush()  # the index is the commit record: resume starts after this batch
            bar.update(len(index))
    return store


def _generate(batches: list[gpd.GeoDataFrame], config: WorldConfig, workers: int, encode):
    """Yield generated batches in order; with workers > 1, generate ahead in processes while
    the caller writes (at most ``workers + 1`` batches in flight, bounding memory)."""
    if workers <= 1 or len(batches) <= 1:
        for chips in batches:
            yield _encoded_batch(chips, config, *encode)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork of zarr's I/O threads
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        jobs = ((None, (chips, config, *encode)) for chips in batches)
        for _, result in in_order(pool, _encoded_batch, jobs, ahead=workers + 1):
            yield result
