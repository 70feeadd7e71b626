"""eoclip: multimodal CLIP embeddings for Earth observation, evaluated few-shot."""

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # Resolved on first use: importlib.metadata costs ~0.1 s, which every `import eoclip.x`
    # (and `eoclip --help`) would otherwise pay.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("eoclip")  # one source of truth: pyproject.toml, as installed
        except PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module 'eoclip' has no attribute {name!r}")
