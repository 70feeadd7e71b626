"""Load and publish models without the training code: exported folders and checkpoints.

An **exported model** (`export_model(checkpoint, out)`, `eoclip export-model`) is a folder
other tools load::

    out/
      model.safetensors   the weights (the checkpoint's file, byte for byte: same sha256)
      config.json         format "eoclip-model", model_config, modalities with their channels
                          and normalisation, training summary, weights_sha256, timm towers
      README.md           the model card (eoclip.model.card)
      timm/<modality>.safetensors + .json   each tower as a plain timm VisionTransformer

`from_pretrained(path)` loads an exported folder, a training checkpoint folder (`best/`,
`last/`: `checkpoint.json` + `model.safetensors`) or a run folder holding `best/`, and, with
`huggingface_hub` installed, a Hub repo id (`org/name`, downloaded to the Hub cache). The
sha256 of the weights is checked against the metadata. Only torch, safetensors and the model
classes are imported: inference never needs `eoclip.train`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_model

from eoclip.errors import CheckpointError
from eoclip.model.clip import MultiTowerCLIP
from eoclip.model.config import ModelConfig

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "EXPORT_FORMAT",
    "CheckpointError",
    "export_model",
    "from_pretrained",
    "load_checkpoint",
    "load_weights",
    "model_folder",
    "read_model_meta",
    "weights_sha256",
]

log = logging.getLogger(__name__)

EXPORT_FORMAT = "eoclip-model"
EXPORT_VERSION = 1
CHECKPOINT_FORMAT = "eoclip-checkpoint"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # org/name, as the Hub spells repo ids
WEIGHTS, CONFIG, CHECKPOINT_META, CARD = (
    "model.safetensors",
    "config.json",
    "checkpoint.json",
    "README.md",
)


def weights_sha256(path: str | Path) -> str:
    """Hex sha256 of a weights file (what the metadata's ``weights_sha256`` records)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def model_folder(path: str | Path) -> Path:
    """The folder holding the weights: `path`, or `path/best` for a pretraining run folder.

    Raises:
        CheckpointError: no such folder, or neither an exported model nor a checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"model folder {path} does not exist (expected an exported model, "
            "a checkpoint such as runs/<name>/best, or a run folder)"
        )
    if not (path / WEIGHTS).is_file() and (path / "best" / WEIGHTS).is_file():
        return path / "best"
    return path


def read_model_meta(path: str | Path, verify: bool = True) -> dict[str, Any]:
    """Metadata of an exported model (`config.json`) or a checkpoint (`checkpoint.json`).

    Args:
        path: the folder (see `model_folder`).
        verify: check the sha256 of `model.safetensors` against the metadata.

    Returns:
        The metadata dict; it always has `model_config`, `weights_sha256` and `format`.

    Raises:
        CheckpointError: missing files, corrupt JSON, unknown format, hash mismatch.
    """
    path = model_folder(path)
    meta_file = path / CONFIG if (path / CONFIG).is_file() else path / CHECKPOINT_META
    if not meta_file.is_file() or not (path / WEIGHTS).is_file():
        raise CheckpointError(
            f"{path} is not an eoclip model: it needs {WEIGHTS} and {CONFIG} (exported) or "
            f"{CHECKPOINT_META} (checkpoint)"
        )
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{meta_file}: corrupt JSON ({err})") from err
    if meta.get("format") not in (EXPORT_FORMAT, CHECKPOINT_FORMAT) or "model_config" not in meta:
        raise CheckpointError(f"{meta_file}: not an eoclip model (format={meta.get('format')!r})")
    if verify and weights_sha256(path / WEIGHTS) != meta.get("weights_sha256"):
        raise CheckpointError(
            f"{path / WEIGHTS}: sha256 does not match {meta_file.name}; the file is corrupt or "
            "was replaced (copy the model folder again)"
        )
    return meta


def _load_local(
    path: Path, map_location: str | torch.device, verify: bool
) -> tuple[MultiTowerCLIP, dict[str, Any]]:
    path = model_folder(path)
    meta = read_model_meta(path, verify)
    try:
        config = ModelConfig.from_dict(meta["model_config"], source=str(path))
    except ValueError as err:
        raise CheckpointError(str(err)) from err
    model = MultiTowerCLIP(config)
    load_weights(model, path / WEIGHTS, map_location)
    return model.to(map_location).eval(), meta


def load_weights(
    model: torch.nn.Module, weights: str | Path, map_location: str | torch.device = "cpu"
) -> None:
    """Load a ``model.safetensors`` into `model` (strict: every tensor, no extra one).

    Raises:
        CheckpointError: the file does not fit the model (names or shapes differ).
    """
    try:
        load_model(model, str(weights), strict=True, device=str(map_location))
    except RuntimeError as err:
        raise CheckpointError(f"{weights} does not fit the model: {err}") from err


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", verify: bool = True
) -> tuple[MultiTowerCLIP, dict[str, Any]]:
    """The model of a local checkpoint or exported folder and its metadata (eval mode).

    Raises:
        CheckpointError: missing files, corrupt JSON, hash mismatch, weights not fitting.
    """
    return _load_local(Path(path), map_location, verify)


def _hub_folder(repo_id: str, revision: str | None) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:
        raise CheckpointError(
            f"{repo_id!r} is not a local folder; loading from the Hugging Face Hub needs "
            "pip install 'eoclip[hub]'"
        ) from err
    patterns = [WEIGHTS, CONFIG, CARD, "timm/*"]
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except Exception as err:  # the Hub client raises many types (network, auth, not found)
        raise CheckpointError(
            f"{repo_id!r} is no local folder and the Hugging Face Hub could not provide it: {err}"
        ) from err


def from_pretrained(
    path_or_repo: str | Path,
    map_location: str | torch.device = "cpu",
    revision: str | None = None,
    verify: bool = True,
    with_meta: bool = False,
) -> MultiTowerCLIP | tuple[MultiTowerCLIP, dict]:
    """Load an exported model, a checkpoint, a run folder, or a Hugging Face Hub repo.

    Args:
        path_or_repo: a local folder, or `org/name` on the Hub (needs `huggingface_hub`).
        map_location: device of the weights.
        revision: Hub branch, tag or commit.
        verify: check the weights' sha256.
        with_meta: also return the metadata dict.

    Returns:
        The model in eval mode (and its metadata when `with_meta`).

    Example:
        >>> model = from_pretrained("exported/demo")                  # doctest: +SKIP
        >>> z = model.encode("s2rgbm", x)  # x: (B, 1, H, W) normalised -> (B, D) unit rows

    Raises:
        CheckpointError: not a model, corrupt, or a Hub id without `huggingface_hub`.
    """
    local = Path(path_or_repo)
    if local.exists() or not _HUB_ID.fullmatch(str(path_or_repo)):
        model, meta = _load_local(local, map_location, verify)
    else:
        model, meta = _load_local(_hub_folder(str(path_or_repo), revision), map_location, verify)
    return (model, meta) if with_meta else model


def _copy_folder_atomic(build, out: Path, overwrite: bool) -> Path:
    """Run `build(tmp)` into a temporary sibling of `out`, then rename it onto `out`."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise CheckpointError(f"{out} exists and is not empty; choose another folder or overwrite")
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        build(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def export_model(
    checkpoint: str | Path,
    out: str | Path,
    fewshot: pd.DataFrame | None = None,
    timm_towers: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a checkpoint as a folder other tools load (see the module docstring).

    Args:
        checkpoint: checkpoint folder (`runs/<name>/best`) or run folder.
        out: the folder to write (written whole under a temporary name, then renamed).
        fewshot: optional few-shot summary for the model card (`eoclip.fewshot.summarize` of
            a results table; the model layer does not read few-shot results itself).
        timm_towers: also save each tower as a plain timm checkpoint under `timm/`.
        overwrite: replace an existing `out`.

    Returns:
        The folder written.

    Raises:
        CheckpointError: not a checkpoint, hash mismatch, `out` exists.
    """
    from eoclip.model.card import export_config, model_card
    from eoclip.model.timm_tower import save_timm_tower

    src = model_folder(checkpoint)
    model, meta = _load_local(src, "cpu", verify=True)
    config = export_config(model, meta, src)

    def build(tmp: Path) -> None:
        shutil.copyfile(src / WEIGHTS, tmp / WEIGHTS)  # same bytes: same hash, same embeddings
        if timm_towers:
            config["timm"] = {m: save_timm_tower(model, m, tmp / "timm") for m in model.modalities}
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, default=str))
        (tmp / CARD).write_text(model_card(config, fewshot))

    return _copy_folder_atomic(build, Path(out), overwrite)
