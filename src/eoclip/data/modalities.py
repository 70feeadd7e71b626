"""Modalities: what a sensor product is, as data.

A modality is a name, its channel names (fixed, or variable and named per chip), its native pixel
size, how its physical values are stored compactly and how they are normalised for a tower.
The built-in ones (``s2rgbm``, ``s1grdm``, ``gunw``) are YAML files in
``eoclip/configs/modalities``; a user's own is one more YAML file, loaded with
:func:`load_modality`, with no code change.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from eoclip.config import check_keys, read_mapping
from eoclip.errors import ConfigError, DataError

__all__ = [
    "Modality",
    "default_slot_names",
    "encode_chips",
    "get_modality",
    "list_modalities",
    "load_modality",
    "MAX_NAN_FRACTION",
]

# A channel with more missing pixels than this is marked invalid rather than filled.
MAX_NAN_FRACTION = 0.2

_INT_DTYPES = ("uint8", "uint16", "int8", "int16", "int32")
_STORAGE_DTYPES = (*_INT_DTYPES, "float16", "float32")
# The keys of a modality YAML file (see the built-in ones in configs/modalities/).
SPEC_KEYS = (
    "name",
    "description",
    "units",
    "channels",
    "max_channels",
    "pixel_size_m",
    "storage",
    "valid_range",
    "normalize",
)


@dataclasses.dataclass(frozen=True)
class Modality:
    """One input product.

    Attributes:
        name: short identifier used everywhere (store arrays, sample keys, towers).
        channels: fixed channel names, or None for a variable modality named per chip.
        max_channels: channel slots in the store (== len(channels) for a fixed modality).
        pixel_size_m: native pixel size in metres (information; chips are resampled on ingest).
        dtype: compact storage dtype of the pixels.
        scale: physical = stored * scale + offset (integer dtypes only).
        offset: see ``scale``.
        valid_range: physical values are clipped to this range before storing.
        normalize: per channel kind (the part of a channel name after the first ``_``, or
            ``default``) a ``{"mean": m, "std": s}`` used by :meth:`normalize`.
        units: physical units, for people.
        description: one line for people.
    """

    name: str
    channels: tuple[str, ...] | None
    max_channels: int
    pixel_size_m: float
    dtype: str
    scale: float = 1.0
    offset: float = 0.0
    valid_range: tuple[float, float] = (-np.inf, np.inf)
    normalize_stats: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    # channel name -> normalisation (mean, std), filled by `normalize` (names are bounded:
    # fixed channels, or a variable modality's date pairs)
    _norm_cache: dict = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    units: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"modality name {self.name!r} must be alphanumeric (with _ or -)")
        if self.dtype not in _STORAGE_DTYPES:
            raise ConfigError(
                f"modality {self.name}: dtype {self.dtype!r} not in {_STORAGE_DTYPES}"
            )
        if self.channels is not None and len(self.channels) != self.max_channels:
            raise ConfigError(f"modality {self.name}: max_channels must equal len(channels)")
        if self.max_channels < 1:
            raise ConfigError(f"modality {self.name}: needs at least one channel")
        if self.scale <= 0:
            raise ConfigError(f"modality {self.name}: scale must be > 0")
        for kind, st in self.normalize_stats.items():
            if st.get("std", 0) <= 0:
                raise ConfigError(f"modality {self.name}: normalize.{kind}.std must be > 0")

    @property
    def variable(self) -> bool:
        """True when channel names differ per chip (e.g. gunw date pairs)."""
        return self.channels is None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, the same schema as the YAML files."""
        return {
            "name": self.name,
            "description": self.description,
            "units": self.units,
            "channels": list(self.channels) if self.channels is not None else None,
            "max_channels": self.max_channels,
            "pixel_size_m": self.pixel_size_m,
            "storage": {"dtype": self.dtype, "scale": self.scale, "offset": self.offset},
            "valid_range": [float(v) for v in self.valid_range],
            "normalize": {k: dict(v) for k, v in self.normalize_stats.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<dict>") -> Modality:
        """Build from the YAML schema; errors name ``source``; unknown keys are refused."""
        check_keys(d, SPEC_KEYS, f"modality spec {source}")
        check_keys(d.get("storage") or {}, ("dtype", "scale", "offset"), f"{source} (storage)")
        try:
            channels = d.get("channels")
            storage = d.get("storage", {})
            max_ch = d.get("max_channels") or (len(channels) if channels else None)
            if max_ch is None:
                raise ConfigError("a variable modality (channels: null) needs max_channels")
            return cls(
                name=str(d["name"]),
                channels=tuple(str(c) for c in channels) if channels is not None else None,
                max_channels=int(max_ch),
                pixel_size_m=float(d.get("pixel_size_m", 10.0)),
                dtype=str(storage.get("dtype", "float16")),
                scale=float(storage.get("scale", 1.0)),
                offset=float(storage.get("offset", 0.0)),
                valid_range=tuple(float(v) for v in d.get("valid_range", (-np.inf, np.inf))),
                normalize_stats={
                    str(k): {"mean": float(v["mean"]), "std": float(v["std"])}
                    for k, v in (d.get("normalize") or {}).items()
                },
                units=str(d.get("units", "")),
                description=str(d.get("description", "")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"invalid modality spec in {source}: {err}") from err

    # -- storage ---------------------------------------------------------------------------
    def encode(
        self, physical: np.ndarray, max_nan_fraction: float = MAX_NAN_FRACTION
    ) -> tuple[np.ndarray, np.ndarray]:
        """Physical values to the compact storage dtype.

        Args:
            physical: float array of shape (..., C, H, W); NaN marks a missing pixel.
            max_nan_fraction: a channel with more NaN pixels than this is marked invalid;
                smaller holes are filled with the channel's median.

        Returns:
            (stored array of shape (..., C, H, W) in ``self.dtype``, valid bool array (..., C)).
            Invalid channels are stored as 0 and must never be read as data.
        """
        x = np.asarray(physical, dtype=np.float32)
        if x.ndim < 3:
            raise DataError(f"{self.name}: expected (..., C, H, W), got shape {x.shape}")
        nan = ~np.isfinite(x)
        nan_frac = nan.mean(axis=(-2, -1))
        valid = nan_frac <= max_nan_fraction
        # Fill small holes with the channel's median, computed only for the channels that have
        # holes and will stay valid (a full nanmedian over every channel dominated ingest time).
        holes = (nan_frac > 0) & valid
        lo, hi = self.valid_range
        x = np.clip(x, lo, hi)  # a new array: the steps below work in place on it
        if holes.any():
            flat = x.reshape(-1, *x.shape[-2:])
            for k in np.flatnonzero(holes.reshape(-1)):
                ch = flat[k]
                ch[~np.isfinite(ch)] = np.median(ch[np.isfinite(ch)])
        x[~valid] = 0.0 if lo <= 0.0 <= hi else lo
        if self.dtype in _INT_DTYPES:
            info = np.iinfo(self.dtype)
            if self.offset:
                np.subtract(x, np.float32(self.offset), out=x)
            np.divide(x, np.float32(self.scale), out=x)
            np.rint(x, out=x)
            stored = np.clip(x, info.min, info.max, out=x).astype(self.dtype)
        else:
            stored = x.astype(self.dtype)
        stored[~valid] = 0
        return stored, valid

    @property
    def quantized(self) -> bool:
        """True when stored values are integers that ``scale`` and ``offset`` map to physical."""
        return self.dtype in _INT_DTYPES

    def decode(self, stored: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Stored values to float32 physical units; channels not ``valid`` become NaN.

        Args:
            stored: array of shape (..., C, H, W) (or (H, W) with ``valid`` a scalar/None).
            valid: bool array broadcastable to the channel axes, or None (all valid).
        """
        x = stored.astype(np.float32)
        if self.quantized:
            x = x * np.float32(self.scale) + np.float32(self.offset)
        if valid is not None:
            v = np.asarray(valid, dtype=bool)
            if v.ndim == 0:
                if not v:
                    x[...] = np.nan
            else:
                x[~v] = np.nan
        return x

    # -- model input -----------------------------------------------------------------------
    def stats_for(self, channel_name: str) -> tuple[float, float]:
        """(mean, std) used to normalise a channel, by its kind (``01_vh`` -> ``vh``)."""
        kind = channel_name.split("_", 1)[1] if "_" in channel_name else channel_name
        st = self.normalize_stats.get(kind) or self.normalize_stats.get("default")
        if st is None:
            return 0.0, 1.0
        return st["mean"], st["std"]

    def normalize(
        self, physical: np.ndarray, channel_names: list[str] | tuple[str, ...]
    ) -> np.ndarray:
        """Physical (C, H, W) to roughly zero-mean unit-std float32; NaN becomes 0.

        Args:
            physical: float array of shape (C, H, W) (or a batch of single-channel images,
                (N, H, W), with one name per image).
            channel_names: C names, one per channel, choosing the statistics.
        """
        x = np.asarray(physical, dtype=np.float32)
        if x.shape[0] != len(channel_names):
            raise DataError(
                f"{self.name}: {x.shape[0]} channels but {len(channel_names)} channel names"
            )
        cache = self._norm_cache
        for c in channel_names:
            if c not in cache:
                cache[c] = self.stats_for(c)
        st = np.array([cache[c] for c in channel_names], dtype=np.float32).reshape(-1, 2)
        out = (x - st[:, 0, None, None]) / st[:, 1, None, None]
        out[~np.isfinite(out)] = 0.0  # NaN and +-inf, as np.nan_to_num(..., 0, 0, 0)
        return out


def encode_chips(
    m: Modality,
    x,
    names,
    n: int,
    chip_px: int,
    max_nan_fraction: float = MAX_NAN_FRACTION,
    where: str = "store",
):
    """Physical chips of one modality to what the store keeps.

    Args:
        m: The modality.
        x: float (n, C, H, W) physical values, NaN = missing, C <= m.max_channels (the rest
            are padded as missing); None = the modality is absent for all n chips.
        names: for a variable modality, per chip the names of its C channels (may be None
            when ``x`` is None).
        n: Number of chips.
        chip_px: H == W.
        max_nan_fraction: see ``Modality.encode``.
        where: Prefix of error messages (which store, which operation).

    Returns:
        (stored (n, m.max_channels, H, W) in ``m.dtype``, valid bool (n, max_channels),
        slot names object (n, max_channels): ``''`` for an unused slot).
    """
    c, h = m.max_channels, chip_px
    if x is None:
        stored = np.zeros((n, c, h, h), dtype=m.dtype)
        return stored, np.zeros((n, c), bool), default_slot_names(m, n)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or x.shape[0] != n or x.shape[2:] != (h, h) or x.shape[1] > c:
        raise DataError(
            f"{where}: {m.name} array has shape {x.shape}, expected ({n}, <= {c}, {h}, {h})"
        )
    if x.shape[1] < c:
        pad = np.full((n, c - x.shape[1], h, h), np.nan, dtype=np.float32)
        x = np.concatenate([x, pad], axis=1)
    stored, valid = m.encode(x, max_nan_fraction)
    if not m.variable:
        return stored, valid, default_slot_names(m, n)
    if names is None or len(names) != n:
        raise DataError(f"{where}: {m.name} needs channel_names for {n} chips")
    slot_names = np.full((n, c), "", dtype=object)
    for i, row in enumerate(names):
        if len(row) > c:
            raise DataError(f"{m.name}: chip {i} has {len(row)} channels > max {c}")
        slot_names[i, : len(row)] = [str(s) for s in row]
    valid &= slot_names != ""
    return stored, valid, slot_names


def default_slot_names(m: Modality, n: int) -> np.ndarray:
    """(n, max_channels) slot names: the fixed channel names, or ``''`` for a variable modality."""
    if m.variable:
        return np.full((n, m.max_channels), "", dtype=object)
    return np.tile(np.array(m.channels, dtype=object), (n, 1))


def _builtin_dir() -> Path:
    return Path(str(resources.files("eoclip") / "configs" / "modalities"))


def list_modalities() -> list[str]:
    """Names of the built-in modalities."""
    return sorted(p.stem for p in _builtin_dir().glob("*.yaml"))


def load_modality(path: str | Path) -> Modality:
    """A modality from a YAML file (a user's own sensor, no code change needed)."""
    return Modality.from_dict(read_mapping(path), source=str(path))


def get_modality(name_or_spec: str | Path | Modality | dict) -> Modality:
    """A built-in modality by name, a YAML path, a dict, or a Modality (returned as is)."""
    if isinstance(name_or_spec, Modality):
        return name_or_spec
    if isinstance(name_or_spec, dict):
        return Modality.from_dict(name_or_spec)
    s = str(name_or_spec)
    if s.endswith((".yaml", ".yml")):
        return load_modality(s)
    if s not in _BUILTIN:  # parsed once per process: ingest asks for every chip
        path = _builtin_dir() / f"{s}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"unknown modality {s!r}; built-in: {', '.join(list_modalities())} "
                "(or pass the path of a modality YAML file)"
            )
        _BUILTIN[s] = load_modality(path)
    return _BUILTIN[s]


_BUILTIN: dict[str, Modality] = {}
