"""What an ingest run did: chips written, products found, and every skip with its reason."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from eoclip.fsio import write_text_atomic

__all__ = ["IngestFileError", "IngestReport", "Skip"]


class IngestFileError(Exception):
    """A source file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class Skip:
    """One product (or band) of one chip that was not ingested.

    Attributes:
        chip_id: The chip, or None for a file that belongs to no chip.
        product: Source product (folder) name, e.g. ``s2rgbm-2020``.
        path: The file concerned (or None when the file is missing and no path was expected).
        reason: Human-readable cause, e.g. ``missing file`` or ``truncated GeoTIFF``.
    """

    chip_id: str | None
    product: str
    path: str | None
    reason: str

    def to_dict(self) -> dict:
        return {"chip_id": self.chip_id, "product": self.product, "path": self.path,
                "reason": self.reason}


@dataclass
class IngestReport:
    """Counters and the list of skips of one ingest run (written as ``ingest_summary.json``).

    Attributes:
        source: ``m3leo``, ``stac`` or ``asf``.
        chips_total: Chips in the grid.
        chips_written: Chips appended to the store in this run.
        chips_already_present: Chips skipped because the store already held them (resume).
        present: Per modality or label, how many written chips have it.
        skips: Every product of every chip that was not ingested, with its reason.
        notes: Free-form remarks (e.g. which S1 orbit direction was used).
    """

    source: str
    chips_total: int = 0
    chips_written: int = 0
    chips_already_present: int = 0
    present: Counter = field(default_factory=Counter)
    skips: list[Skip] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)

    def skip(self, chip_id: str | None, product: str, path, reason: str) -> None:
        """Record a product that was not ingested."""
        self.skips.append(Skip(chip_id, product, None if path is None else str(path), reason))

    def skip_counts(self) -> dict[str, dict[str, int]]:
        """Skips counted per product and reason kind (the text before the first colon)."""
        out: dict[str, Counter] = {}
        for s in self.skips:
            out.setdefault(s.product, Counter())[s.reason.split(":")[0]] += 1
        return {k: dict(v) for k, v in sorted(out.items())}

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "chips_total": self.chips_total,
            "chips_written": self.chips_written,
            "chips_already_present": self.chips_already_present,
            "present": dict(sorted(self.present.items())),
            "skip_counts": self.skip_counts(),
            "notes": dict(sorted(self.notes.items())),
            "skips": [s.to_dict() for s in self.skips],
        }

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write the report atomically (temporary name, then rename)."""
        path = Path(path)
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2))
        return path

    def summary_lines(self, max_skips: int = 10) -> list[str]:
        """A short human summary: counts, then the first few skips."""
        lines = [
            f"{self.source}: {self.chips_written} chips written, "
            f"{self.chips_already_present} already in the store, {self.chips_total} in the grid",
        ]
        for name, n in sorted(self.present.items()):
            lines.append(f"  {name}: {n} chips")
        for note, n in sorted(self.notes.items()):
            lines.append(f"  note: {note} x{n}")
        for product, counts in self.skip_counts().items():
            lines.append(f"  skipped {product}: " + ", ".join(f"{r} x{n}" for r, n in counts.items()))
        for s in self.skips[:max_skips]:
            lines.append(f"    {s.chip_id} {s.product} {s.path}: {s.reason}")
        if len(self.skips) > max_skips:
            lines.append(f"    ... {len(self.skips) - max_skips} more in the JSON summary")
        return lines
