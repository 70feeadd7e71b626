"""The `config.json` and the README model card of an exported model.

The card states what a user of a published embedding model needs: architecture, modalities
with their channels and normalisation, training data and steps, validation CLIP loss and
cross-modal retrieval recall against chance, a few-shot summary when results are given,
how to load it, intended use and limitations. Everything comes from the checkpoint's
metadata and, when still reachable, the training store's `store.json` / `world.json`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from eoclip.model.clip import MultiTowerCLIP

__all__ = ["export_config", "model_card"]

log = logging.getLogger(__name__)


def _store_info(store: str | None) -> dict[str, Any]:
    """Modality specs, chip size and (synthetic) world settings of the training store."""
    if not store or "://" in store:
        return {}
    root = Path(store)
    info: dict[str, Any] = {"path": store}
    try:
        meta = json.loads((root / "store.json").read_text())
        info.update(
            chip_px=meta.get("chip_px"),
            pixel_size_m=meta.get("pixel_size_m"),
            modalities=meta.get("modalities", {}),
        )
        if (root / "world.json").is_file():
            info["synthetic_world"] = json.loads((root / "world.json").read_text())
        index = pd.read_parquet(root / "index.parquet", columns=["aoi", "split"])
        info["chips"] = int(len(index))
        info["chips_by_split"] = {k: int(v) for k, v in index["split"].value_counts().items()}
        info["aois"] = sorted(index["aoi"].unique().tolist())
    except (OSError, ValueError) as err:
        log.warning("training store %s not readable (%s); the card omits its details", store, err)
    return info


def _modality_specs(model: MultiTowerCLIP, store: dict) -> dict[str, dict]:
    from eoclip.data.modalities import get_modality

    specs = {}
    for m in model.modalities:
        if m in store.get("modalities", {}):
            specs[m] = store["modalities"][m]
        else:
            try:
                specs[m] = get_modality(m).to_dict()
            except (ValueError, KeyError, FileNotFoundError):
                specs[m] = {"name": m, "channels": None, "normalize": {}}
    return specs


def export_config(model: MultiTowerCLIP, meta: dict[str, Any], source: Path) -> dict[str, Any]:
    """The `config.json` of an exported model, from a checkpoint's metadata."""
    pre = meta.get("pretrain_config") or {}
    store = _store_info(pre.get("store"))
    val = meta.get("val") or {}
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "format": "eoclip-model",
        "version": 1,
        "library": "eoclip",
        "model_config": model.config.to_dict(),
        "modalities": list(model.modalities),
        "embed_dim": model.embed_dim,
        "img_size": model.config.tower.img_size,
        "parameters": int(n_params),
        "weights_sha256": meta["weights_sha256"],
        "modality_specs": _modality_specs(model, store),
        "input": "one channel per image, (B, 1, H, W), physical values normalised per channel "
        "kind as (x - mean) / std (modality_specs[m].normalize); output L2-normalised",
        "training": {
            "source_checkpoint": str(source),
            "step": meta.get("step"),
            "epoch": meta.get("epoch"),
            "best_val_loss": meta.get("best_val_loss"),
            "val_chance_loss": val.get("val_chance_loss"),
            "val_chips": val.get("val_chips"),
            "val_pairs": val.get("val_pairs"),
            "recall": val.get("recall"),
            "pretrain_config": pre,
            "store": store,
            "torch_version": meta.get("torch_version"),
        },
        "exported_with_torch": torch.__version__,
    }


def _fmt(v, spec: str = ".4f") -> str:
    return "n/a" if v is None else format(v, spec)


def _recall_rows(recall: dict | None) -> list[str]:
    if not recall:
        return ["(no retrieval metrics were logged for this checkpoint)"]
    rows = [
        "| query -> gallery | chips | recall@1 | chance@1 | recall@5 | chance@5 |",
        "|---|---|---|---|---|---|",
    ]
    for pair, r in recall.items():
        rows.append(
            f"| {pair} | {r['n']:.0f} | {r['r@1']:.3f} | {r['chance@1']:.4f} | "
            f"{r['r@5']:.3f} | {r['chance@5']:.4f} |"
        )
    return rows


def _fewshot_rows(s: pd.DataFrame | None) -> list[str]:
    if s is None:
        return [
            "No few-shot results were given at export (`eoclip export-model --fewshot "
            "results/fewshot`)."
        ]
    rows = [
        "Accuracy of a Random Forest on the frozen embeddings (mean over AOIs and repeats), "
        "binary tasks (label above the AOI's train median):",
        "",
        "| source | task | features | "
        + " | ".join(f"{n} labels" for n in ("10", "100", "all"))
        + " |",
        "|---|---|---|---|---|---|",
    ]
    for (src, task, feats), g in s.groupby(["source", "task", "features"], sort=True):
        own = set(s.loc[s["source"] == src, "features"])
        if feats != ("concat" if "concat" in own else sorted(own)[0]):
            continue  # one line per source and task: its concatenation, else its only feature
        acc = {
            str(ts): g[g["train_size"].astype(str) == str(ts)]["accuracy_mean"].mean()
            for ts in ("10", "100", "all")
        }
        rows.append(
            f"| {src} | {task} | {feats} | "
            + " | ".join("n/a" if pd.isna(v) else f"{v:.3f}" for v in acc.values())
            + " |"
        )
    return rows


