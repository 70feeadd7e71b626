"""Channel policies of the embedding export: which channels of a chip feed its vector.

Towers take ONE channel per image (paper section 4.1), so a chip's vector for a modality is
built from a choice of its channels, per modality:

- ``mean``: every valid channel, the L2-normalised vectors averaged and re-normalised;
- ``stack``: every valid channel, each channel's L2-normalised vector kept side by side in
  channel order (C x D values; a NaN block for a channel the chip lacks), so the per-band and
  per-month differences that ``mean`` averages away stay in the vector (what the
  channel-statistics baseline keeps explicitly). Only for modalities with fixed channels; a
  modality whose channels vary per chip (``gunw``'s date pairs) uses ``mean``;
- ``random``: the paper's inference, one random valid channel, seeded per (seed, chip,
  modality) so the choice does not depend on part sizes or the number of processes;
- a channel name (``02_red``, ``20200312_20200217``): that channel only.
"""

from __future__ import annotations

import zlib

import numpy as np

from eoclip.data.modalities import Modality
from eoclip.data.store import ChipStore
from eoclip.errors import EmbedError

__all__ = [
    "POLICIES",
    "count_images",
    "parse_channel_policy",
    "policy_dim",
    "select_channels",
    "slot_names",
    "stacks_channels",
]

POLICIES = ("mean", "random", "stack")


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


def stacks_channels(policy: str, modality: Modality) -> bool:
    """True when `policy` keeps one block per channel for `modality` (``stack``, fixed channels)."""
    return policy == "stack" and not modality.variable


def policy_dim(policy: str, modality: Modality, embed_dim: int) -> int:
    """Length of a chip's vector for `modality` under `policy`: D, or C x D when stacked."""
    return embed_dim * (modality.max_channels if stacks_channels(policy, modality) else 1)


def select_channels(
    policy: str,
    valid: np.ndarray,
    names: np.ndarray,
    positions: np.ndarray,
    seed: int,
    modality: str,
) -> np.ndarray:
    """Which channel slots of each chip feed its vector.

    Args:
        policy: ``mean``, ``stack``, ``random`` or a channel name.
        valid: bool (N, C) validity of each slot.
        names: str (N, C) slot names.
        positions: int (N,) store positions of the chips (seed the random choice).
        seed: root seed of the random choice.
        modality: modality name (part of the random seed).

    Returns:
        bool (N, C): the chosen slots (a row of False = no vector for that chip).
    """
    if policy in ("mean", "stack"):
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


def slot_names(store: ChipStore, mod: str, lo: int, hi: int) -> np.ndarray:
    """Names of every channel slot of chips [lo, hi): str array (N, C) (per chip if variable)."""
    m = store.modalities[mod]
    if m.variable:
        raw = np.asarray(store.arrays(mod)["names"][lo:hi])
        return np.array([[str(v) for v in row] for row in raw], dtype=object).reshape(raw.shape)
    return np.tile(np.array(m.channels, dtype=object), (hi - lo, 1))


def count_images(store: ChipStore, policies: dict[str, str], lo: int, n: int) -> int:
    """Images a part will embed (for the progress bar), from the index's valid channel lists."""
    total = 0
    for mod, policy in policies.items():
        chans = store.index[f"{mod}_channels"].iloc[lo : lo + n]
        if policy in ("mean", "stack"):
            total += int(sum(len(c) for c in chans))
        elif policy == "random":
            total += int(sum(len(c) > 0 for c in chans))
        else:
            total += int(sum(policy in list(c) for c in chans))
    return total
