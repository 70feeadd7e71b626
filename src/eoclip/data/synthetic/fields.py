"""Land-cover fraction fields of the synthetic world.

Each AOI gets five seeded smooth random fields (sums of low-frequency Fourier modes, wavelengths
of tens of kilometres, i.e. spanning many 4480 m chips) evaluated at absolute block coordinates,
so neighbouring chips see one continuous landscape. Inside a chip, finer texture is drawn from a
per-chip generator: crop parcels, forest patchiness, towns, rivers and lakes. Per pixel the five
cover fractions (tree, crop, built, water, bare) sum to one.

Everything is a pure function of (seed, AOI, chip position): a chip can be regenerated on its
own, which is what makes world generation resumable byte for byte.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from eoclip.errors import GeoError

__all__ = [
    "AOI_NAMES",
    "COVERS",
    "AoiProfile",
    "SmoothField",
    "AoiFields",
    "get_profile",
    "chip_rng",
    "cover_fractions",
    "chip_labels",
]

AOI_NAMES = ("conus", "middle_east", "pakistan_india", "china", "south_america")
COVERS = ("tree", "crop", "built", "water", "bare")
TREE, CROP, BUILT, WATER, BARE = range(5)


@dataclass(frozen=True)
class AoiProfile:
    """What makes one AOI's landscape and sensors look the way they do.

    Logits are softmax inputs per cover (water is drawn as explicit rivers and lakes instead).
    Month tuples cover January, February, March 2020.
    """

    name: str
    tree_logit: float  # base softmax logit of tree cover
    crop_logit: float  # base logit of cropland
    built_logit: float  # base logit of built-up (diffuse, outside towns)
    bare_logit: float  # base logit of bare soil / sparse grass
    towns_per_chip: float  # mean number of towns in a chip at an average urban field
    water_per_chip: float  # mean number of rivers + lakes in a chip at average wetness
    crop_green: tuple[float, float, float]  # crop greenness 0 (soil) .. 1 (full canopy)
    tree_green: float  # winter greenness of trees (deciduous AOIs are lower)
    bare_brightness: float  # multiplier of bare-soil reflectance (deserts are bright)
    cloudiness: float  # probability that a month has residual cloud
    soil_moisture_db: float  # std of per-month soil-moisture swing of bare/crop backscatter


_PROFILES = {
    "conus": AoiProfile(
        "conus", 0.2, 0.4, -2.6, 0.6, 0.3, 0.9, (0.15, 0.2, 0.35), 0.45, 1.0, 0.35, 1.2
    ),
    "middle_east": AoiProfile(
        "middle_east", -2.2, -1.0, -2.4, 2.2, 0.35, 0.5, (0.45, 0.65, 0.7), 0.8, 1.35, 0.12, 0.6
    ),
    "pakistan_india": AoiProfile(
        "pakistan_india", -1.2, 1.5, -2.2, 0.2, 0.55, 0.8, (0.7, 0.85, 0.6), 0.8, 1.15, 0.15, 1.0
    ),
    "china": AoiProfile(
        "china", 0.2, 0.8, -1.4, 0.0, 0.8, 1.0, (0.15, 0.3, 0.55), 0.5, 1.0, 0.45, 1.2
    ),
    "south_america": AoiProfile(
        "south_america", 1.6, 0.2, -3.0, -0.4, 0.2, 1.1, (0.8, 0.7, 0.5), 0.95, 1.05, 0.55, 1.4
    ),
}


def get_profile(aoi: str) -> AoiProfile:
    """Return the landscape profile of a built-in AOI.

    Raises:
        ValueError: if ``aoi`` is not one of :data:`AOI_NAMES`.
    """
    if aoi not in _PROFILES:
        raise GeoError(f"unknown synthetic AOI {aoi!r}; choose from {', '.join(AOI_NAMES)}")
    return _PROFILES[aoi]


def _stable_int(text: str) -> int:
    """A platform-independent 32-bit hash (Python's ``hash`` is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def chip_rng(seed: int, chip_id: str, stream: str) -> np.random.Generator:
    """A generator that depends only on the world seed, the chip and a named stream."""
    return np.random.default_rng([seed, _stable_int(chip_id), _stable_int(stream)])


@dataclass(frozen=True)
class SmoothField:
    """A zero-mean, unit-variance random field: a sum of K random plane waves.

    Attributes:
        kx, ky: wave vectors in cycles per metre, shape (K,).
        phase: phases in radians, shape (K,).
    """

    kx: np.ndarray
    ky: np.ndarray
    phase: np.ndarray

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        n_modes: int = 24,
        wavelength_m: tuple[float, float] = (9_000.0, 90_000.0),
    ) -> SmoothField:
        """Draw wavelengths log-uniformly in ``wavelength_m`` and directions uniformly."""
        lam = np.exp(rng.uniform(np.log(wavelength_m[0]), np.log(wavelength_m[1]), n_modes))
        ang = rng.uniform(0, 2 * np.pi, n_modes)
        return cls(np.cos(ang) / lam, np.sin(ang) / lam, rng.uniform(0, 2 * np.pi, n_modes))

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Evaluate at metre coordinates ``x``, ``y`` (same shape); returns that shape."""
        arg = 2 * np.pi * (x[..., None] * self.kx + y[..., None] * self.ky) + self.phase
        return np.sqrt(2.0 / len(self.kx)) * np.cos(arg).sum(-1)


@dataclass(frozen=True)
class AoiFields:
    """The five smooth fields of one AOI: wetness, tree, crop, urban, bare."""

    wet: SmoothField
    tree: SmoothField
    crop: SmoothField
    urban: SmoothField
    bare: SmoothField

    @classmethod
    def create(cls, seed: int, aoi: str) -> AoiFields:
        """Seeded per (world seed, AOI)."""
        rng = np.random.default_rng([seed, _stable_int(aoi), _stable_int("fields")])
        return cls(*(SmoothField.random(rng) for _ in range(5)))


def _smooth_on_chip(
    field: SmoothField, x0: float, y0: float, size_m: float, chip_px: int
) -> np.ndarray:
    """Evaluate a low-frequency field on a 9 x 9 lattice and upsample bilinearly to the chip.

    (x0, y0) is the chip's south-west corner (UTM easting, northing); image row 0 is north.
    """
    t = np.linspace(0.0, size_m, 9)
    coarse = field(x0 + t[None, :], y0 + size_m - t[:, None])
    centres = (np.arange(chip_px) + 0.5) / chip_px * 8
    i0 = np.minimum(centres.astype(int), 7)
    w = centres - i0
    rows = coarse[i0] * (1 - w)[:, None] + coarse[i0 + 1] * w[:, None]
    return rows[:, i0] * (1 - w)[None, :] + rows[:, i0 + 1] * w[None, :]


def _noise(rng: np.random.Generator, chip_px: int, sigma_m: float, px_m: float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to unit std, shape (chip_px, chip_px)."""
    z = gaussian_filter(rng.standard_normal((chip_px, chip_px)), sigma_m / px_m, mode="wrap")
    return z / (z.std() + 1e-9)


