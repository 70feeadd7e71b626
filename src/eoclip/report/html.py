"""The report: the paper's figures, retrieval metrics and a summary table in one static HTML page.

`build_report(ReportConfig(run="demo_out", out="demo_out/report"))` finds its inputs in a
run folder (the layout `eoclip demo` writes, or a pretraining run folder), draws what it can
and writes `index.html` + `figures/*.png` (images linked relatively, no external JS or CSS).
A missing input (no few-shot results yet, no t-SNE) leaves its section out with a note.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import multiprocessing
import string
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml

from eoclip.data.store import ChipStore, StoreError
from eoclip.fewshot import headline, read_results, summarize
from eoclip.fewshot.summary import SUMMARY_INPUTS
from eoclip.fsio import write_text_atomic
from eoclip.report import figures
from eoclip.report.tables import per_aoi_html, subsets_html, summary_table, table_html

__all__ = ["ReportConfig", "ReportInputs", "build_report", "find_inputs"]

log = logging.getLogger(__name__)

# one few-shot repeat; a source evaluated in two result folders is kept once
REPEAT_KEY = ["source", "aoi", "task", "features", "train_size", "repeat"]


@dataclass
class ReportConfig:
    """What `build_report` draws; explicit paths override what is found in `run`."""

    out: str  # output folder: index.html + figures/
    run: str | None = None  # `eoclip demo` folder or a pretraining run folder
    store: str | None = None  # ChipStore (Fig. 1, 2, 6)
    pretrain_run: str | None = None  # folder with metrics.jsonl (retrieval, loss curves)
    fewshot: list[str] = field(default_factory=list)  # results.parquet files or their folders
    tsne: str | None = None  # tsne.parquet of `eoclip tsne`
    search_table: str | None = None  # EmbeddingTable for the neighbour strips (search section)
    title: str = "eoclip report"
    main_source: str = "pretrained"  # source of the learned embeddings in the results
    baselines: tuple[str, ...] = ("stats", "untrained")  # compared sources (concat features)
    n_examples: int = 4  # chips in Fig. 6
    n_search_queries: int = 3  # query chips of the search section
    n_neighbours: int = 5  # neighbours per strip
    seed: int = 0  # which example chips
    # processes drawing the sections side by side (matplotlib draws on one core); 1: in this
    # process. The page and the figures do not depend on it.
    workers: int = 1


@dataclass
class ReportInputs:
    """Resolved input paths (None / empty: not available)."""

    store: str | None = None
    pretrain_run: str | None = None
    fewshot: list[str] = field(default_factory=list)
    tsne: str | None = None
    search_table: str | None = None


def find_inputs(cfg: ReportConfig) -> ReportInputs:
    """Fill in the inputs of `cfg` from its run folder.

    Recognised layouts: a pretraining run (`metrics.jsonl`, `config.yaml` naming the store),
    or an `eoclip demo` folder (`world/`, `runs/*/metrics.jsonl`, `fewshot/**/results.parquet`,
    `tsne/tsne.parquet`).
    """
    inp = ReportInputs(cfg.store, cfg.pretrain_run, list(cfg.fewshot), cfg.tsne, cfg.search_table)
    run = Path(cfg.run) if cfg.run else None
    if run is not None and not run.is_dir():
        raise FileNotFoundError(f"run folder {run} does not exist")
    if run is not None and (run / "metrics.jsonl").is_file():
        inp.pretrain_run = inp.pretrain_run or str(run)
    elif run is not None:
        runs = sorted((run / "runs").glob("*/metrics.jsonl"))
        inp.pretrain_run = inp.pretrain_run or (str(runs[0].parent) if runs else None)
        if inp.store is None and (run / "world" / "store.json").is_file():
            inp.store = str(run / "world")
        if not inp.fewshot:
            inp.fewshot = [str(p) for p in sorted((run / "fewshot").rglob("results.parquet"))]
        if inp.tsne is None and (run / "tsne" / "tsne.parquet").is_file():
            inp.tsne = str(run / "tsne" / "tsne.parquet")
        table = run / "embeddings" / f"{cfg.main_source}.parquet"
        if inp.search_table is None and table.is_file():
            inp.search_table = str(table)
    if (
        inp.store is None
        and inp.pretrain_run
        and (Path(inp.pretrain_run) / "config.yaml").is_file()
    ):
        store = (yaml.safe_load((Path(inp.pretrain_run) / "config.yaml").read_text()) or {}).get(
            "store"
        )
        inp.store = store or None
    inp.fewshot = [
        str(Path(p) / "results.parquet") if Path(p).is_dir() else str(p) for p in inp.fewshot
    ]
    return inp


def _figure(rel: str, caption: str) -> str:
    return (
        f"<figure><img src='{html.escape(rel)}' alt='{html.escape(caption)}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _section(sid: str, title: str, body: str) -> tuple[str, str]:
    return sid, f"<section id='{sid}'><h2>{html.escape(title)}</h2>\n{body}\n</section>"


def _note(text: str) -> str:
    return f"<p class='note'>{html.escape(text)}</p>"


def _fewshot_section(inp: ReportInputs, cfg: ReportConfig, fig_dir: Path) -> str:
    if not inp.fewshot:
        return _note("No few-shot results found (run `eoclip fewshot`).")
    # only the columns the summary needs (not head parameters, seeds, thresholds ...)
    results = pd.concat(
        [read_results(p, columns=SUMMARY_INPUTS) for p in inp.fewshot], ignore_index=True
    )
    # The same source evaluated in two result folders (e.g. a comparison run with an imported
    # product next to the demo's own): keep one copy of each repeat.
    if "target" in results.columns:  # continuous targets get their own figure (R2)
        continuous = results[results["target"] == "continuous"]
        results = results[results["target"] != "continuous"]
    else:
        continuous = results.iloc[:0]
    twin = _r2_figure(continuous, cfg, fig_dir)
    if results.empty:
        return twin or _note("No few-shot results found (run `eoclip fewshot`).")
    results = results.drop_duplicates(REPEAT_KEY, keep="first")
    summary = summarize(results)
    robustness = subsets_html(summary)
    # Fig. 4 and the table keep the paper's feature sets (each modality and concat)
    f = summary["features"].astype(str)
    summary = summary[~(f.str.contains("+", regex=False) | f.str.endswith("@test"))]
    sources = [cfg.main_source, *[b for b in cfg.baselines if b != cfg.main_source]]
    sources += sorted(set(summary["source"]) - set(sources))
    table = summary_table(summary, sources)
    figures.fig_accuracy(
        summary,
        fig_dir / "fig4_accuracy.png",
        cfg.main_source,
        [s for s in sources if s != cfg.main_source],
    )
    repeats = int(results["repeat"].nunique())
    return (
        "<p>Binary tasks (label above the AOI's train median), a head fitted on a uniform random "
        f"sample of each AOI's train split, accuracy on its whole test split; {repeats} repeats. "
        "Accuracy is the mean over AOIs; the 95 % columns give the smallest number of labels "
        "whose mean accuracy reaches 95 % of the accuracy with all train labels.</p>"
        + (table_html(table, cfg.main_source) if not table.empty else _note("no concat results"))
        + _figure(
            "figures/fig4_accuracy.png",
            "Fig. 4: accuracy vs labelled chips per task (rows) and AOI (columns); solid: "
            f"{cfg.main_source} feature sets, dashed: baselines (concat); band: +-1 std; "
            "dot: 95 % of the full-data accuracy.",
        )
        + per_aoi_html(summary)
        + "<p>The paper's headline (95 % of the full-data accuracy with at most 500 labels "
        "always, with at most 250 mostly): share of AOI x task cells per source and feature "
        "set whose 95 % point is at most 250 and 500 labels.</p>"
        + headline(summary).to_html(index=False, float_format=lambda v: f"{v:.2f}", border=0)
        + robustness
        + twin
    )


def _r2_figure(continuous: pd.DataFrame, cfg: ReportConfig, fig_dir: Path) -> str:
    """Fig. 4's twin for continuous targets (R2 of the label mean), or "" without them."""
    if continuous.empty:
        return ""
    continuous = continuous.drop_duplicates(REPEAT_KEY, keep="first")
    summary = summarize(continuous, metric="r2")
    sources = sorted(set(summary["source"]) - {cfg.main_source})
    figures.fig_accuracy(summary, fig_dir / "fig4_r2.png", cfg.main_source, sources, "r2")
    return _figure(
        "figures/fig4_r2.png",
        "Fig. 4 for continuous targets: R² of a Random-Forest regressor of the label "
        "mean on the test split vs labelled chips; dot: 95 % of the full-data R².",
    )


