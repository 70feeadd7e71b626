"""`eoclip import-embeddings`: another product's embeddings onto a ChipStore's chips.

Examples:
    eoclip import-embeddings aef_tiles/ --store world --out emb/aef.parquet --product aef \\
        --version 2020 --dequantize aef --nodata -128
    eoclip import-embeddings tessera.zarr --store world --out emb/tessera.parquet \\
        --product tessera --pooling mean+std
    eoclip import-embeddings clay.parquet --store world --out emb/clay.parquet --product clay
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register"]


def _bands(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(b) for b in text.split(","))
    except ValueError as err:
        raise typer.BadParameter(f"bands are 1-based numbers like 1,2,3, not {text!r}") from err


def register(app: typer.Typer) -> None:
    """Add the `import-embeddings` command to `app`."""

    @app.command("import-embeddings")
    def import_cmd(
        source: Annotated[
            list[str],
            typer.Argument(
                help="a Parquet/GeoParquet table, or rasters (GeoTIFF/COG/VRT files, a folder of "
                "GeoTIFF tiles, a zarr)"
            ),
        ],
        store: Annotated[str, typer.Option(help="ChipStore whose chips get vectors")],
        out: Annotated[str, typer.Option("--out", "-o", help="EmbeddingTable .parquet to write")],
        product: Annotated[
            str, typer.Option(help="product name, the table's source (aef, tessera, clay, ...)")
        ],
        version: Annotated[str | None, typer.Option(help="product version or year")] = None,
        modality: Annotated[
            str | None,
            typer.Option(help="vector column emb_<modality> (default: the product name)"),
        ] = None,
        kind: Annotated[str, typer.Option(help="auto | table | raster")] = "auto",
        id_column: Annotated[
            str | None,
            typer.Option(help="table: chip id column (default chip_id; none: join by geometry)"),
        ] = None,
        vector_column: Annotated[
            str | None,
            typer.Option(
                help="table: list column, or prefix of one column per dimension (A for A00..A63)"
            ),
        ] = None,
        pooling: Annotated[str, typer.Option(help="raster: mean | mean+std")] = "mean",
        bands: Annotated[str | None, typer.Option(help="raster: 1-based bands, e.g. 1,2,3")] = None,
        scale: Annotated[
            float | None,
            typer.Option(help="raster: value = stored * scale + offset (default: the file's)"),
        ] = None,
        offset: Annotated[float | None, typer.Option(help="raster: see --scale")] = None,
        dequantize: Annotated[
            str, typer.Option(help="raster: linear | aef (AlphaEarth int8: sign(v) (|v|/127.5)^2)")
        ] = "linear",
        nodata: Annotated[
            float | None, typer.Option(help="raster: stored nodata value (default: the file's)")
        ] = None,
        variable: Annotated[str | None, typer.Option(help="zarr: data variable")] = None,
        min_valid_fraction: Annotated[
            float, typer.Option(help="raster: least share of a chip with valid pixels, else null")
        ] = 0.5,
        part_chips: Annotated[int, typer.Option(help="raster: chips per resumable part")] = 512,
        overwrite: Annotated[bool, typer.Option(help="replace the output and stale parts")] = False,
        progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    ) -> None:
        """Import another product's embeddings (table or pixel raster) as an EmbeddingTable."""
        from eoclip.embeddings.importing import ImportConfig, import_embeddings
        from eoclip.embeddings.table import read_embedding_table

        cfg = ImportConfig(
            sources=tuple(source),
            store=store,
            out=out,
            product=product,
            version=version,
            modality=modality,
            kind=kind,
            id_column=id_column,
            vector_column=vector_column,
            pooling=pooling,
            bands=_bands(bands),
            scale=scale,
            offset=offset,
            dequantize=dequantize,
            nodata=nodata,
            variable=variable,
            min_valid_fraction=min_valid_fraction,
            part_chips=part_chips,
            overwrite=overwrite,
            progress=progress,
        )
        path = import_embeddings(cfg)
        gdf, meta = read_embedding_table(path)
        typer.echo(
            f"{path}: {meta['chips_with_vector']} of {len(gdf)} chips have a "
            f"{meta['dim']}-d {product} vector (emb_{cfg.modality_name})"
        )
