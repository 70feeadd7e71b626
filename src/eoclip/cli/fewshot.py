"""`eoclip fewshot`: few-shot evaluation of EmbeddingTables (paper section 4.2).

Example:
    eoclip fewshot --table pretrained=emb/pretrained.parquet --table stats=emb/stats.parquet \\
        --out results/fewshot --head rf --repeats 10 --n-jobs 16
    eoclip fewshot --table pretrained=emb/pretrained.parquet --out results/fewshot \\
        --scheduler tcp://scheduler-host:8786      # the fits on a Dask cluster
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["parse_tables", "register"]

# FewshotConfig's defaults, spelled out for --help only (importing eoclip.fewshot would load
# scikit-learn); tests/cli/test_app.py checks that they match.
DEFAULTS_HELP = {
    "train_sizes": "5,10,100,250,500,1000,5000,20000",
    "tasks": "tree,built,crop,water",
    "select_max_train": 10000,
}


def parse_tables(specs: list[str]) -> dict[str, str]:
    """`["pretrained=a.parquet", "b.parquet"]` -> `{"pretrained": "a.parquet", "b": "b.parquet"}`.

    A spec without `NAME=` is named after the file stem. URLs such as `s3://...` are kept whole.
    """
    tables: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or "://" in name or "/" in name:
            name, path = Path(spec).stem, spec
        if not name or not path:
            raise typer.BadParameter(f"bad --table {spec!r}; use NAME=PATH or PATH")
        if name in tables:
            raise typer.BadParameter(f"source name {name!r} given twice in --table")
        tables[name] = path
    return tables


def _csv(text: str | None, cast=str) -> tuple | None:
    if text is None:
        return None
    try:
        return tuple(cast(t.strip()) for t in text.split(",") if t.strip())
    except ValueError as err:
        raise typer.BadParameter(f"cannot parse {text!r}: {err}") from err


def register(app: typer.Typer) -> None:
    """Add the `fewshot` command to `app`."""

    @app.command("fewshot")
    def fewshot(
        table: Annotated[
            list[str], typer.Option("--table", help="NAME=PATH of an EmbeddingTable (repeatable)")
        ],
        out: Annotated[
            str,
            typer.Option("--out", "-o", help="output folder (results.parquet/.csv, summary.csv)"),
        ],
        head: Annotated[str, typer.Option(help="rf | logreg | knn")] = "rf",
        sampler: Annotated[
            str,
            typer.Option(
                help="which train chips get labels: random (paper) | kmeans (nearest "
                "the centres of a k-means of the unlabelled train features)"
            ),
        ] = "random",
        target: Annotated[
            str,
            typer.Option(
                help="binary (paper: label above the AOI's train median) | continuous "
                "(regress the label mean; scored by R2 and MAE)"
            ),
        ] = "binary",
        modality_subsets: Annotated[
            bool,
            typer.Option(
                help="also every subset of modalities, and concat with one modality "
                "missing for --missing-frac of the test chips (concat-<m>@test)"
            ),
        ] = False,
        missing_frac: Annotated[
            float, typer.Option(help="share of test chips losing the modality in concat-<m>@test")
        ] = 0.5,
        repeats: Annotated[int, typer.Option(help="repeats per train size")] = 10,
        repeats_all: Annotated[
            int | None,
            typer.Option(
                help="repeats at size 'all', where only the forest seed changes "
                "(default: --repeats)"
            ),
        ] = None,
        train_sizes: Annotated[
            str | None,
            typer.Option(
                help="comma-separated sizes; 'all' is always added "
                f"(default: the paper's {DEFAULTS_HELP['train_sizes']})"
            ),
        ] = None,
        tasks: Annotated[
            str | None,
            typer.Option(help=f"comma-separated tasks (default: {DEFAULTS_HELP['tasks']})"),
        ] = None,
        features: Annotated[
            str | None, typer.Option(help="comma-separated modalities / concat (default: all)")
        ] = None,
        n_jobs: Annotated[
            int, typer.Option(help="parallel fits on this machine (-1: all cores)")
        ] = -1,
        scheduler: Annotated[
            str | None,
            typer.Option(help="Dask scheduler address (tcp://host:8786): run the fits there"),
        ] = None,
        seed: Annotated[int, typer.Option(help="root seed")] = 0,
        max_test: Annotated[int | None, typer.Option(help="subsample the test split")] = None,
        select_max_train: Annotated[
            int | None,
            typer.Option(
                help="train chips per head-selection fit (0: the whole train split; "
                f"default: {DEFAULTS_HELP['select_max_train']})"
            ),
        ] = None,
        paper: Annotated[
            bool,
            typer.Option(
                help="the paper's protocol exactly: RF 50 trees / depth 7 without "
                "validation search, the paper's train sizes, 10 repeats"
            ),
        ] = False,
        overwrite: Annotated[
            bool, typer.Option(help="discard results already in the output")
        ] = False,
        progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    ) -> None:
        """Few-shot accuracy vs number of labels, per source, AOI, task and feature set."""
        from eoclip.fewshot import (
            FewshotConfig,
            headline,
            point95,
            run_fewshot,
            subset_table,
            summarize,
        )

        # Settings not given keep FewshotConfig's defaults, defined there.
        given = {
            k: v
            for k, v in {"train_sizes": _csv(train_sizes, int), "tasks": _csv(tasks)}.items()
            if v is not None
        }
        if select_max_train is not None:
            given["select_max_train"] = select_max_train or None  # 0: the whole train split
        make = FewshotConfig.paper if paper else FewshotConfig
        config = make(
            repeats=repeats,
            repeats_all=repeats_all,
            head=head,
            sampler=sampler,
            target=target,
            modality_subsets=modality_subsets,
            missing_frac=missing_frac,
            seed=seed,
            n_jobs=n_jobs,
            scheduler=scheduler,
            features=_csv(features),
            max_test=max_test,
            progress=progress,
            **given,
        )
        results = run_fewshot(parse_tables(table), config, out_dir=out, overwrite=overwrite)
        summary = summarize(results)
        typer.echo(f"{len(results)} results in {out}; smallest n_train reaching 95 % of 'all':")
        typer.echo(point95(summary).to_string(index=False))
        typer.echo("share of AOI x task cells reaching 95 % with <= 250 / <= 500 labels:")
        typer.echo(headline(summary).to_string(index=False))
        if modality_subsets:
            typer.echo("per task, at 100 labels and all (mean over AOIs):")
            typer.echo(subset_table(summary).to_string(index=False, float_format="%.3f"))
        bad = summary.groupby(["source", "aoi", "features"])["n_nonfinite"].max()
        if bad.sum() > 0:
            cells = ", ".join(f"{'/'.join(k)}: {v}" for k, v in bad[bad > 0].items())
            typer.echo(
                f"note: chips whose vectors held NaN/inf were used as missing ({cells}); "
                "see the n_nonfinite column"
            )
