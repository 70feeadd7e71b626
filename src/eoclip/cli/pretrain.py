"""``eoclip pretrain``: train the multi-tower CLIP model on a ChipStore (one process or torchrun)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command("pretrain")
    def pretrain_cmd(
        config: str = typer.Option("demo", "--config", "-c",
                                   help="Packaged setting name (e.g. demo) or a YAML file."),
        store: str | None = typer.Option(None, "--store", help="ChipStore folder or URL."),
        out: str | None = typer.Option(None, "--out", help="Parent folder of run folders."),
        name: str | None = typer.Option(None, "--name", help="Run folder name under --out."),
        model: str | None = typer.Option(None, "--model", help="Model variant or YAML file."),
        epochs: int | None = typer.Option(None, "--epochs"),
        batch_size: int | None = typer.Option(None, "--batch-size", help="Chips per step per process."),
        max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after this many steps."),
        num_workers: int | None = typer.Option(None, "--num-workers"),
        device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda."),
        resume: bool = typer.Option(False, "--resume", help="Continue <out>/<name>/last."),
        overrides: list[str] | None = typer.Option(
            None, "--set", help="key=value override of any config field (repeatable), "
            "e.g. --set lr=5e-4 --set model_overrides.depth=2."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    ) -> None:
        """Pretrain on the train split, validate every epoch, keep last/ and best/ checkpoints.

        Several processes: torchrun --nproc_per_node=N -m eoclip.train [same options].
        """
        from eoclip.data.store import StoreError
        from eoclip.distributed import print0
        from eoclip.errors import EoclipError
        from eoclip.train import CheckpointError, load_pretrain_config, parse_overrides, pretrain

        explicit = {"store": store, "out": out, "name": name, "model": model, "epochs": epochs,
                    "batch_size": batch_size, "max_steps": max_steps, "num_workers": num_workers,
                    "device": device}
        try:
            values = parse_overrides(overrides)
            values.update({k: v for k, v in explicit.items() if v is not None})
            if no_progress:
                values["progress"] = False
            cfg = load_pretrain_config(config, values)
            result = pretrain(cfg, resume=resume)
        except (ValueError, StoreError, CheckpointError, FileExistsError, FileNotFoundError,
                EoclipError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from err
        best = f"{result.best_val_loss:.4f}" if result.best_val_loss is not None else "n/a"
        print0(f"done: {result.step} steps, {result.epoch} epochs in {result.wall_time_s:.0f} s; "
               f"best val loss {best}; checkpoints in {Path(result.run_dir)}")
