"""`eoclip demo`: the whole system on the synthetic world in one command, stage by stage.

world -> pretrain -> embed (pretrained, untrained) + stats features -> fewshot -> tsne -> report

Every stage writes `<out>/stages/<stage>.json` (its wall time and outputs) when it finishes;
a rerun skips finished stages, `force=True` reruns all of them and `from_stage=` reruns one
stage and every later one. A stage interrupted half-way resumes from its own partial output
(the world, the pretraining run, the embedding parts and the few-shot results all resume).

Layout of `<out>` (what `eoclip report --run <out>` reads):

    world/                        ChipStore of the synthetic world
    runs/demo/                    pretraining run: metrics.jsonl, config.yaml, last/, best/
    embeddings/{pretrained,untrained,stats}.parquet   EmbeddingTables
    fewshot/{pretrained,baselines}/                   results.parquet, summary.csv
    tsne/tsne.parquet
    report/index.html, report/figures/*.png
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eoclip.errors import EoclipError
from eoclip.fewshot.config import PAPER_RF
from eoclip.fsio import write_text_atomic

if TYPE_CHECKING:
    from eoclip.fewshot import FewshotConfig

__all__ = ["STAGES", "DemoConfig", "DemoError", "StageResult", "run_demo"]

STAGES = (
    "world",
    "pretrain",
    "embed_pretrained",
    "embed_untrained",
    "stats",
    "fewshot",
    "tsne",
    "report",
)


class DemoError(EoclipError, RuntimeError):
    """The demo folder holds another configuration, or a stage name is unknown."""


@dataclass
class DemoConfig:
    """Settings of `run_demo`; the defaults run in about 5 minutes on 2 CPU cores."""

    out: str = "demo_out"  # output folder (see the module docstring for its layout)
    n_chips_per_aoi: int = 1000  # synthetic world: chips per AOI (5 AOIs)
    chip_px: int = 64  # pixels per chip side
    aois: tuple[str, ...] | None = None  # None: the five AOIs of the paper
    seed: int = 0  # world, pretraining, channel choice, few-shot samples, t-SNE
    pretrain_config: str = "demo"  # packaged pretraining setting or YAML file
    pretrain_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"epochs": 4}
    # Channel policy of the embedding export: "mean" of the embeddings of every valid channel
    # (~7x the images of the paper's one random channel, ~45 s per table here) gave 0.03-0.05
    # higher few-shot accuracy than "random" on the demo world.
    channels: str = "mean"
    embed_batch_size: int = 512  # single-channel images per forward pass
    untrained_seed: int = 0  # initialisation of the untrained baseline
    train_sizes: tuple[int, ...] = (10, 25, 50, 100, 250, 500)  # few-shot labels ('all' added)
    repeats: int = 3  # few-shot repeats per train size (paper: 10)
    head: str = "rf"  # few-shot head: rf (paper) | logreg | knn
    # Head parameters searched on validation; the default is the paper's chosen forest only
    # (section 4.2: "50 estimators and 7 max depth"), None = the fewshot package's grid.
    head_grid: tuple[dict, ...] | None = (PAPER_RF,)
    baseline_features: tuple[str, ...] | None = ("concat",)  # None: every feature set
    n_jobs: int = 2  # few-shot parallel fits
    tsne_max_points: int = 800  # t-SNE chips per AOI
    tsne_n_iter: int = 400  # t-SNE iterations after early exaggeration
    device: str = "auto"  # torch device for pretraining and embedding
    progress: bool = True  # progress bars

    def __post_init__(self) -> None:
        self.train_sizes = tuple(int(s) for s in self.train_sizes)
        if self.aois is not None:
            self.aois = tuple(self.aois)
        if self.head_grid is not None:
            self.head_grid = tuple(dict(g) for g in self.head_grid)
        if self.baseline_features is not None:
            self.baseline_features = tuple(self.baseline_features)

    @classmethod
    def quick(cls, **overrides: Any) -> DemoConfig:
        """A tiny run (2 AOIs x 60 chips of 32 px, a few steps of a tiny model) for tests."""
        values: dict[str, Any] = dict(
            n_chips_per_aoi=60,
            chip_px=32,
            aois=("conus", "china"),
            train_sizes=(10,),
            repeats=1,
            n_jobs=1,
            tsne_max_points=60,
            tsne_n_iter=100,
            embed_batch_size=256,
            pretrain_overrides={
                "epochs": 2,
                "batch_size": 16,
                "num_workers": 0,
                "warmup_steps": 2,
                "model_overrides": {"depth": 1, "width": 32, "heads": 2, "embed_dim": 32},
            },
        )
        values.update(overrides)
        return cls(**values)

    @classmethod
    def read(cls, out: str | Path) -> DemoConfig:
        """The settings of the demo run in folder `out` (its `demo_config.json`)."""
        values = json.loads(_Paths(str(out)).config.read_text())
        return cls(out=str(out), **values)

    def fewshot_config(self, features: tuple[str, ...] | None = None) -> FewshotConfig:
        """The few-shot protocol of the demo (all feature sets, or `features`)."""
        from eoclip.fewshot import FewshotConfig

        return FewshotConfig(
            train_sizes=self.train_sizes,
            repeats=self.repeats,
            head=self.head,
            grid=self.head_grid,
            seed=self.seed,
            n_jobs=self.n_jobs,
            features=features,
            progress=self.progress,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (tuples as lists), minus the settings that do not change results."""
        d = json.loads(json.dumps(dataclasses.asdict(self)))
        for key in ("progress", "device", "n_jobs", "out"):
            d.pop(key)
        return d


