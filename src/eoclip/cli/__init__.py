"""The ``eoclip`` command line: one verb per module, each only parsing arguments into the
library's config dataclasses and calling the library (docs/design.md, "Principles")."""

from __future__ import annotations

import importlib

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="eoclip",
    help="Multimodal CLIP embeddings for Earth observation, learned without labels, "
    "evaluated few-shot.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)



@app.callback()
def _root() -> None:
    """Multimodal CLIP embeddings for Earth observation (run a verb with --help for details)."""


# Each module exposes register(app); the order is the data flow of docs/design.md.
VERB_MODULES = ["describe", "world", "ingest", "pretrain", "embed", "export_model",
                "import_embeddings", "search", "fewshot", "tsne", "report", "demo"]

for _name in VERB_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    app()