def _read_metrics(run: str) -> list[dict]:
    path = Path(run) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _pretrain_section(inp: ReportInputs, cfg: ReportConfig, fig_dir: Path) -> str:
    if not inp.pretrain_run or not (Path(inp.pretrain_run) / "metrics.jsonl").is_file():
        return _note("No pretraining metrics found (metrics.jsonl of `eoclip pretrain`).")
    records = _read_metrics(inp.pretrain_run)
    best = figures.best_epoch(records)
    if best is None:
        return _note(f"{inp.pretrain_run}/metrics.jsonl holds no epoch record yet.")
    figures.fig_retrieval(records, fig_dir / "retrieval.png")
    rows = [
        "<table><tr><th class='l'>query → gallery</th><th>recall@1</th><th>chance@1</th>"
        "<th>recall@5</th><th>chance@5</th><th>chips</th></tr>"
    ]
    for pair, r in (best.get("recall") or {}).items():
        rows.append(
            f"<tr><td class='l'>{html.escape(pair.replace('->', ' → '))}</td>"
            f"<td>{r['r@1']:.3f}</td><td>{r['chance@1']:.4f}</td><td>{r['r@5']:.3f}</td>"
            f"<td>{r['chance@5']:.4f}</td><td>{r['n']:.0f}</td></tr>"
        )
    val = best.get("val_loss")
    line = (
        (
            f"<p>Best epoch {best['epoch']} (step {best['step']}): validation CLIP loss "
            f"{val:.4f} against {best.get('val_chance_loss', float('nan')):.4f} for an untrained "
            "model (log of the batch size).</p>"
        )
        if val is not None
        else ""
    )
    return (
        line
        + _figure(
            "figures/retrieval.png",
            "Pretraining: CLIP loss per epoch; cross-modal retrieval on the "
            "validation split (black ticks: chance).",
        )
        + "\n".join(rows)
        + "</table>"
    )


