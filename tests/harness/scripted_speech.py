"""Inputs for the content-analysis tests: scripted transcripts and job options."""

from __future__ import annotations

from analysis.speakers import Turn
from reelfarm.options import ProcessOptions
from reelfarm.transcript import Word


def layout(sentences, start=0.0, wps=2.5, pause=0.6, speakers=None):
    """Words at `wps` (each 0.32 s long), `pause` seconds between sentences.

    Returns (words, sentence spans, turns, end time); turns only with `speakers` (one
    speaker number per sentence)."""
    words, spans, turns = [], [], []
    t = start
    for k, sentence in enumerate(sentences):
        first = t
        for text in sentence.split():
            words.append(Word(text, round(t, 3), round(t + 0.32, 3)))
            t += 1 / wps
        last = words[-1].end
        spans.append((first, last))
        if speakers is not None:
            turns.append(Turn(first, last, speakers[k]))
        t = last + pause
    return words, spans, turns, t


def opts(fields: dict | ProcessOptions | None = None, **changes) -> ProcessOptions:
    """ProcessOptions from API-style fields (validated as the API would), plus `changes`."""
    if isinstance(fields, ProcessOptions):
        fields = fields.model_dump(exclude_unset=True)
    return ProcessOptions.model_validate({**(fields or {}), **changes})
