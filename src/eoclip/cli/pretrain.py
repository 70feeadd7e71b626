"""``eoclip pretrain``: train the multi-tower CLIP model on a ChipStore (one process or torchrun).

Example:
    eoclip pretrain --config demo --store demo_out/world --out runs --set lr=5e-4
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the `pretrain` command to `app`."""

    @app.command("pretrain")
    def pretrain_cmd(
        config: Annotated[
            str,
            typer.Option(
                "--config", "-c", help="Packaged setting name (e.g. demo) or a YAML file."
            ),
        ] = "demo",
        store: Annotated[
            str | None, typer.Option(help="ChipStore folder or URL to train on.")
        ] = None,
        out: Annotated[
            str | None,
            typer.Option("--out", "-o", help="Parent folder of the run folders to write."),
        ] = None,
        name: Annotated[
            str | None, typer.Option(help="Run folder name under the output folder.")
        ] = None,
        model: Annotated[str | None, typer.Option(help="Model variant or YAML file.")] = None,
        epochs: Annotated[int | None, typer.Option(help="Passes over the train split.")] = None,
        batch_size: Annotated[int | None, typer.Option(help="Chips per step per process.")] = None,
        max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
        num_workers: Annotated[int | None, typer.Option(help="Data loader processes.")] = None,
        device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
        resume: Annotated[bool, typer.Option(help="Continue <out>/<name>/last.")] = False,
        overrides: Annotated[
            list[str] | None,
            typer.Option(
                "--set",
                help="key=value override of any config field (repeatable), "
                "e.g. --set lr=5e-4 --set model_overrides.depth=2.",
            ),
        ] = None,
        progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    ) -> None:
        """Pretrain on the train split, validate every epoch, keep last/ and best/ checkpoints.

        Several processes: torchrun --nproc_per_node=N -m eoclip.train [same options].
        """
        from eoclip.distributed import print0
        from eoclip.train import load_pretrain_config, parse_overrides, pretrain

        explicit = {
            "store": store,
            "out": out,
            "name": name,
            "model": model,
            "epochs": epochs,
            "batch_size": batch_size,
            "max_steps": max_steps,
            "num_workers": num_workers,
            "device": device,
        }
        values = parse_overrides(overrides)
        values.update({k: v for k, v in explicit.items() if v is not None})
        if not progress:
            values["progress"] = False
        result = pretrain(load_pretrain_config(config, values), resume=resume)
        best = f"{result.best_val_loss:.4f}" if result.best_val_loss is not None else "n/a"
        print0(
            f"done: {result.step} steps, {result.epoch} epochs in {result.wall_time_s:.0f} s; "
            f"best val loss {best}; checkpoints in {Path(result.run_dir)}"
        )