def _tsne_section(inp: ReportInputs, cfg: ReportConfig, fig_dir: Path) -> str:
    if not inp.tsne:
        return _note("No t-SNE map found (run `eoclip tsne`).")
    from eoclip.tsne import plot_tsne

    sources = sorted(pq.read_table(inp.tsne, columns=["source"])["source"].unique().to_pylist())
    source = cfg.main_source if cfg.main_source in sources else sources[0]
    # one source's rows, and only what the maps draw
    names = pq.read_schema(inp.tsne).names
    cols = ["source", "aoi", "modality", "x", "y", *[c for c in names if c.startswith("label_")]]
    df = pq.read_table(inp.tsne, columns=cols, filters=[("source", "==", source)]).to_pandas()
    parts = []
    for col in [c for c in df.columns if str(c).startswith("label_")]:
        task = col.removeprefix("label_")
        if df[col].notna().any():
            plot_tsne(df, task, fig_dir / f"fig5_tsne_{task}.png", source=source)
            parts.append(
                _figure(
                    f"figures/fig5_tsne_{task}.png",
                    f"Fig. 5: t-SNE of the {source} embeddings per AOI and modality, "
                    f"coloured by log10 of the {task} label.",
                )
            )
    return "\n".join(parts) or _note("the t-SNE table has no labels to colour by")


def _search_section(inp: ReportInputs, cfg: ReportConfig, fig_dir: Path) -> str:
    if not inp.search_table or not inp.store:
        return _note(
            "No EmbeddingTable and ChipStore for the neighbour strips (give a "
            "search table and a store)."
        )
    from eoclip.report.neighbours import fig_neighbours

    try:
        store = ChipStore.open(inp.store)
        drawn = fig_neighbours(
            store, inp.search_table, fig_dir, cfg.n_search_queries, cfg.n_neighbours, cfg.seed
        )
    except (StoreError, ValueError, KeyError) as err:
        return _note(f"cannot draw the neighbour strips: {err}")
    parts = [
        f"<p>Nearest chips by cosine similarity of the embeddings in "
        f"<code>{html.escape(inp.search_table)}</code> (<code>eoclip search</code>): per "
        "row one search, within a modality or across modalities (query modality → searched "
        "modality); the query chip itself is left out; numbers are cosine distances.</p>"
    ]
    for path, chip in drawn:
        parts.append(_figure(f"figures/{Path(path).name}", f"Neighbours of {chip}."))
    return "\n".join(parts)


FIG6_MAP = "s1grdm"  # the paper places its example chips on the s1grdm t-SNE map


