"""Small filesystem helpers shared by every on-disk format: local folders and fsspec URLs alike.

Whole files only: everything is written to a temporary name beside the target and then
renamed, so a reader never sees a half-written file.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from typing import Any

import fsspec
import pandas as pd

__all__ = ["resolve", "join", "write_bytes_atomic", "write_json_atomic", "read_json",
           "write_parquet_atomic", "zarr_store"]


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


def write_bytes_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to a temporary sibling, then rename it onto ``path``."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    fs.pipe_file(tmp, data)
    if fs.exists(path) and not _is_local(fs):
        fs.rm(path)
    fs.mv(tmp, path)


def write_json_atomic(fs: fsspec.AbstractFileSystem, path: str, obj: Any) -> None:
    """JSON (indented, key order kept) written atomically."""
    write_bytes_atomic(fs, path, json.dumps(obj, indent=2).encode())


def read_json(fs: fsspec.AbstractFileSystem, path: str) -> Any:
    """Parse a JSON file; errors name the file."""
    try:
        with fs.open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise
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
