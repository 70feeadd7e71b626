"""eoclip: multimodal CLIP embeddings for Earth observation, evaluated few-shot."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    # One source of truth: the version in pyproject.toml, as installed.
    __version__ = version("eoclip")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
