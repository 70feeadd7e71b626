"""What ingest runs did to a store: chips written, products found, every skip with its reason.

The summary ``<store>.ingest.json`` describes the store, not only the last run: a resumed run
keeps the skips and notes of the chips committed by earlier runs and appends itself to
``runs``. It is rewritten just before every index commit, so after a kill it describes at least
the committed chips (records of chips that were not committed are dropped on resume, and those
chips are read again).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from eoclip.errors import EoclipError
from eoclip.fsio import write_text_atomic

__all__ = [
    "IngestConfigError",
    "IngestError",
    "IngestFileError",
    "IngestReport",
    "NothingIngestedError",
    "Skip",
]


class IngestError(EoclipError):
    """An ingest run cannot go on; the message names the input and the fix in library terms."""


class IngestConfigError(IngestError, ValueError):
    """An ingest setting that cannot work (months, workers, chip size, engine, config keys)."""


class IngestFileError(IngestError):
    """A source file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class NothingIngestedError(IngestError):
    """A run had chips to ingest and wrote none; ``report`` says why (also in the JSON summary)."""

    def __init__(self, message: str, report: IngestReport):
        self.report = report
        super().__init__(message)


@dataclass(slots=True)
class Skip:
    """One product (or band) of one chip that was not ingested, or a chip-independent problem.

    Attributes:
        chip_id: The chip; None for a problem that concerns no single chip (a missing product
            folder, an unreadable product of a whole area).
        product: Source product (folder) name, e.g. ``s2rgbm-2020``.
        path: The file or folder concerned (None when there is none).
        reason: Human-readable cause, e.g. ``missing file`` or ``unreadable GeoTIFF``.
    """

    chip_id: str | None
    product: str
    path: str | None
    reason: str

    def to_dict(self) -> dict:
        return {
            "chip_id": self.chip_id,
            "product": self.product,
            "path": self.path,
            "reason": self.reason,
        }

    def key(self) -> tuple:
        return (self.chip_id, self.product, self.path, self.reason)


