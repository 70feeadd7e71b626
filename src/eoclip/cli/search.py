"""`eoclip search`: the chips nearest a query chip in an EmbeddingTable (cosine).

Examples:
    eoclip search --table emb/pretrained.parquet --chip conus_32612_E0137_N0875 --k 10
    eoclip search --table emb/pretrained.parquet --chip conus_32612_E0137_N0875 \\
        --modality s1grdm --against s2rgbm --out neighbours.parquet
    eoclip search --table big.parquet --chip ID --method hnsw --index-cache auto
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the `search` command to `app`."""

    @app.command("search")
    def search(
        table: Annotated[str, typer.Option(help="EmbeddingTable .parquet")],
        chip: Annotated[list[str], typer.Option(help="query chip id (repeatable)")],
        modality: Annotated[
            str | None, typer.Option(help="the query's modality (default: the table's first)")
        ] = None,
        against: Annotated[
            str | None,
            typer.Option(
                help="modality searched (default: the query's; another one = cross-modal)"
            ),
        ] = None,
        k: Annotated[int, typer.Option("--k", help="neighbours per query")] = 20,
        method: Annotated[str, typer.Option(help="exact | hnsw (approximate, FAISS)")] = "exact",
        exclude_query: Annotated[
            bool, typer.Option(help="leave the query chip out of its own neighbours")
        ] = False,
        index_cache: Annotated[
            str | None,
            typer.Option(help="hnsw: 'auto' (beside the table) or a path to cache the index"),
        ] = None,
        ef_search: Annotated[int, typer.Option(help="hnsw: query beam width")] = 128,
        out: Annotated[
            str | None,
            typer.Option(
                "--out", "-o", help=".csv or .parquet (GeoParquet) to write; default: print CSV"
            ),
        ] = None,
    ) -> None:
        """Nearest chips by cosine similarity, within or across modalities."""
        from eoclip.search import SearchConfig, search_table, write_search_results

        cfg = SearchConfig(
            table=table,
            chips=tuple(chip),
            modality=modality,
            against=against,
            k=k,
            method=method,
            exclude_query=exclude_query,
            index_cache=index_cache,
            ef_search=ef_search,
        )
        results = search_table(cfg)
        if out:
            write_search_results(results, out)
            typer.echo(f"{len(results)} neighbours -> {out}")
        else:
            cols = [
                "query_chip",
                "query_modality",
                "modality",
                "rank",
                "chip_id",
                "distance",
                "aoi",
                "split",
            ]
            typer.echo(results[cols].to_csv(index=False, float_format="%.6f").rstrip())
