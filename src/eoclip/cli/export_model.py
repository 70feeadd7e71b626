"""`eoclip export-model --checkpoint CKPT --out OUT`: a checkpoint as a folder other tools load.

Example:
    eoclip export-model --checkpoint runs/demo/best --out exported/demo \
        --fewshot demo_out/fewshot/pretrained
writes `model.safetensors`, `config.json`, a README.md model card and `timm/<modality>.*`;
load it with `eoclip.model.from_pretrained("exported/demo")` or `eoclip embed --checkpoint`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eoclip.cli.conventions import renamed_option, require

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the `export-model` command to `app`."""

    @app.command("export-model")
    def export_model_cmd(
        checkpoint: Annotated[
            str | None, typer.Option(help="checkpoint folder (runs/<name>/best) or run folder")
        ] = None,
        out: Annotated[str | None, typer.Option("--out", "-o", help="folder to write")] = None,
        old_checkpoint: Annotated[
            str | None,
            typer.Argument(hidden=True, metavar="CHECKPOINT", help="deprecated: use --checkpoint"),
        ] = None,
        old_out: Annotated[
            str | None, typer.Argument(hidden=True, metavar="OUT", help="deprecated: use --out")
        ] = None,
        fewshot: Annotated[
            str | None,
            typer.Option(
                help="few-shot results folder or results.parquet, summarised in the model card"
            ),
        ] = None,
        timm: Annotated[
            bool, typer.Option(help="also save each tower as a timm checkpoint")
        ] = True,
        overwrite: Annotated[bool, typer.Option(help="replace the output folder")] = False,
    ) -> None:
        """Export a model: safetensors weights, config.json, README model card, timm towers."""
        # The positional CHECKPOINT OUT of earlier releases still works, with a warning.
        checkpoint = require(
            renamed_option(
                checkpoint, old_checkpoint, new="--checkpoint", old="CHECKPOINT (positional)"
            ),
            "--checkpoint",
        )
        out = require(renamed_option(out, old_out, new="--out", old="OUT (positional)"), "--out")
        from eoclip.model.pretrained import export_model

        summary = None
        if fewshot is not None:  # the model layer takes a summary, it does not read results
            from eoclip.fewshot import read_results, summarize

            where = Path(fewshot)
            summary = summarize(
                read_results(str(where / "results.parquet" if where.is_dir() else where))
            )
        path = export_model(checkpoint, out, fewshot=summary, timm_towers=timm, overwrite=overwrite)
        typer.echo(str(path))
