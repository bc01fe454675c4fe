"""The timed word: one type from the node that hears it to the manifest that shows it.

A render node's transcriber makes them, the content analysis picks moments from them,
the captions and splices of a render draw them. Where words cross a boundary they take
one of two wire forms, both converted here and nowhere else:

- rows, `[text, start, end]`: a transcribe task's result (JSON; compact for long sources);
- caption fields, `{"text", "start_seconds", "end_seconds"}`: the proto's CaptionWord, in
  a render task's spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    text: str
    start: float  # seconds: of the source, or of a clip once remapped (render_nodes/splice.py)
    end: float
    confidence: float | None = None  # 0..1 where the recogniser gives one


def to_rows(words: Iterable[Word]) -> list[list]:
    """`[text, start, end]` per word, times in milliseconds' precision."""
    return [[w.text, round(w.start, 3), round(w.end, 3)] for w in words]


def from_rows(rows: Iterable[Sequence]) -> list[Word]:
    return [Word(text, start, end) for text, start, end in rows]


def to_caption_fields(words: Iterable[Word]) -> list[dict]:
    """CaptionWord fields (proto reelfarm.v1.CaptionWord) per word."""
    return [{"text": w.text, "start_seconds": w.start, "end_seconds": w.end} for w in words]


def from_caption_fields(fields: Iterable[dict]) -> list[Word]:
    return [Word(f["text"], float(f["start_seconds"]), float(f["end_seconds"])) for f in fields]


def overlapping(words: Iterable[Word], start: float, end: float) -> list[Word]:
    """The words that overlap [start, end)."""
    return [w for w in words if w.end > start and w.start < end]
