"""The small synthetic world's settings, shared by its fixture and tests."""

from eoclip.data.synthetic import WorldConfig

# Missing-modality rates raised so that 60 chips surely contain absent modalities.
SMALL = WorldConfig(
    n_chips_per_aoi=30,
    chip_px=32,
    aois=("middle_east", "south_america"),
    seed=3,
    missing=(0.1, 0.1, 0.15),
)