@dataclass
class StageResult:
    """One line of the timing table."""

    stage: str
    status: str  # "ran" | "skipped"
    seconds: float  # wall time of the run that produced the stage's outputs
    outputs: dict[str, str]


class _Paths:
    def __init__(self, out: str) -> None:
        root = Path(out)
        self.root, self.world, self.runs = root, root / "world", root / "runs"
        self.config = root / "demo_config.json"
        self.run = self.runs / "demo"
        self.emb = {
            k: root / "embeddings" / f"{k}.parquet" for k in ("pretrained", "untrained", "stats")
        }
        self.fewshot = root / "fewshot"
        self.tsne = root / "tsne" / "tsne.parquet"
        self.report = root / "report"
        self.stages = root / "stages"


def _world(cfg: DemoConfig, p: _Paths) -> dict[str, str]:
    from eoclip.data.synthetic import WorldConfig, make_world
    from eoclip.data.synthetic.fields import AOI_NAMES

    world = WorldConfig(
        n_chips_per_aoi=cfg.n_chips_per_aoi,
        chip_px=cfg.chip_px,
        aois=cfg.aois or AOI_NAMES,
        seed=cfg.seed,
    )
    store = make_world(p.world, config=world, progress=cfg.progress)
    store.close()
    return {"store": str(p.world), "chips": str(len(store))}


def _pretrain(cfg: DemoConfig, p: _Paths) -> dict[str, str]:
    from eoclip.train import load_pretrain_config, pretrain

    values = {
        **cfg.pretrain_overrides,
        "store": str(p.world),
        "out": str(p.runs),
        "name": "demo",
        "seed": cfg.seed,
        "device": cfg.device,
        "progress": cfg.progress,
    }
    result = pretrain(load_pretrain_config(cfg.pretrain_config, values), resume=True)
    if result.best is None:
        raise DemoError(f"pretraining in {p.run} produced no best/ checkpoint (no val split?)")
    return {
        "run": str(p.run),
        "best": str(result.best),
        "best_val_loss": f"{result.best_val_loss:.4f}",
    }


def _embed(cfg: DemoConfig, p: _Paths, untrained: bool) -> dict[str, str]:
    from eoclip.embeddings.export import EmbedConfig, embed_store

    kind = "untrained" if untrained else "pretrained"
    ecfg = EmbedConfig(
        checkpoint=str(p.run / "best"),
        store=str(p.world),
        out=str(p.emb[kind]),
        channels=cfg.channels,
        batch_size=cfg.embed_batch_size,
        untrained=untrained,
        seed=cfg.untrained_seed if untrained else cfg.seed,
        device=cfg.device,
        overwrite=True,
        progress=cfg.progress,
    )
    return {"table": embed_store(ecfg)}


def _stats(cfg: DemoConfig, p: _Paths) -> dict[str, str]:
    from eoclip.features import write_stats_table

    return {"table": write_stats_table(str(p.world), str(p.emb["stats"]), progress=cfg.progress)}


def _fewshot(cfg: DemoConfig, p: _Paths) -> dict[str, str]:
    from eoclip.fewshot import run_fewshot

    run_fewshot(
        {"pretrained": str(p.emb["pretrained"])},
        cfg.fewshot_config(),
        out_dir=str(p.fewshot / "pretrained"),
    )
    run_fewshot(
        {k: str(p.emb[k]) for k in ("stats", "untrained")},
        cfg.fewshot_config(cfg.baseline_features),
        out_dir=str(p.fewshot / "baselines"),
    )
    return {"results": str(p.fewshot)}


