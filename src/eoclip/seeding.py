"""Seeds derived from names: the same (seed, parts) give the same stream on any machine."""

from __future__ import annotations

import hashlib
import json

__all__ = ["derive_seed"]


def derive_seed(seed: int, *parts: object) -> int:
    """A 32-bit seed that depends only on `seed` and `parts` (stable across runs and machines).

    Example: `derive_seed(0, "conus", "tree", "s1grdm", "250", 3)`.
    """
    payload = json.dumps([int(seed), *[str(p) for p in parts]])
    return int.from_bytes(hashlib.sha256(payload.encode()).digest()[:4], "little")
