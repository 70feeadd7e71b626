"""One way to read settings: a packaged name or a YAML file, plus dotted overrides, checked.

Models, pretraining, modalities and STAC settings are dataclasses; each is read here and
built by its own ``from_dict``, which refuses unknown keys. A small helper rather than
OmegaConf structured configs: the configs are flat dataclasses with a few nested mappings,
and YAML + dataclasses + ``key.sub=value`` overrides cover them without a second type system
(interpolation, merge semantics) that users would have to learn.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from eoclip.errors import ConfigError

__all__ = ["check_keys", "merge", "parse_overrides", "read_mapping", "resolve"]


def resolve(name_or_path: str | Path, packaged: Path, kind: str) -> Path:
    """The YAML file of a packaged name (``packaged/<name>.yaml``) or a path.

    Raises:
        ConfigError: neither (the message lists the packaged names).
    """
    name = str(name_or_path)
    named = packaged / f"{name}.yaml"
    path = named if named.is_file() else Path(name).expanduser()
    if not path.is_file():
        known = sorted(p.stem for p in packaged.glob("*.yaml"))
        raise ConfigError(f"unknown {kind} {name!r}: not a packaged one {known} nor a YAML file")
    return path


def read_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML file holds (an empty file is an empty mapping).

    Raises:
        ConfigError: missing file, invalid YAML, or not a mapping.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise ConfigError(f"{path} does not exist") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def check_keys(data: dict[str, Any], allowed: Iterable[str], source: str) -> None:
    """Refuse keys outside `allowed`, naming them, the allowed ones and `source`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
    allowed = set(allowed)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown keys {unknown}; allowed: {sorted(allowed)}")


def merge(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """`base` with `overrides` applied; nested mappings merge key by key."""
    out = dict(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: Iterable[str] | None) -> dict[str, Any]:
    """`["epochs=3", "model_overrides.depth=2"]` -> {"epochs": 3, "model_overrides": {"depth": 2}}.

    Values are parsed as YAML (`3` an int, `null` None, `[a, b]` a list, `1e-3` a float).

    Raises:
        ConfigError: an item that is not ``key=value`` or whose value is not YAML.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not key=value (e.g. epochs=3)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({err})") from err
        if isinstance(value, str) and _is_float(value):
            value = float(value)  # YAML 1.1 reads `1e-3` as a string
        *parents, leaf = key.strip().split(".")
        target = out
        for p in parents:
            target = target.setdefault(p, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {item!r}: {p} is not a mapping")
        target[leaf] = value
    return out


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
