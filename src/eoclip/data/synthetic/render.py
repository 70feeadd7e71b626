"""Render cover fractions into the three modalities, in physical units.

Each renderer mixes per-cover signatures (linear mixing of reflectance for Sentinel-2, of
backscatter power for Sentinel-1, of coherence for GUNW), then adds the nuisances a real sensor
has: per-chip illumination, haze, soil colour and incidence angle, per-month soil moisture and
wind, speckle, estimator noise, clouds, swath edges and missing acquisitions. Signatures are
rough textbook values, chosen so that every modality carries the land-cover signal without any
single statistic giving it away.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from scipy.ndimage import gaussian_filter

from eoclip.data.synthetic.fields import BARE, BUILT, CROP, TREE, WATER, AoiProfile

__all__ = ["crop_greenness", "render_s2", "render_s1", "gunw_pairs", "render_gunw"]

_MONTHS = 3
_Q1_START, _Q1_END = dt.date(2020, 1, 1), dt.date(2020, 3, 31)
_S1_REPEAT_DAYS = 12  # Sentinel-1A repeat cycle over most of the world in 2020
_MAX_PAIR_DAYS = 48  # paper, Sec. 3: first date at most 48 days before the second
_TRACK_EPOCH = dt.date(2019, 10, 1)


def crop_greenness(profile: AoiProfile, rng: np.random.Generator) -> np.ndarray:
    """Crop canopy greenness per month, (3,) in 0..1: the AOI's calendar shifted per chip."""
    shift = rng.normal(0.0, 0.15) + rng.normal(0.0, 0.06, _MONTHS)
    return np.clip(np.asarray(profile.crop_green) + shift, 0.0, 1.0)


def _blob_mask(
    rng: np.random.Generator, shape: tuple[int, int], fraction: float, sigma_px: float
) -> np.ndarray:
    """A blobby boolean mask covering about ``fraction`` of the pixels."""
    if fraction <= 0:
        return np.zeros(shape, bool)
    z = gaussian_filter(rng.standard_normal(shape), max(sigma_px, 0.5), mode="wrap")
    return z >= np.quantile(z, 1.0 - min(fraction, 1.0))


def _edge_mask(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """A straight-edged no-data region (swath or burst edge) covering ``fraction`` of (n, n)."""
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:n, 0:n]
    d = xx * np.cos(ang) + yy * np.sin(ang)
    return d >= np.quantile(d, 1.0 - fraction)


def render_s2(
    frac: np.ndarray, profile: AoiProfile, green: np.ndarray, rng: np.random.Generator, px_m: float
) -> np.ndarray:
    """Sentinel-2 monthly median RGB reflectance.

    Args:
        frac: (5, H, W) cover fractions.
        profile: the AOI profile (tree greenness, bare brightness, cloudiness).
        green: (3,) crop greenness per month.
        rng: the chip's s2 generator.
        px_m: pixel size in metres (cloud blob size).

    Returns:
        float32 (9, H, W), channels month-major (01_red, 01_green, 01_blue, 02_red, ...),
        reflectance in 0..0.3, NaN under residual clouds.
    """
    soil = np.array([0.16, 0.135, 0.10]) * profile.bare_brightness * rng.uniform(0.8, 1.2)
    soil = soil * (1 + rng.normal(0, 0.06, 3))  # soil colour
    leaf = np.array([0.025, 0.05, 0.025])
    leaf_off = np.array([0.065, 0.07, 0.05])
    built = np.array([0.12, 0.125, 0.14]) * rng.uniform(0.85, 1.15)  # grey, bluish
    water = np.array([0.02, 0.03, 0.035]) + rng.uniform(0, 0.03) * np.array([1.0, 0.8, 0.3])
    terrain = rng.uniform(0.85, 1.15)  # slope/BRDF brightening, the same every month
    out = np.empty((_MONTHS * 3, *frac.shape[1:]), np.float32)
    for m in range(_MONTHS):
        tg = np.clip(profile.tree_green + 0.1 * m * (1 - profile.tree_green), 0, 1)
        sig = np.stack(
            [
                tg * leaf + (1 - tg) * leaf_off,
                green[m] * np.array([0.035, 0.08, 0.035]) + (1 - green[m]) * soil * 0.85,
                built,
                water,
                soil,
            ]
        )  # (5 covers, 3 bands)
        refl = np.tensordot(sig.T, frac, 1)
        refl = (
            refl * terrain * rng.uniform(0.85, 1.15)
            + rng.uniform(0, 0.03) * np.array([0.5, 0.75, 1.0])[:, None, None]
        )  # sun/atmosphere of the month, haze
        refl += rng.normal(0, 0.004, refl.shape)
        if rng.random() < profile.cloudiness:
            cover = rng.uniform(0.01, 0.15) if rng.random() < 0.65 else rng.uniform(0.25, 1.0)
            refl[:, _blob_mask(rng, refl.shape[1:], cover, 400.0 / px_m)] = np.nan
        out[3 * m : 3 * m + 3] = np.clip(refl, 0.0, 0.3)
    return out


