"""Small filesystem helpers shared by every on-disk format: local folders and fsspec URLs alike.

Whole files only: everything is written to a temporary name beside the target and then
renamed, so a reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
from collections.abc import Iterator
from typing import IO, Any

import fsspec
import pandas as pd

__all__ = [
    "resolve",
    "join",
    "atomic_write",
    "write_bytes_atomic",
    "write_text_atomic",
    "write_json_atomic",
    "read_json",
    "write_parquet_atomic",
    "zarr_store",
]


def resolve(path: str | os.PathLike) -> tuple[fsspec.AbstractFileSystem, str, str]:
    """Split a path or URL into (filesystem, path on that filesystem, URL form).

    Local paths come back absolute, so a store can be reopened from another working directory.
    """
    s = os.fspath(path)
    if "://" not in s:
        s = os.path.abspath(s)
    fs, fs_path = fsspec.core.url_to_fs(s)
    return fs, fs_path.rstrip("/"), s.rstrip("/")


def join(base: str, *parts: str) -> str:
    """Join with ``/`` for URLs and local paths alike."""
    return "/".join([base.rstrip("/"), *parts])


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "wb", fs: fsspec.AbstractFileSystem | None = None
) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success.

    Args:
        path: a local path or fsspec URL (or, with ``fs``, a path on that filesystem).
        mode: ``"wb"`` or ``"w"``.
        fs: the filesystem ``path`` lives on, when the caller already has it.

    A failure inside the block leaves ``path`` untouched and removes the temporary file.
    """
    if fs is None:
        fs, path, _ = resolve(path)
    path = os.fspath(path)
    parent, _, name = path.rpartition("/")
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:8]}" if parent else f".{name}.tmp"
    try:
        with fs.open(tmp, mode) as f:
            yield f
        if fs.exists(path) and not _is_local(fs):
            fs.rm(path)
        fs.mv(tmp, path)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)


def write_bytes_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to a temporary sibling, then rename it onto ``path``."""
    with atomic_write(path, "wb", fs=fs) as f:
        f.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically to a local path or URL."""
    with atomic_write(path, "wb") as f:
        f.write(text.encode("utf-8"))


def write_json_atomic(fs: fsspec.AbstractFileSystem, path: str, obj: Any) -> None:
    """JSON (indented, key order kept) written atomically."""
    write_bytes_atomic(fs, path, json.dumps(obj, indent=2).encode())


def read_json(fs: fsspec.AbstractFileSystem, path: str) -> Any:
    """Parse a JSON file; errors name the file."""
    try:
        with fs.open(path, "rb") as f:
            return json.loads(f.read())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err


def write_parquet_atomic(fs: fsspec.AbstractFileSystem, path: str, df: pd.DataFrame) -> None:
    """(Geo)DataFrame to Parquet, atomically (GeoParquet when ``df`` is a GeoDataFrame)."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    write_bytes_atomic(fs, path, buf.getvalue())


def zarr_store(url: str, read_only: bool):
    """A zarr v3 store for a local folder or any fsspec URL."""
    import zarr.storage

    if "://" not in url or url.startswith("file://"):
        local = url.removeprefix("file://")
        return zarr.storage.LocalStore(local, read_only=read_only)
    return zarr.storage.FsspecStore.from_url(url, read_only=read_only)


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")
