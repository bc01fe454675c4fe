"""Word times fitted to the sound: Whisper's word timestamps, moved onto the speech.

Whisper times words from its attention, about as finely as its 20 ms steps allow but
often late on a word after a pause and long on one before it (measured here on espeak-ng:
a word after 1.1 s of silence timed 0.1-0.3 s after its onset, the word before the
silence stretched 0.8 s into it). Captions and clip edges want the sound itself, so each
run of words between two silences (a voice-activity segment) is fitted to where that
segment is loud: its first word starts at the sound's onset, its last ends at the
sound's offset, and no word reaches outside. Inside a run, Whisper's order and spacing
are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reelfarm.transcript import Word
from render_nodes.speech.audio import pcm_to_float

FRAME_SECONDS = 0.01
# A frame is sound when it is within this of the segment's loudest frame...
SOUND_BELOW_PEAK_DB = 35.0
# ...and this far above the quietest tenth of the segment and its surroundings.
SOUND_ABOVE_FLOOR_DB = 12.0
# The onset and offset are looked for this far outside the voice-activity segment too.
SEARCH_SECONDS = 0.25
# A first word more than this from the onset is taken to be a different word (left alone).
MAX_SHIFT_SECONDS = 0.6
MIN_WORD_SECONDS = 0.05


def sound_edges(pcm: bytes, start: float, end: float, sample_rate: int = 16000) -> tuple[float, float] | None:
    """(onset, offset) in seconds of the sound in [start - SEARCH, end + SEARCH] of `pcm`."""
    a = max(0, int((start - SEARCH_SECONDS) * sample_rate))
    b = int((end + SEARCH_SECONDS) * sample_rate)
    x = pcm_to_float(pcm[a * 2 : b * 2]).astype(np.float64)
    hop = int(FRAME_SECONDS * sample_rate)
    frames = x.size // hop
    if frames < 3:
        return None
    energy = 10 * np.log10((x[: frames * hop].reshape(frames, hop) ** 2).mean(axis=1) + 1e-10)
    threshold = max(energy.max() - SOUND_BELOW_PEAK_DB, np.percentile(energy, 10) + SOUND_ABOVE_FLOOR_DB)
    loud = np.nonzero(energy >= threshold)[0]
    if not len(loud):
        return None
    return float((a + loud[0] * hop) / sample_rate), float((a + (loud[-1] + 1) * hop) / sample_rate)


def fit_to_speech(words: Sequence[Word], pcm: bytes, speech: Sequence[tuple[float, float]], *,
                  offset: float = 0.0, sample_rate: int = 16000) -> list[Word]:  # fmt: skip
    """`words` (times offset + seconds into `pcm`) fitted to the sound of each of the
    `speech` segments (seconds into `pcm`) they fall in."""
    out = list(words)
    if not out or not speech:
        return out
    segments = sorted(speech)
    mids = np.asarray([(w.start + w.end) / 2 - offset for w in out])
    starts = np.asarray([a for a, _ in segments])
    owner = np.clip(np.searchsorted(starts, mids, "right") - 1, 0, len(segments) - 1)
    for k, (a, b) in enumerate(segments):
        members = np.nonzero(owner == k)[0]
        if not len(members):
            continue
        edges = sound_edges(pcm, a, b, sample_rate)
        if edges is None:
            continue
        onset, offset_end = edges[0] + offset, edges[1] + offset
        first, last = int(members[0]), int(members[-1])
        w = out[first]
        if abs(w.start - onset) <= MAX_SHIFT_SECONDS or w.start < onset:
            out[first] = Word(w.text, round(onset, 3), round(max(w.end, onset + MIN_WORD_SECONDS), 3), w.confidence)
        for i in members:
            w = out[int(i)]
            start = max(w.start, onset)
            end = min(max(w.end, start + MIN_WORD_SECONDS), max(offset_end, start + MIN_WORD_SECONDS))
            out[int(i)] = Word(w.text, round(start, 3), round(end, 3), w.confidence)
        w = out[last]
        if w.end > offset_end or offset_end - w.end <= MAX_SHIFT_SECONDS:
            out[last] = Word(w.text, w.start, round(max(offset_end, w.start + MIN_WORD_SECONDS), 3), w.confidence)
    # Still in order: a word never starts before the one before it, nor ends before it starts.
    for i in range(1, len(out)):
        prev, w = out[i - 1], out[i]
        if w.start < prev.start or w.end < w.start:
            start = max(w.start, prev.start)
            out[i] = Word(w.text, start, max(w.end, start), w.confidence)
    return out
