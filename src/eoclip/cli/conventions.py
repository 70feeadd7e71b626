"""What every ``eoclip`` verb shares: one error handler, logging set-up, renamed options.

Exit statuses: 0 success, 1 an input the library refused (``EoclipError``) or a file that
cannot be read or written (``OSError``), 2 a usage error found by click (missing or malformed
option). Anything else is a bug and keeps its traceback.

Kept light on purpose: ``eoclip --help`` imports this module, so nothing here may import
numpy, torch or the rest of the scientific stack (``EoclipError`` lives in a leaf module).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from eoclip.errors import EoclipError, error_message

__all__ = [
    "EoclipGroup",
    "configure_logging",
    "renamed_option",
    "require",
]

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(levelname)s: %(message)s"


class EoclipGroup(TyperGroup):
    """The root command group: every verb runs inside `invoke`, so its errors end here.

    ``EoclipError`` and ``OSError`` become ``error: <message>`` on stderr and exit status 1;
    click's own exceptions (usage errors: 2, ``typer.Exit``) pass through unchanged.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (EoclipError, OSError) as err:
            # Keep the chain for -v users who need to see where it came from.
            logger.debug("the error's traceback:", exc_info=err)
            typer.echo(f"error: {error_message(err)}", err=True)
            raise typer.Exit(1) from err


class _CurrentStderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is at emit time.

    A plain StreamHandler keeps the stream it was created with; test runners and tools that
    swap ``sys.stderr`` (click's CliRunner) would leave it writing to a closed stream.
    """

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; ignored
        pass


def configure_logging(verbose: bool = False, quiet: bool = False) -> int:
    """Send log records to stderr as ``LEVEL: message``; WARNING, INFO with -v, ERROR with -q.

    Idempotent: a second call replaces the handler of the first instead of adding one.

    Returns:
        The level set on the root logger.
    """
    if verbose and quiet:
        raise typer.BadParameter("give at most one of --verbose and --quiet")
    level = logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _CurrentStderr)]:
        root.removeHandler(handler)
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    return level


def renamed_option(value: Any, old_value: Any, *, new: str, old: str) -> Any:
    """The value of option `new`, also accepted under its old spelling `old` for one release.

    Args:
        value: what was given as `new` (None if not given).
        old_value: what was given as `old` (None if not given).
        new, old: the option names, e.g. ``"--out"`` and ``"--store"``.

    Raises:
        typer.BadParameter: both spellings were given (a usage error, exit status 2).
    """
    if old_value is None:
        return value
    if value is not None:
        raise typer.BadParameter(f"{old} is the old spelling of {new}; give only {new}")
    logger.warning("%s is deprecated and will be removed in the next release; use %s", old, new)
    return old_value


def require(value: Any, name: str) -> Any:
    """`value`, or a usage error (exit status 2) naming option `name` when it is None."""
    if value is None:
        raise typer.BadParameter("this option is required", param_hint=f"'{name}'")
    return value
