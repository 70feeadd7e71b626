"""Geometric augmentations applied identically to every modality of a chip.

The modalities of a chip are co-registered images of the same ground, so a flip, a rotation
by a multiple of 90 degrees or a crop applied to all of them keeps them a matching pair for the
CLIP loss, while the towers see a new view of the chip each epoch. Labels of the few-shot
tasks (cover fractions of the chip) do not change under flips and rotations, so invariance to
them costs nothing; crops change the content a little (the SimCLR / CLIP image-crop
augmentation, here at most `1 - crop_scale` of the area).

`ChipAugment` is a `ChipDataset(transform=...)`: it takes a sample and the sample's seeded
generator, so the same (seed, epoch, chip) always gives the same view.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from eoclip.errors import ConfigError

__all__ = ["ChipAugment"]


@dataclass
class ChipAugment:
    """Random view of a chip, the same for all its modalities.

    Args:
        flip: mirror left-right with probability 1/2.
        rot90: rotate by 0, 90, 180 or 270 degrees (with `flip`: the 8 symmetries of a square).
        crop_scale: None, or the smallest area fraction of a random square crop (e.g. 0.5),
            resized back to the chip size (bilinear); the crop side is uniform in
            [sqrt(crop_scale), 1] x the chip side, its position uniform.
    """

    flip: bool = False
    rot90: bool = False
    crop_scale: float | None = None

    def __post_init__(self) -> None:
        if self.crop_scale is not None and not 0.0 < float(self.crop_scale) <= 1.0:
            raise ConfigError(
                f"augment: crop_scale must be in (0, 1] or null, got {self.crop_scale!r}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ChipAugment | None:
        """From a config mapping (``{flip: true, rot90: true, crop_scale: 0.5}``); None when the
        mapping is empty or turns nothing on.

        Raises:
            ConfigError: unknown keys (listing the allowed ones) or a bad crop_scale.
        """
        data = dict(data or {})
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"augment: unknown keys {unknown}; allowed: {sorted(allowed)}")
        aug = cls(**data)
        return aug if aug.active else None

    @property
    def active(self) -> bool:
        """True when some augmentation is on."""
        return self.flip or self.rot90 or self.crop_scale not in (None, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the settings."""
        return asdict(self)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """The augmented sample (a new dict; tensors (C, H, W) of every modality transformed,
        and reconstruction targets `<mod>_target` (C, g, g) flipped and rotated with them).

        Args:
            sample: a `ChipDataset` sample.
            rng: the sample's generator (draws happen in a fixed order, whatever is present).
        """
        flip = self.flip and bool(rng.integers(2))
        k = int(rng.integers(4)) if self.rot90 else 0
        box = self._crop_box(rng) if self.crop_scale not in (None, 1.0) else None
        out = dict(sample)
        for key, x in sample.items():
            target = key.endswith("_target") and key[: -len("_target")] in sample
            if f"{key}_valid" not in sample and not target:
                continue
            if box is not None:
                if target:  # cell means of a resized crop are not the crop's cell means
                    raise ConfigError(
                        "augment: crop_scale cannot be combined with reconstruction targets "
                        "(recon_weight > 0); use flip and rot90"
                    )
                x = _crop_resize(x, *box)
            if flip:
                x = torch.flip(x, dims=(-1,))
            if k:
                x = torch.rot90(x, k, dims=(-2, -1))
            out[key] = x.contiguous()
        return out

    def _crop_box(self, rng: np.random.Generator) -> tuple[float, float, float]:
        """(side, top, left) as fractions of the chip side."""
        side = float(rng.uniform(np.sqrt(self.crop_scale), 1.0))
        top, left = rng.uniform(0.0, 1.0 - side, size=2)
        return side, float(top), float(left)


def _crop_resize(x: torch.Tensor, side: float, top: float, left: float) -> torch.Tensor:
    """Crop a (C, H, W) tensor to the fractional box and resize it back to (H, W)."""
    h, w = x.shape[-2:]
    size = max(1, round(side * h))
    r, c = min(round(top * h), h - size), min(round(left * w), w - size)
    crop = x[:, r : r + size, c : c + size]
    if size == h:
        return crop
    return F.interpolate(crop[None], size=(h, w), mode="bilinear", align_corners=False)[0]