def _parcels(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Rotated rectangular field parcels, each with its own random logit offset."""
    ang = rng.uniform(0, np.pi / 2)
    u = xx * np.cos(ang) + yy * np.sin(ang)
    v = -xx * np.sin(ang) + yy * np.cos(ang)
    pu, pv = rng.uniform(200, 700, 2)
    iu = np.floor((u - u.min()) / pu).astype(int)
    iv = np.floor((v - v.min()) / pv).astype(int)
    table = rng.normal(0.0, 1.6, (iu.max() + 1, iv.max() + 1))
    return table[iu, iv]


def _water_map(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, n: int, px_m: float, size_m: float
) -> np.ndarray:
    """Rivers (sinuous bands) and lakes (ellipses), antialiased to sub-pixel fractions."""
    water = np.zeros_like(xx)
    for _ in range(n):
        if rng.random() < 0.55:  # a river crossing the chip
            ang = rng.uniform(0, np.pi)
            cx, cy = rng.uniform(0.15, 0.85, 2) * size_m
            along = (xx - cx) * np.cos(ang) + (yy - cy) * np.sin(ang)
            across = -(xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)
            amp, lam = rng.uniform(100, 600), rng.uniform(1500, 5000)
            dist = np.abs(across - amp * np.sin(2 * np.pi * along / lam + rng.uniform(0, 6.3)))
            half = rng.uniform(20, 160)
        else:  # a lake
            cx, cy = rng.uniform(0, 1, 2) * size_m
            ra, rb = rng.uniform(120, 900, 2)
            r = np.sqrt(((xx - cx) / ra) ** 2 + ((yy - cy) / rb) ** 2)
            dist, half = r * min(ra, rb), min(ra, rb)
        water = np.maximum(water, np.clip((half - dist) / px_m + 0.5, 0.0, 1.0))
    return water


def _towns(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, n: int, size_m: float
) -> np.ndarray:
    """Towns as gaussian blobs of built-up logit (peak ~ +7)."""
    boost = np.zeros_like(xx)
    for _ in range(n):
        cx, cy = rng.uniform(-0.1, 1.1, 2) * size_m
        r = rng.uniform(150, 900)
        boost += rng.uniform(5.0, 8.0) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    return boost


def cover_fractions(
    fields: AoiFields,
    profile: AoiProfile,
    x0: float,
    y0: float,
    size_m: float,
    chip_px: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Per-pixel cover fractions of one chip.

    Args:
        fields: the AOI's smooth fields.
        profile: the AOI's landscape profile.
        x0, y0: the chip's south-west corner in UTM metres (``col, row`` x chip size); the
            smooth fields are continuous across neighbouring chips. Image row 0 is north.
        size_m: chip side in metres (4480 in the paper).
        chip_px: pixels per side.
        rng: the chip's own generator (fine texture).

    Returns:
        float32 array of shape (5, chip_px, chip_px) in :data:`COVERS` order, summing to 1.
    """
    px_m = size_m / chip_px
    c = (np.arange(chip_px) + 0.5) * px_m
    xx, yy = np.meshgrid(c, c)  # chip-local metres, row = y
    wet = _smooth_on_chip(fields.wet, x0, y0, size_m, chip_px)
    urban = _smooth_on_chip(fields.urban, x0, y0, size_m, chip_px)
    logits = np.stack(
        [
            profile.tree_logit
            + 1.8 * _smooth_on_chip(fields.tree, x0, y0, size_m, chip_px)
            + 0.8 * wet
            + 0.9 * _noise(rng, chip_px, 250.0, px_m),
            profile.crop_logit
            + 1.6 * _smooth_on_chip(fields.crop, x0, y0, size_m, chip_px)
            + 0.4 * wet
            + _parcels(rng, xx, yy),
            profile.built_logit + 1.0 * urban,
            profile.bare_logit
            + 1.1 * _smooth_on_chip(fields.bare, x0, y0, size_m, chip_px)
            - 0.8 * wet
            + 0.5 * _noise(rng, chip_px, 400.0, px_m),
        ]
    )
    centre = chip_px // 2
    n_towns = rng.poisson(profile.towns_per_chip * np.exp(1.5 * urban[centre, centre]))
    logits[2] += _towns(rng, xx, yy, n_towns, size_m)
    logits -= logits.max(0, keepdims=True)
    land = np.exp(logits)
    land /= land.sum(0, keepdims=True)
    n_water = rng.poisson(profile.water_per_chip * np.exp(1.1 * wet[centre, centre] - 0.6))
    water = _water_map(rng, xx, yy, n_water, px_m, size_m)
    out = np.empty((5, chip_px, chip_px), np.float32)
    out[[TREE, CROP, BUILT, BARE]] = land * (1.0 - water)
    out[WATER] = water
    return out


def chip_labels(fractions: np.ndarray) -> dict[str, float]:
    """Per-chip label means, as the paper's label products define them.

    tree: mean tree cover in % (MODIS MOD44B); built: mean built-up fraction (GHSL);
    crop / water: fraction of pixels whose dominant cover is crop / water (ESA WorldCover
    classes 40 / 80), which is exactly zero for most chips without open water.

    Args:
        fractions: (5, H, W) cover fractions.
    """
    dominant = fractions.argmax(0)
    return {
        "label_tree": float(100.0 * fractions[TREE].mean()),
        "label_built": float(fractions[BUILT].mean()),
        "label_crop": float((dominant == CROP).mean()),
        "label_water": float((dominant == WATER).mean()),
    }
