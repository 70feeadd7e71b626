"""Fixtures for every test."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """Undo the logging set-up of an `eoclip` invocation (its root callback configures the root
    logger once per process, as a command line should), so no test sees another's handler."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
