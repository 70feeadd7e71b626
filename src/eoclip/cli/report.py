"""`eoclip report`: figures, retrieval metrics and a summary table as one static HTML page.

Example:
    eoclip report --run demo_out --out demo_out/report
    eoclip report --run runs/demo --fewshot results/fewshot --tsne results/tsne/tsne.parquet \\
        --out report
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the `report` command to `app`."""

    @app.command("report")
    def report(
        out: Annotated[
            str, typer.Option("--out", "-o", help="output folder (index.html + figures/)")
        ],
        run: Annotated[
            str | None, typer.Option(help="`eoclip demo` folder or a pretraining run folder")
        ] = None,
        store: Annotated[str | None, typer.Option(help="ChipStore (default: from --run)")] = None,
        fewshot: Annotated[
            list[str] | None,
            typer.Option(help="few-shot results folder or results.parquet (repeatable)"),
        ] = None,
        tsne: Annotated[str | None, typer.Option(help="tsne.parquet of `eoclip tsne`")] = None,
        search_table: Annotated[
            str | None,
            typer.Option(
                help="EmbeddingTable for the neighbour strips (default: the run's pretrained one)"
            ),
        ] = None,
        title: Annotated[str, typer.Option(help="the page's title")] = "eoclip report",
        main_source: Annotated[
            str, typer.Option(help="source of the learned embeddings")
        ] = "pretrained",
        workers: Annotated[
            int,
            typer.Option(
                min=1, help="processes drawing the page's sections side by side (same figures)"
            ),
        ] = 2,
    ) -> None:
        """Draw the paper's figures 1, 2, 4, 5, 6 and the retrieval metrics into one HTML page."""
        if run is None and not (store or fewshot or tsne):
            raise typer.BadParameter("give --run or at least one of --store, --fewshot, --tsne")
        from eoclip.report import ReportConfig, build_report

        cfg = ReportConfig(
            out=out,
            run=run,
            store=store,
            fewshot=list(fewshot or []),
            tsne=tsne,
            search_table=search_table,
            title=title,
            main_source=main_source,
            workers=workers,
        )
        path = build_report(cfg)
        typer.echo(str(path))
