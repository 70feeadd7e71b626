"""The built-in synthetic world: land-cover fields rendered into s2rgbm, s1grdm and gunw.

>>> from eoclip.data.synthetic import make_world
>>> store = make_world("demo_out/world", n_chips_per_aoi=1000, chip_px=64)   # doctest: +SKIP
"""

from eoclip.data.synthetic.fields import (
    AOI_NAMES,
    COVERS,
    AoiFields,
    AoiProfile,
    chip_labels,
    cover_fractions,
    get_profile,
)
from eoclip.data.synthetic.render import gunw_pairs, render_gunw, render_s1, render_s2
from eoclip.data.synthetic.world import (
    MODALITIES,
    WorldConfig,
    generate_chip,
    make_world,
    world_grid,
)

__all__ = [
    "AOI_NAMES",
    "COVERS",
    "MODALITIES",
    "AoiFields",
    "AoiProfile",
    "WorldConfig",
    "chip_labels",
    "cover_fractions",
    "generate_chip",
    "get_profile",
    "gunw_pairs",
    "make_world",
    "render_gunw",
    "render_s1",
    "render_s2",
    "world_grid",
]