def _fig6(store: ChipStore, inp: ReportInputs, cfg: ReportConfig, path: Path) -> str:
    """Draw Fig. 6 (on the s1grdm t-SNE map when there is one) and return its caption."""
    chips = "s2rgbm as RGB of one month, s1grdm VV of one month in dB, gunw one coherence pair."
    if inp.tsne:
        from eoclip.report.examples import fig_tsne_examples

        cols = ["source", "aoi", "modality", "chip_id", "x", "y"]
        df = pq.read_table(
            inp.tsne, columns=cols, filters=[("modality", "==", FIG6_MAP)]
        ).to_pandas()
        sources = sorted(df["source"].unique())
        source = cfg.main_source if cfg.main_source in sources else (sources or [None])[0]
        try:
            fig_tsne_examples(
                store, df[df["source"] == source], path, FIG6_MAP, cfg.n_examples, cfg.seed
            )
            return (
                f"Fig. 6: example chips located (numbered) on the {FIG6_MAP} t-SNE map of "
                f"the {source} embeddings, as in the paper; " + chips
            )
        except ValueError as err:
            figures.fig_examples(store, path, cfg.n_examples, cfg.seed)
            return f"Fig. 6: example chips (not located on a t-SNE map: {err}); " + chips
    figures.fig_examples(store, path, cfg.n_examples, cfg.seed)
    return "Fig. 6: example chips (run `eoclip tsne` to locate them on the t-SNE map); " + chips


def _data_section(inp: ReportInputs, cfg: ReportConfig, fig_dir: Path) -> str:
    if not inp.store:
        return _note("No ChipStore found (give a store).")
    try:
        store = ChipStore.open(inp.store)
    except StoreError as err:
        return _note(f"cannot open the store: {err}")
    figures.fig_aois(store.index, fig_dir / "fig1_aois.png")
    figures.fig_label_quantiles(store.index, fig_dir / "fig2_labels.png")
    fig6 = _fig6(store, inp, cfg, fig_dir / "fig6_examples.png")
    counts = store.index.groupby(["aoi", "split"]).size().unstack(fill_value=0)
    return (
        f"<p>{len(store)} chips of {store.chip_px} px, modalities "
        f"{', '.join(store.modalities)}.</p>"
        + counts.to_html(border=0)
        + _figure(
            "figures/fig1_aois.png",
            "Fig. 1: AOIs and the chips coloured by split "
            "(train yellow, validation blue, test pink).",
        )
        + _figure("figures/fig2_labels.png", "Fig. 2: label quantiles per task and AOI.")
        + _figure("figures/fig6_examples.png", fig6)
    )


SECTIONS = (  # (id, title, drawing function) in page order
    ("fewshot", "Few-shot accuracy vs number of labels", _fewshot_section),
    ("pretraining", "Pretraining: CLIP loss and cross-modal retrieval", _pretrain_section),
    ("tsne", "Embedding space (t-SNE)", _tsne_section),
    ("search", "Similarity search: query chips and their nearest neighbours", _search_section),
    ("data", "Data: AOIs, splits, labels and example chips", _data_section),
)
SLOWEST_FIRST = ("fewshot", "search", "data", "tsne", "pretraining")  # the demo's order


def _draw_sections(inp: ReportInputs, cfg: ReportConfig, fig_dir: Path) -> dict[str, str]:
    """Every section's HTML body, drawn in `cfg.workers` processes (spawned: the caller may
    hold threads, e.g. torch's). The slowest sections start first."""
    draw = {sid: fn for sid, _, fn in SECTIONS}
    workers = min(max(1, int(cfg.workers)), len(SECTIONS))
    if workers == 1:
        return {sid: fn(inp, cfg, fig_dir) for sid, fn in draw.items()}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = {sid: pool.submit(draw[sid], inp, cfg, fig_dir) for sid in SLOWEST_FIRST}
        return {sid: fut.result() for sid, fut in futures.items()}


def build_report(cfg: ReportConfig) -> Path:
    """Draw every figure that the inputs allow and write `<out>/index.html`.

    Returns:
        Path of index.html.

    Raises:
        FileNotFoundError: `cfg.run` is given but does not exist.
    """
    inp = find_inputs(cfg)
    out = Path(cfg.out)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    bodies = _draw_sections(inp, cfg, fig_dir)
    built = [_section(sid, title, bodies[sid]) for sid, title, _ in SECTIONS]
    nav = " ".join(f"<a href='#{sid}'>{sid}</a>" for sid, _ in built)
    rows = "".join(
        f"<tr><td class='l'>{k}</td><td class='l'><code>{html.escape(str(v))}</code></td></tr>"
        for k, v in vars(inp).items()
    )
    template = string.Template(
        resources.files("eoclip.report").joinpath("templates/report.html").read_text()
    )
    page = template.substitute(
        title=html.escape(cfg.title),
        subtitle=html.escape(
            f"generated {dt.datetime.now().isoformat(timespec='seconds')}"
            + (f" from {cfg.run}" if cfg.run else "")
        ),
        nav=nav,
        sections="\n".join(s for _, s in built),
        inputs=f"<table>{rows}</table>",
    )
    path = out / "index.html"
    write_text_atomic(path, page)
    return path