def _tsne(cfg: DemoConfig, p: _Paths) -> dict[str, str]:
    from eoclip.tsne import TsneConfig, run_tsne

    tcfg = TsneConfig(
        max_points=cfg.tsne_max_points,
        n_iter=cfg.tsne_n_iter,
        seed=cfg.seed,
        n_jobs=max(cfg.n_jobs, 1),
        progress=cfg.progress,
    )
    run_tsne({"pretrained": str(p.emb["pretrained"])}, tcfg, out_path=str(p.tsne))
    return {"tsne": str(p.tsne)}


def _report(cfg: DemoConfig, p: _Paths) -> dict[str, str]:
    from eoclip.report import ReportConfig, build_report

    path = build_report(
        ReportConfig(
            out=str(p.report),
            run=str(p.root),
            seed=cfg.seed,
            title="eoclip demo: synthetic world",
            workers=max(cfg.n_jobs, 1),
        )
    )
    return {"report": str(path)}


_RUNNERS: dict[str, Callable[[DemoConfig, _Paths], dict[str, str]]] = {
    "world": _world,
    "pretrain": _pretrain,
    "embed_pretrained": lambda c, p: _embed(c, p, False),
    "embed_untrained": lambda c, p: _embed(c, p, True),
    "stats": _stats,
    "fewshot": _fewshot,
    "tsne": _tsne,
    "report": _report,
}


def _outputs(p: _Paths, stage: str) -> list[Path]:
    """What a forced rerun of `stage` removes first."""
    return {
        "world": [p.world],
        "pretrain": [p.run],
        "embed_pretrained": [p.emb["pretrained"]],
        "embed_untrained": [p.emb["untrained"]],
        "stats": [p.emb["stats"]],
        "fewshot": [p.fewshot],
        "tsne": [p.tsne.parent],
        "report": [p.report],
    }[stage]


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _check_config(cfg: DemoConfig, p: _Paths, rerun_any: bool) -> None:
    path = p.config
    if path.is_file() and not rerun_any and json.loads(path.read_text()) != cfg.to_dict():
        raise DemoError(
            f"{p.root} holds a demo run with other settings ({path}); use another "
            "output folder, or force=True to redo every stage"
        )
    p.root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(cfg.to_dict(), indent=2))


def run_demo(
    cfg: DemoConfig,
    force: bool = False,
    from_stage: str | None = None,
    echo: Callable[[str], None] = print,
) -> list[StageResult]:
    """Run every stage that is not finished yet.

    Args:
        cfg: the settings.
        force: rerun every stage (their outputs are removed first).
        from_stage: rerun this stage and all later ones.
        echo: where the one-line stage messages go.

    Returns:
        One `StageResult` per stage, in order; the report is `results[-1].outputs["report"]`.

    Raises:
        DemoError: unknown stage, or `cfg.out` holds a run with other settings.
    """
    if from_stage is not None and from_stage not in STAGES:
        raise DemoError(f"unknown stage {from_stage!r}; stages are {list(STAGES)}")
    first = 0 if force else STAGES.index(from_stage) if from_stage else len(STAGES)
    p = _Paths(cfg.out)
    _check_config(cfg, p, rerun_any=first < len(STAGES))
    p.stages.mkdir(parents=True, exist_ok=True)
    results = []
    for i, stage in enumerate(STAGES):
        marker = p.stages / f"{stage}.json"
        if i >= first:
            marker.unlink(missing_ok=True)
            for path in _outputs(p, stage):
                _remove(path)
        if marker.is_file():
            done = json.loads(marker.read_text())
            results.append(StageResult(stage, "skipped", done["seconds"], done["outputs"]))
            echo(
                f"[{i + 1}/{len(STAGES)}] {stage}: done earlier ({done['seconds']:.1f} s), skipped"
            )
            continue
        echo(f"[{i + 1}/{len(STAGES)}] {stage} ...")
        t0 = time.perf_counter()
        outputs = _RUNNERS[stage](cfg, p)
        seconds = time.perf_counter() - t0
        write_text_atomic(
            marker,
            json.dumps(
                {
                    "stage": stage,
                    "seconds": seconds,
                    "outputs": outputs,
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                },
                indent=2,
            ),
        )
        results.append(StageResult(stage, "ran", seconds, outputs))
        echo(f"[{i + 1}/{len(STAGES)}] {stage}: {seconds:.1f} s")
    return results
