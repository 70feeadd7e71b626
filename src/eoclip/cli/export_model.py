"""`eoclip export-model CHECKPOINT OUT`: a checkpoint as a folder other tools load.

Example:
    eoclip export-model runs/demo/best exported/demo --fewshot demo_out/fewshot/pretrained
writes `model.safetensors`, `config.json`, a README.md model card and `timm/<modality>.*`;
load it with `eoclip.model.from_pretrained("exported/demo")` or `eoclip embed --checkpoint`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eoclip.errors import CheckpointError
from eoclip.fewshot.config import FewshotError
from eoclip.model.pretrained import export_model

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the `export-model` command to `app`."""

    @app.command("export-model")
    def export_model_cmd(
        checkpoint: Annotated[str, typer.Argument(help="checkpoint folder (runs/<name>/best) "
                                                       "or run folder")],
        out: Annotated[str, typer.Argument(help="folder to write")],
        fewshot: Annotated[str | None, typer.Option(
            help="few-shot results folder or results.parquet, summarised in the model card")
        ] = None,
        timm: Annotated[bool, typer.Option(help="also save each tower as a timm checkpoint")
                        ] = True,
        overwrite: Annotated[bool, typer.Option(help="replace OUT")] = False,
    ) -> None:
        """Export a model: safetensors weights, config.json, README model card, timm towers."""
        try:
            summary = None
            if fewshot is not None:
                from eoclip.fewshot import read_results, summarize

                where = Path(fewshot)
                summary = summarize(read_results(str(where / "results.parquet" if where.is_dir()
                                                     else where)))
            path = export_model(checkpoint, out, fewshot=summary, timm_towers=timm,
                                overwrite=overwrite)
        except (CheckpointError, FewshotError, FileNotFoundError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from err
        typer.echo(str(path))
