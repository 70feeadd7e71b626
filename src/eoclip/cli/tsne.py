"""`eoclip tsne`: t-SNE maps of EmbeddingTables (paper section 5.2, Fig. 5).

Example:
    eoclip tsne --table pretrained=emb/pretrained.parquet --out results/tsne
writes `tsne.parquet` and one `tsne_<source>_<task>.png` per source and label.
"""

from __future__ import annotations

from typing import Annotated

import typer

from eoclip.cli.fewshot import parse_tables

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the `tsne` command to `app`."""

    @app.command("tsne")
    def tsne(
        table: Annotated[
            list[str],
            typer.Option("--table", help="NAME=PATH or PATH of an EmbeddingTable (repeatable)"),
        ],
        out: Annotated[str, typer.Option("--out", "-o", help="output folder")],
        max_points: Annotated[int, typer.Option(help="chips per AOI (seeded subsample)")] = 5000,
        perplexity: Annotated[
            float,
            typer.Option(help="t-SNE perplexity: about the number of neighbours each point keeps"),
        ] = 30.0,
        n_iter: Annotated[int, typer.Option(help="iterations after early exaggeration")] = 500,
        seed: Annotated[int, typer.Option(help="subsample and t-SNE initialisation seed")] = 0,
        n_jobs: Annotated[
            int,
            typer.Option(
                help="maps computed at once, one per process (a single map: its threads); "
                "the maps do not depend on it"
            ),
        ] = 1,
        plot: Annotated[bool, typer.Option(help="also draw one PNG per source and label")] = True,
        modalities: Annotated[
            str | None, typer.Option(help="comma-separated modalities (default: all)")
        ] = None,
    ) -> None:
        """2-D t-SNE of each modality's embeddings per AOI, saved as Parquet (+ PNG grids)."""
        import fsspec

        from eoclip.tsne import TsneConfig, plot_tsne, run_tsne

        fs, root = fsspec.core.url_to_fs(out)
        config = TsneConfig(
            max_points=max_points,
            perplexity=perplexity,
            n_iter=n_iter,
            seed=seed,
            n_jobs=n_jobs,
            modalities=tuple(m.strip() for m in modalities.split(",")) if modalities else None,
        )
        fs.makedirs(root, exist_ok=True)
        df = run_tsne(parse_tables(table), config, out_path=f"{out.rstrip('/')}/tsne.parquet")
        typer.echo(f"{len(df)} points -> {out}/tsne.parquet")
        bad = df.attrs.get("nonfinite") or {}
        if bad:
            cells = ", ".join(f"{k}: {v}" for k, v in bad.items())
            typer.echo(f"note: {sum(bad.values())} vectors with NaN/inf left out ({cells})")
        if plot:
            labels = [c.removeprefix("label_") for c in df.columns if str(c).startswith("label_")]
            for source in sorted(df["source"].unique()):
                for task in labels:
                    path = f"{out.rstrip('/')}/tsne_{source}_{task}.png"
                    typer.echo(plot_tsne(df, task, path, source=source))
