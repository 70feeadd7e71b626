"""`eoclip demo`: world -> pretrain -> embed -> fewshot -> tsne -> report in one command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from eoclip.demo import StageResult

__all__ = ["register", "timing_table"]

# eoclip.demo.STAGES, spelled out for --help only (importing eoclip.demo loads the scientific
# stack); tests/cli/test_app.py checks that they match.
STAGES_HELP = "world, pretrain, embed_pretrained, embed_untrained, stats, fewshot, tsne, report"


def timing_table(results: list[StageResult]) -> str:
    """The per-stage timing table printed at the end of a demo."""
    lines = [f"{'stage':<18}{'status':<9}{'seconds':>9}"]
    for r in results:
        lines.append(f"{r.stage:<18}{r.status:<9}{r.seconds:>9.1f}")
    lines.append(f"{'total':<18}{'':<9}{sum(r.seconds for r in results):>9.1f}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the `demo` command to `app`."""

    @app.command("demo")
    def demo(
        out: Annotated[str, typer.Option("--out", "-o", help="output folder")] = "demo_out",
        quick: Annotated[bool, typer.Option(help="tiny world and model (about a minute)")] = False,
        force: Annotated[bool, typer.Option(help="rerun every stage")] = False,
        from_stage: Annotated[
            str | None, typer.Option(help=f"rerun this stage and later ones: {STAGES_HELP}")
        ] = None,
        chips_per_aoi: Annotated[int | None, typer.Option(help="synthetic chips per AOI")] = None,
        pretrain_config: Annotated[
            str | None,
            typer.Option(
                help="pretraining setting, a packaged name or a YAML file: demo (default, "
                "16 px patches, ~1.5 min) | long (8 px patches, ~4.5 min, and 3.5x the export "
                "time; beats the channel statistics)"
            ),
        ] = None,
        epochs: Annotated[int | None, typer.Option(help="pretraining epochs")] = None,
        channels: Annotated[
            str | None,
            typer.Option(
                help="embedding channel policy: mean (default) | random (paper) | <channel>"
            ),
        ] = None,
        repeats: Annotated[int | None, typer.Option(help="few-shot repeats")] = None,
        n_jobs: Annotated[int | None, typer.Option(help="parallel few-shot fits")] = None,
        device: Annotated[str | None, typer.Option(help="auto | cpu | cuda")] = None,
        seed: Annotated[
            int | None, typer.Option(help="seed of the world, training and few-shot")
        ] = None,
        progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    ) -> None:
        """The whole system on a synthetic world, resumable by stage; prints the report path."""
        from eoclip.demo import DemoConfig, run_demo

        # Settings not given keep DemoConfig's (or DemoConfig.quick's) defaults, defined there.
        given = {
            "pretrain_config": pretrain_config,
            "channels": channels,
            "n_chips_per_aoi": chips_per_aoi,
            "repeats": repeats,
            "n_jobs": n_jobs,
            "device": device,
            "seed": seed,
        }
        values: dict = {
            "out": out,
            "progress": progress,
            **{k: v for k, v in given.items() if v is not None},
        }
        cfg = DemoConfig.quick(**values) if quick else DemoConfig(**values)
        if pretrain_config is not None:  # an unknown name fails now, not after the world
            from eoclip.train import load_pretrain_config

            load_pretrain_config(pretrain_config)
        if epochs is not None:
            cfg.pretrain_overrides = {**cfg.pretrain_overrides, "epochs": epochs}
        results = run_demo(cfg, force=force, from_stage=from_stage, echo=typer.echo)
        typer.echo("")
        typer.echo(timing_table(results))
        pre = next(r for r in results if r.stage == "pretrain")
        if "best_val_loss" in pre.outputs:
            typer.echo(f"best validation CLIP loss: {pre.outputs['best_val_loss']}")
        typer.echo(f"report: {results[-1].outputs['report']}")
