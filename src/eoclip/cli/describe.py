"""``eoclip describe STORE``: what a ChipStore holds; ``--check``: whether it is intact."""

from __future__ import annotations

import json
from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the `describe` command to `app`."""

    @app.command("describe")
    def describe(
        store: Annotated[str, typer.Argument(help="ChipStore folder or fsspec URL.")],
        as_json: Annotated[
            bool, typer.Option("--json", help="Print JSON instead of a table.")
        ] = False,
        check: Annotated[
            bool,
            typer.Option(
                "--check",
                help="Scan every file and chunk (checksums) and list what is missing or "
                "corrupt with the chips affected; exit 1 when damaged.",
            ),
        ] = False,
    ) -> None:
        """Chips per AOI and split, modality presence, valid channels and size on disk."""
        from eoclip.data.store import ChipStore

        opened = ChipStore.open(store)
        if check:
            report = opened.verify(progress=not as_json)
            typer.echo(
                json.dumps(report.to_dict(), indent=2) if as_json else "\n".join(report.lines())
            )
            raise typer.Exit(0 if report.ok else 1)
        info = opened.describe()
        if as_json:
            typer.echo(json.dumps(info, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        console = Console()
        console.print(
            f"[bold]{info['url']}[/bold]: {info['chips']} chips of "
            f"{info['chip_px']} px at {info['pixel_size_m']} m, "
            f"{info['bytes_on_disk'] / 1e6:.1f} MB on disk"
        )
        t = Table("modality", "chips present", "fraction", "mean valid channels", "slots")
        for name, m in info["modalities"].items():
            t.add_row(
                name,
                str(m["chips_present"]),
                f"{m['fraction_present']:.3f}",
                f"{m['mean_valid_channels']:.2f}",
                str(m["channel_slots"]),
            )
        console.print(t)
        t = Table("aoi/split", "chips")
        for k, n in info["chips_by_aoi_split"].items():
            t.add_row(k, str(n))
        console.print(t)