@dataclass
class IngestReport:
    """Counters, skips, problems and notes of the ingest runs of one store.

    Attributes:
        source: ``m3leo``, ``stac`` or ``asf``.
        chips_total: Chips in the grid of this run.
        chips_written: Chips committed to the store by this run.
        chips_already_present: Chips of the grid the store already held when this run began.
        chips_in_store: Chips in the store (all runs).
        present: Per modality or label, how many chips of the store have it.
        skips: Every product of every chip that was not ingested, with its reason.
        problems: Chip-independent problems (``chip_id`` None), e.g. a missing product folder.
        noted: (chip_id, note) remarks, e.g. which Sentinel-1 orbit direction was used.
        runs: One record per run (start, seconds, chips written, workers, peak memory).
        worker_rss_mb: Peak resident memory (MB) of each process that read chips in this run.
        worker_cpu_s: CPU seconds each of those processes had used at its last task.
        worker_busy_s: Wall seconds each of those processes spent in its tasks (the run's
            seconds less this: starting the processes, planning, waiting, committing).
    """

    source: str
    chips_total: int = 0
    chips_written: int = 0
    chips_already_present: int = 0
    chips_in_store: int = 0
    present: Counter = field(default_factory=Counter)
    skips: list[Skip] = field(default_factory=list)
    problems: list[Skip] = field(default_factory=list)
    noted: list[tuple[str, str]] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)
    worker_rss_mb: dict[str, float] = field(default_factory=dict)
    worker_cpu_s: dict[str, float] = field(default_factory=dict)
    worker_busy_s: dict[str, float] = field(default_factory=dict)

    # -- recording ------------------------------------------------------------------------
    def skip(self, chip_id: str | None, product: str, path, reason: str) -> None:
        """Record a product of a chip that was not ingested (``chip_id`` None: a problem)."""
        entry = Skip(
            None if chip_id is None else str(chip_id),
            product,
            None if path is None else str(path),
            reason,
        )
        (self.problems if chip_id is None else self.skips).append(entry)

    def problem(self, product: str, path, reason: str) -> None:
        """Record a problem that concerns no single chip."""
        self.skip(None, product, path, reason)

    def note(self, chip_id: str, text: str) -> None:
        """Record a remark about a chip (counted per text in the summary)."""
        self.noted.append((str(chip_id), text))

    @property
    def notes(self) -> Counter:
        """How many chips each note was made for."""
        return Counter(text for _, text in set(self.noted))

    def split_by_chips(self, chip_ids: set[str]) -> tuple[IngestReport, IngestReport]:
        """(records of ``chip_ids``, every other record, problems included)."""
        inside, outside = (
            IngestReport(self.source),
            IngestReport(self.source, problems=list(self.problems)),
        )
        for s in self.skips:
            (inside if s.chip_id in chip_ids else outside).skips.append(s)
        for cid, text in self.noted:
            (inside if cid in chip_ids else outside).noted.append((cid, text))
        return inside, outside

    def extend(self, other: IngestReport) -> None:
        """Add another report's skips, problems and notes (e.g. of one worker task)."""
        self.skips.extend(other.skips)
        self.problems.extend(other.problems)
        self.noted.extend(other.noted)

    def skip_counts(self) -> dict[str, dict[str, int]]:
        """Skips counted per product and reason kind (the text before the first colon)."""
        out: dict[str, Counter] = {}
        for s in self.skips:
            out.setdefault(s.product, Counter())[s.reason.split(":")[0]] += 1
        return {k: dict(v) for k, v in sorted(out.items())}

    # -- runs and the JSON summary --------------------------------------------------------
    def start_run(self, **info) -> None:
        """Open this run's record (``runs[-1]``)."""
        self.runs.append(
            {
                "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "complete": False,
                **info,
            }
        )

    def merge_previous(
        self, path: str | os.PathLike, store_chip_ids: set[str], store_len: int
    ) -> None:
        """Take over an earlier summary of the same store (on resume).

        Keeps its skips and notes of chips the store holds (committed by earlier runs; other
        chips are read again by this run and reported anew) and its run records, fixing the
        chip count of an interrupted run from the store itself.
        """
        path = Path(path)
        if not path.is_file():
            return
        try:
            old = json.loads(path.read_text())
        except ValueError:
            return  # a damaged summary is replaced by this run's
        if old.get("source") != self.source:
            return
        skips = [Skip(**s) for s in old.get("skips", []) if s.get("chip_id") in store_chip_ids]
        noted = [
            (n["chip_id"], n["note"])
            for n in old.get("noted", [])
            if n.get("chip_id") in store_chip_ids
        ]
        self.skips[:0], self.noted[:0] = skips, noted
        runs = [dict(r) for r in old.get("runs", [])]
        if runs and not runs[-1].get("complete") and "chips_at_start" in runs[-1]:
            runs[-1]["chips_written"] = store_len - runs[-1]["chips_at_start"]
        self.runs[:0] = runs

    def finish_run(self, seconds: float) -> None:
        """Close this run's record."""
        if self.runs:
            self.runs[-1].update(complete=True, seconds=round(seconds, 2))

    def to_dict(self) -> dict:
        if self.runs:
            self.runs[-1].update(
                chips_written=self.chips_written,
                worker_peak_rss_mb=self.worker_rss_mb,
                worker_cpu_s=self.worker_cpu_s,
                worker_busy_s=self.worker_busy_s,
            )
        skips = _dedupe(self.skips)
        return {
            "source": self.source,
            "chips_in_store": self.chips_in_store,
            "chips_total": self.chips_total,
            "chips_written": sum(r.get("chips_written", 0) for r in self.runs)
            if self.runs
            else self.chips_written,
            "chips_written_this_run": self.chips_written,
            "chips_already_present": self.chips_already_present,
            "present": dict(sorted(self.present.items())),
            "problems": [p.to_dict() for p in _dedupe(self.problems)],
            "skip_counts": IngestReport(self.source, skips=skips).skip_counts(),
            "notes": dict(sorted(self.notes.items())),
            "runs": self.runs,
            "skips": [s.to_dict() for s in skips],
            "noted": [{"chip_id": c, "note": t} for c, t in dict.fromkeys(self.noted)],
        }

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write the summary atomically (temporary name, then rename)."""
        path = Path(path)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1))
        return path

    def summary_lines(self, max_skips: int = 10) -> list[str]:
        """A short human summary: counts, problems, then the first few skips."""
        lines = [
            f"{self.source}: {self.chips_written} chips written, "
            f"{self.chips_already_present} already in the store, {self.chips_total} in the grid"
            + (f" ({self.chips_in_store} in the store)" if self.chips_in_store else ""),
        ]
        for name, n in sorted(self.present.items()):
            lines.append(f"  {name}: {n} chips")
        for p in _dedupe(self.problems):
            lines.append(f"  problem: {p.product} ({p.path}): {p.reason}")
        for note, n in sorted(self.notes.items()):
            lines.append(f"  note: {note} x{n}")
        for product, counts in self.skip_counts().items():
            lines.append(
                f"  skipped {product}: " + ", ".join(f"{r} x{n}" for r, n in counts.items())
            )
        for s in self.skips[:max_skips]:
            lines.append(
                f"    {s.chip_id} {s.product}{'' if s.path is None else ' ' + s.path}: {s.reason}"
            )
        if len(self.skips) > max_skips:
            lines.append(f"    ... {len(self.skips) - max_skips} more in the JSON summary")
        return lines


def _dedupe(items: list[Skip]) -> list[Skip]:
    return list({s.key(): s for s in items}.values())
