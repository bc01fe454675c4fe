"""From the analysis tasks' results to the clips a job renders.

The scheduler runs this (in a worker thread: an LLM call may take seconds) once every
transcribe and analyze task of a job has completed: merge the chunks in order, find the
speakers, pick the moments (analysis/moments.py), describe them
(analysis/clip_metadata.py, optionally an LLM: analysis/llm.py), and for interviews
work out which turns to splice out. Pure over its inputs, so testable without a node.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from analysis import clip_metadata, moments
from analysis.llm import LlmClient, LlmConfig
from analysis.speakers import cluster_speakers
from reelfarm import transcript
from reelfarm.options import ProcessOptions
from reelfarm.transcript import Word

log = logging.getLogger(__name__)


@dataclass
class ChosenClip:
    index: int
    start: float
    end: float
    score: float | None
    transcript: str
    metadata: dict
    words: list[Word]  # the clip's captions, source seconds
    keep: list[tuple[float, float]] = field(default_factory=list)  # empty: the whole range


def merge_analysis(duration: float, transcribed: list[dict], analyzed: list[dict]) -> moments.SourceAnalysis:
    """One SourceAnalysis from the task results (transcribe chunks in source order)."""
    words, speech, loudness, features = [], [], [], []
    step = moments.SourceAnalysis.__dataclass_fields__["loudness_step"].default
    for chunk in sorted(transcribed, key=lambda r: r["start"]):
        words += transcript.from_rows(chunk.get("words", []))
        speech += [(a, b) for a, b in chunk.get("speech", [])]
        step = chunk.get("loudness_step", step)
        # Chunks tile the source from its trim start: pad the profile up to each chunk.
        first_slot = round(chunk["start"] / step)
        if len(loudness) < first_slot:
            loudness += [-90.0] * (first_slot - len(loudness))
        loudness += chunk.get("loudness", [])
        features += [(a, b, vec) for a, b, vec in chunk.get("speaker_features", [])]
    turns = cluster_speakers(features) if features else []
    faces = [(t, float(v)) for result in analyzed for t, v in result.get("faces", [])]
    # The source's language: the one most of its speech was transcribed in.
    spoken: dict[str, float] = {}
    for chunk in transcribed:
        if chunk.get("language"):
            spoken[chunk["language"]] = spoken.get(chunk["language"], 0.0) + float(chunk.get("speech_seconds") or 0.0)
    language = max(sorted(spoken), key=spoken.get) if spoken else None
    return moments.SourceAnalysis(duration=duration, words=words, speech=speech, loudness=loudness,
                                  loudness_step=step, faces=sorted(faces), turns=turns, language=language)  # fmt: skip


def interviewer(analysis: moments.SourceAnalysis) -> int | None:
    """The speaker who asks: of two, the one whose turns more often open like a question
    (moments.is_question; ties: the one who speaks less). None unless there are two speakers."""
    speakers = sorted({t.speaker for t in analysis.turns})
    if len(speakers) != 2:
        return None
    asked = dict.fromkeys(speakers, 0)
    talked = dict.fromkeys(speakers, 0.0)
    for turn in analysis.turns:
        talked[turn.speaker] += turn.end - turn.start
        opening = [moments.normalize_token(w.text) for w in analysis.words if turn.start - 0.3 <= w.start < turn.end][:8]
        if opening and moments.is_question(opening):
            asked[turn.speaker] += 1
    return max(speakers, key=lambda s: (asked[s] / max(1, sum(1 for t in analysis.turns if t.speaker == s)),
                                        -talked[s]))  # fmt: skip


def kept_ranges(analysis: moments.SourceAnalysis, start: float, end: float, drop: int) -> list[tuple[float, float]]:
    """[start, end] without the turns of speaker `drop` (joined where nothing is left out)."""
    cuts = sorted((max(t.start, start), min(t.end, end)) for t in analysis.turns
                  if t.speaker == drop and t.end > start and t.start < end)  # fmt: skip
    keep, cursor = [], start
    for a, b in cuts:
        if a > cursor:
            keep.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < end:
        keep.append((cursor, end))
    return keep


def _words_between(analysis: moments.SourceAnalysis, start: float, end: float,
                   keep: list[tuple[float, float]] | None = None) -> list[Word]:  # fmt: skip
    inside = [w for w in analysis.words if w.end > start and w.start < end]
    if keep:
        inside = [w for w in inside if any(a <= (w.start + w.end) / 2 < b for a, b in keep)]
    return inside


def uniform_moments(duration: float, options: ProcessOptions) -> list[moments.Moment]:
    """numClips windows of the clip length range's middle length spread evenly over the
    (trimmed) source, never more than fit without overlap: a source with nothing said."""
    start, end = options.source_window(duration)
    span = end - start
    low, high = options.length_range()
    length = min((low + high) / 2, span)
    count = max(1, min(options.numClips, int(span // length) if length else 1))
    gap = (span - count * length) / count
    spread = []
    for i in range(count):
        clip_start = start + gap / 2 + i * (length + gap)
        spread.append(moments.Moment(start=round(clip_start, 3), end=round(clip_start + length, 3), score=None,
                                     transcript="", signals={}))  # fmt: skip
    return spread


def choose_clips(analysis: moments.SourceAnalysis, options: ProcessOptions,
                 llm: LlmConfig | None = None) -> list[ChosenClip]:  # fmt: skip
    """The clips to render, best first (clip 1 is the best moment)."""
    client = LlmClient.from_config(llm)
    if options.mode == "none":
        start, end = options.source_window(analysis.duration)
        picked = [moments.Moment(start=start, end=end, score=None, transcript="", signals={})]
    elif not analysis.words:
        # Nothing was said (or no audio): evenly spread clips.
        picked = uniform_moments(analysis.duration, options)
    else:
        rescore = (lambda found: client.rescore(found, analysis, options)) if client else None
        picked = moments.select_moments(analysis, options, rescore=rescore)

    drop = None
    if options.removeAiVoice and options.mode != "none":
        genre = options.genre
        if genre == "auto" and analysis.words:
            genre = moments.infer_genre(analysis)
        if genre == "interview":
            drop = interviewer(analysis)

    chosen = []
    for index, moment in enumerate(picked, start=1):
        keep = kept_ranges(analysis, moment.start, moment.end, drop) if drop is not None else []
        if keep == [(moment.start, moment.end)]:
            keep = []
        words = _words_between(analysis, moment.start, moment.end, keep)
        transcript = " ".join(w.text for w in words)
        metadata: dict = {}
        if moment.score is not None:
            moment.transcript = transcript
            heard = analysis
            if keep:  # describe what the clip says, not the turns spliced out of it
                outside = [w for w in analysis.words if w.end <= moment.start or w.start >= moment.end]
                heard = dataclasses.replace(analysis, words=sorted(outside + words, key=lambda w: w.start))
            metadata = clip_metadata.clip_metadata(moment, heard, options)
            if client is not None:
                metadata = client.write_metadata(moment, metadata, options)
        chosen.append(ChosenClip(
            index=index, start=round(moment.start, 3), end=round(moment.end, 3), score=moment.score,
            transcript=transcript, metadata=metadata,
            words=words,
            keep=[(round(a, 3), round(b, 3)) for a, b in keep],
        ))  # fmt: skip
    return chosen

