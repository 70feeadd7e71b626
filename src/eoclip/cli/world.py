"""`eoclip world`: generate the built-in synthetic world as a ChipStore (no downloads)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register", "parse_aois"]


def parse_aois(text: str | None) -> tuple[str, ...] | None:
    """``"conus, china"`` -> ``("conus", "china")``; empty or None -> None (all five)."""
    if not text:
        return None
    names = tuple(a.strip() for a in text.split(",") if a.strip())
    return names or None


def register(app: typer.Typer) -> None:
    """Add the `world` command to `app`."""

    @app.command("world")
    def world(
        out: Annotated[
            str, typer.Option("--out", "-o", help="store folder or fsspec URL to write")
        ],
        chips_per_aoi: Annotated[int, typer.Option(help="chips in each AOI's block")] = 1000,
        chip_px: Annotated[int, typer.Option(help="pixels per 4480 m chip side (448 = 10 m)")] = 64,
        aois: Annotated[
            str | None,
            typer.Option(
                help="comma-separated AOIs (default: conus, middle_east, "
                "pakistan_india, china, south_america)"
            ),
        ] = None,
        seed: Annotated[int, typer.Option(help="same seed, same world, byte for byte")] = 0,
        overwrite: Annotated[bool, typer.Option(help="replace whatever is at the output")] = False,
        workers: Annotated[
            int | None, typer.Option(help="generating processes (default: up to 2)")
        ] = None,
        progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    ) -> None:
        """Generate (or resume generating) a synthetic world of s2rgbm, s1grdm, gunw and labels."""
        from eoclip.data.synthetic import WorldConfig, make_world

        config = WorldConfig(
            n_chips_per_aoi=chips_per_aoi,
            chip_px=chip_px,
            seed=seed,
            **({"aois": parse_aois(aois)} if parse_aois(aois) else {}),
        )
        store = make_world(
            out, config=config, overwrite=overwrite, progress=progress, workers=workers
        )
        store.close()
        info = store.describe()
        typer.echo(f"{store.url}: {info['chips']} chips, {info['bytes_on_disk'] / 2**20:.1f} MiB")
        for name, m in info["modalities"].items():
            typer.echo(
                f"  {name}: present in {m['fraction_present']:.1%} of chips, "
                f"{m['mean_valid_channels']:.1f} valid channels on average"
            )
