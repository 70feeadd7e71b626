"""The ``eoclip`` command line: one verb per module, each only parsing arguments into the
library's config dataclasses and calling the library (docs/design.md, "Principles").

Conventions shared by every verb (README, "Command-line conventions"): ``--store`` is always a
ChipStore the verb reads, ``--out``/``-o`` always what it writes; errors are one line on stderr
with exit status 1 (usage errors 2), handled once in ``conventions.EoclipGroup``; diagnostics
go through ``logging`` (configured here, ``-v``/``-q``), results to stdout. Verb modules import
the scientific stack inside their commands only, so ``eoclip --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from eoclip.cli.conventions import EoclipGroup, configure_logging

__all__ = ["app", "main"]

app = typer.Typer(
    name="eoclip",
    cls=EoclipGroup,
    help="Multimodal CLIP embeddings for Earth observation, learned without labels, "
    "evaluated few-shot.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if not value:
        return
    import eoclip

    typer.echo(f"eoclip {eoclip.__version__}")
    raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also log progress details (INFO) on stderr.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Log only errors on stderr (no warnings).")
    ] = False,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print eoclip's version and exit.",
        ),
    ] = False,
) -> None:
    """Multimodal CLIP embeddings for Earth observation (run a verb with --help for details).

    --store is always a ChipStore the verb reads and --out/-o what it writes. Exit status 1: the
    input was refused (one line on stderr says why); 2: bad usage.
    """
    configure_logging(verbose=verbose, quiet=quiet)


# Each module exposes register(app); the order is the data flow of docs/design.md.
VERB_MODULES = [
    "describe",
    "world",
    "ingest",
    "pretrain",
    "embed",
    "export_model",
    "import_embeddings",
    "search",
    "fewshot",
    "tsne",
    "report",
    "demo",
]

for _name in VERB_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    app()