def _to_db(x: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(x, 1e-6))


def render_s1(
    frac: np.ndarray,
    profile: AoiProfile,
    green: np.ndarray,
    rng: np.random.Generator,
    looks: float = 6.0,
) -> np.ndarray:
    """Sentinel-1 GRD monthly mean VV, VH and VV-VH, in dB.

    Backscatter is mixed in linear power, speckled (gamma, ``looks`` looks) per polarisation and
    month, then converted to dB; the ratio channel is VV - VH of the speckled values.

    Returns:
        float32 (9, H, W): 01_vv, 01_vh, 01_vvvh, 02_vv, ...; NaN beyond a swath edge and
        where VH is missing for a month.
    """
    # Backscatter falls with incidence angle, steeply for surfaces, little for volume/corners.
    slope_db = np.array([-0.1, -0.3, -0.1, -0.35, -0.3])  # dB/degree, COVERS order
    incidence_db = slope_db * (rng.uniform(30.0, 45.0) - 37.5)
    built_db = rng.normal(0.0, 2.0)  # street orientation vs look direction
    edge = _edge_mask(rng, frac.shape[1], rng.uniform(0.05, 0.6)) if rng.random() < 0.04 else None
    out = np.empty((_MONTHS * 3, *frac.shape[1:]), np.float32)
    for m in range(_MONTHS):
        moist = rng.normal(0.0, profile.soil_moisture_db)
        wind = rng.uniform(0.0, 6.0)
        month_db = incidence_db + rng.normal(0.0, 0.7)  # rain, frozen ground, calibration
        vv_db = np.array(
            [-7.5, -13.0 + 4.0 * green[m] + moist, -1.0 + built_db, -22.0 + wind, -14.0 + moist]
        )
        vh_db = np.array(
            [
                -13.5,
                -21.0 + 6.0 * green[m] + 0.6 * moist,
                -10.0 + built_db,
                -28.0 + 0.5 * wind,
                -23.0 + 0.6 * moist,
            ]
        )
        sig = np.stack([vv_db, vh_db])[:, [TREE, CROP, BUILT, WATER, BARE]] + month_db[None]
        power = np.tensordot(10.0 ** (sig / 10.0), frac, 1)
        power *= rng.gamma(looks, 1.0 / looks, power.shape)
        vv, vh = _to_db(power[0]), _to_db(power[1])
        if rng.random() < 0.03:  # VH not acquired that month: no VH, no ratio
            vh = np.full_like(vh, np.nan)
        out[3 * m : 3 * m + 3] = np.stack([vv, vh, vv - vh])
    if edge is not None:
        out[:, edge] = np.nan
    return out


