"""The exceptions eoclip raises on bad input, under one root.

Catch ``EoclipError`` to handle any of them; the command line turns each into a one-line
message and exit status 1. Each subclass also derives from the built-in exception that its
callers caught before (``ValueError``), so existing ``except ValueError`` code keeps working.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "EmbedError",
    "EoclipError",
    "GeoError",
    "MissingDependencyError",
    "ModelError",
    "OutputLockedError",
    "ReportError",
    "ResumeMismatchError",
    "StoreError",
    "TsneError",
    "error_message",
]


class EoclipError(Exception):
    """Root of every error eoclip raises on purpose; the message names the input and the fix."""


class CheckpointError(EoclipError, RuntimeError):
    """A model or checkpoint folder is missing a file, corrupt, or does not fit the model."""


class ConfigError(EoclipError, ValueError):
    """A settings file or override that cannot work: unknown key, bad value, bad YAML."""


class DataError(EoclipError, ValueError):
    """Arrays, labels or samples that do not fit a modality or a task (shape, range, names)."""


class GeoError(EoclipError, ValueError):
    """An area of interest, a chip grid or a split that cannot be built."""


class ModelError(EoclipError, ValueError):
    """A batch or an input that the model cannot take (shape, modality, channels)."""


class EmbedError(EoclipError, ValueError):
    """Bad embed input: checkpoint, store, channel policy or stale parts."""


class MissingDependencyError(EoclipError, ImportError):
    """An optional dependency that a feature needs is missing; the message says which extra."""


class OutputLockedError(EoclipError, RuntimeError):
    """Another process is writing the same output folder or file."""


class ResumeMismatchError(EoclipError, ValueError):
    """A run resumed with another store or changed settings."""


class StoreError(EoclipError, RuntimeError):
    """A ChipStore that is missing, damaged or used wrongly; the message names the store, and
    for damage the array, the file and the chips (``eoclip.data.integrity``)."""

    def __init__(self, message: str = "", *args):
        # A DataLoader worker's error comes back as a new StoreError whose message is the
        # worker's whole traceback (torch's ExceptionWrapper): keep the worker's own one-line
        # message, which is what the command line prints.
        text = str(message)
        if text.startswith("Caught StoreError") and "StoreError: " in text:
            text = text.rstrip().rpartition("StoreError: ")[2]
        super().__init__(text, *args)


class TsneError(EoclipError, ValueError):
    """Bad t-SNE input: settings, unknown modalities, no finite vector, nothing to map."""


class ReportError(EoclipError, ValueError):
    """A report input that holds nothing to draw (empty summary, no epochs, no full chip)."""


def error_message(err: BaseException) -> str:
    """The one line printed for `err`, without the ``error:`` prefix.

    Args:
        err: an ``EoclipError`` or ``OSError``.

    Returns:
        The message with its whitespace collapsed, so a multi-line message stays one line. A
        ``KeyError`` subclass (``UnknownChipError``) loses the quotes ``str()`` adds; an
        ``OSError`` raised by the system names its file and the reason, e.g.
        ``out/x: Not a directory``.
    """
    if isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    elif isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())