def _modality_rows(specs: dict[str, dict]) -> list[str]:
    rows = [
        "| modality | channels | normalisation (x - mean) / std per channel kind |",
        "|---|---|---|",
    ]
    for m, spec in specs.items():
        ch = spec.get("channels")
        chans = ", ".join(ch) if ch else f"variable, up to {spec.get('max_channels')} per chip"
        norm = "; ".join(
            f"{k}: {v['mean']:g} / {v['std']:g}" for k, v in (spec.get("normalize") or {}).items()
        )
        rows.append(f"| {m} ({spec.get('units', '')}) | {chans} | {norm or 'none'} |")
    return rows


def model_card(config: dict[str, Any], fewshot: pd.DataFrame | None = None) -> str:
    """The README.md (model card) of an exported model.

    Args:
        config: the exported `config.json` content (`export_config`).
        fewshot: a few-shot summary (`eoclip.fewshot.summarize` of a results table), or None.
    """
    mc, tr = config["model_config"], config["training"]
    tw, store = mc["tower"], tr.get("store") or {}
    pre = tr.get("pretrain_config") or {}
    world = store.get("synthetic_world")
    data = (
        f"the eoclip **synthetic world** ({world.get('n_chips_per_aoi')} chips per AOI, "
        f"AOIs {', '.join(world.get('aois', []))}, seed {world.get('seed')}), not real "
        "satellite data"
        if world
        else f"the ChipStore `{store.get('path', pre.get('store'))}`"
    )
    lines = [
        # Front matter read by the Hugging Face Hub (library, tags, license).
        "---",
        "library_name: eoclip",
        "license: apache-2.0",
        "tags: [earth-observation, remote-sensing, clip, multimodal, sentinel-1, sentinel-2]",
        "---",
        "",
        f"# eoclip model `{mc['name']}`",
        "",
        "A multi-tower CLIP model (Allen et al. 2023, *Fewshot learning on global multimodal "
        "embeddings for earth observation tasks*): one single-channel ViT per satellite "
        "modality, trained without labels so that co-located chips of different modalities get "
        "similar embeddings.",
        "",
        "## Architecture",
        "",
        f"- {len(config['modalities'])} towers ({', '.join(config['modalities'])}), each a timm "
        f"VisionTransformer: {tw['img_size']} px input, patch {tw['patch_size']}, width "
        f"{tw['width']}, depth {tw['depth']}, {tw['heads']} heads, `{tw['global_pool']}` pooling, "
        f"then a linear projection to a shared **{config['embed_dim']}-d** space (L2-normalised).",
        f"- {config['parameters']:,} parameters; weights `model.safetensors` "
        f"(sha256 `{config['weights_sha256'][:16]}...`).",
        "",
        "## Modalities, channels and normalisation",
        "",
        "Each tower takes ONE channel per image, shape (B, 1, H, W): physical values (units "
        "below) normalised as (x - mean) / std with the statistics of the channel's kind (the "
        "part of the channel name after the first `_`, else `default`). To embed a chip, "
        "eoclip averages the normalised embeddings of all its valid channels.",
        "",
        *_modality_rows(config["modality_specs"]),
        "",
        "## Training",
        "",
        f"- Data: {data}; {store.get('chips', 'n/a')} chips of {store.get('chip_px', 'n/a')} px "
        f"(splits {store.get('chips_by_split', 'n/a')}).",
        f"- {tr.get('step')} optimiser steps ({tr.get('epoch')} epochs), batch "
        f"{pre.get('batch_size', 'n/a')}, lr {pre.get('lr', 'n/a')}, AdamW with warmup and cosine "
        "decay, one random valid channel per tower and step, CLIP loss per modality pair.",
        f"- Model selection: the lowest validation CLIP loss, **{_fmt(tr.get('best_val_loss'))}** "
        f"(chance level log(batch) = {_fmt(tr.get('val_chance_loss'))}, "
        f"{tr.get('val_chips', 'n/a')} validation chips).",
        "",
        "### Cross-modal retrieval on the validation split",
        "",
        *_recall_rows(tr.get("recall")),
        "",
        "## Few-shot evaluation",
        "",
        *_fewshot_rows(fewshot),
        "",
        *_usage_lines(world is not None),
    ]
    return "\n".join(lines)


def _usage_lines(synthetic: bool) -> list[str]:
    """How to use, intended use and limitations."""
    return [
        "## How to use",
        "",
        "```python",
        "from eoclip.model import from_pretrained",
        "model = from_pretrained('path/to/this/folder')   # or 'org/name' on the Hub",
        "z = model.encode('s2rgbm', x)   # x: (B, 1, H, W) normalised -> (B, D), unit rows",
        "```",
        "",
        "`eoclip embed --checkpoint path/to/this/folder --store STORE --out emb.parquet` embeds "
        "a whole ChipStore. Each tower is also a plain timm checkpoint in `timm/` "
        "(see `timm/<modality>.json` for the `timm.create_model` arguments).",
        "",
        "## Intended use",
        "",
        "Frozen features for Earth-observation tasks learned from few labels (Random Forest or "
        "logistic regression on the embeddings), similarity search across chips and modalities, "
        "and maps of the embedding space, on chips like the training chips (same modalities, "
        "chip size and preprocessing).",
        "",
        "## Limitations",
        "",
        "- Inputs must be preprocessed like the training data (monthly composites, units, "
        "normalisation above); other sensors, seasons or pixel sizes are out of distribution.",
        "- Embeddings are only as general as the training data: "
        + (
            "this model saw synthetic chips only and shows the machinery, not real-world skill."
            if synthetic
            else "regions and land covers absent from the training AOIs are not covered."
        ),
        "- Cross-modal retrieval above chance does not mean the modalities are interchangeable; "
        "validate on your task with labels.",
        "- No guarantees for safety-critical decisions.",
        "",
    ]