def gunw_pairs(rng: np.random.Generator, n_min: int = 2, n_max: int = 8) -> list[str]:
    """Date pairs of one chip's track, ARIA-style names ``YYYYMMDD_YYYYMMDD`` (later first).

    A per-chip track offset places acquisitions on a 12-day cadence; a pair's second date lies
    in 2020Q1 and its first at most 48 days before (paper, Sec. 3). Short pairs are likelier,
    as in ARIA's processing. Returns between ``n_min`` and ``n_max`` names, sorted (by second,
    then first date).
    """
    first = _TRACK_EPOCH + dt.timedelta(days=int(rng.integers(0, _S1_REPEAT_DAYS)))
    dates = [first + dt.timedelta(days=_S1_REPEAT_DAYS * k) for k in range(20)]
    cands = [
        (d2, d2 - dt.timedelta(days=lag))
        for d2 in dates
        if _Q1_START <= d2 <= _Q1_END
        for lag in range(_S1_REPEAT_DAYS, _MAX_PAIR_DAYS + 1, _S1_REPEAT_DAYS)
    ]
    weights = np.array([1.0 / (d2 - d1).days for d2, d1 in cands])
    n = int(rng.integers(n_min, n_max + 1))
    pick = np.sort(
        rng.choice(len(cands), size=min(n, len(cands)), replace=False, p=weights / weights.sum())
    )
    return sorted(f"{cands[i][0]:%Y%m%d}_{cands[i][1]:%Y%m%d}" for i in pick)


def _pair_days(name: str) -> int:
    d2, d1 = (dt.datetime.strptime(s, "%Y%m%d").date() for s in name.split("_"))
    return (d2 - d1).days


def _area_matrix(n_fine: int, n_coarse: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_coarse, n_fine) area-averaging matrix and the fine->coarse nearest index."""
    idx = np.arange(n_fine) * n_coarse // n_fine
    a = np.zeros((n_coarse, n_fine))
    a[idx, np.arange(n_fine)] = 1.0
    return a / a.sum(1, keepdims=True), idx


def render_gunw(
    frac: np.ndarray,
    profile: AoiProfile,
    green: np.ndarray,
    rng: np.random.Generator,
    pairs: list[str],
    size_m: float,
    pixel_size_m: float = 90.0,
) -> np.ndarray:
    """GUNW interferometric coherence per date pair, rendered at ~90 m and upsampled (nearest).

    Coherence per cover decays from gamma0 towards gamma_inf with time constant tau (days):
    water and vegetation decorrelate within days, bare soil and buildings stay coherent.

    Returns:
        float32 (len(pairs), H, W) coherence in 0..1; NaN in unwrapping/burst gaps.
    """
    n = frac.shape[1]
    g = int(min(n, max(1, round(size_m / pixel_size_m))))
    a, idx = _area_matrix(n, g)
    coarse = a @ frac.astype(np.float64) @ a.T  # (5, g, g) area means
    out = np.empty((len(pairs), n, n), np.float32)
    season = rng.uniform(0.6, 1.0)  # wet season / snow on this track: all pairs decorrelate
    stable = 1.0 + 2.0 * (profile.bare_brightness - 1.0)  # deserts stay coherent
    for p, name in enumerate(pairs):
        days = _pair_days(name)
        gm = float(green.mean())
        g0 = np.array([0.3, 0.75 - 0.35 * gm, 0.95, 0.08, 0.85])
        ginf = np.array([0.1, 0.15, 0.85, 0.05, 0.25])
        tau = np.array([8.0, 45.0 - 30.0 * gm, 400.0, 1.0, 40.0 * stable])
        gam = ginf + (g0 - ginf) * np.exp(-days / tau)
        coh = np.tensordot(gam, coarse, 1) * season * rng.uniform(0.75, 1.0)  # weather
        coh += rng.normal(0, 0.05, coh.shape) * (1 - coh)
        coh = np.sqrt(coh**2 + 0.12**2)  # estimator bias at low coherence
        fine = np.clip(coh, 0, 1)[idx][:, idx]
        if rng.random() < 0.1:
            fine[_edge_mask(rng, n, rng.uniform(0.05, 0.5))] = np.nan
        out[p] = fine
    return out
