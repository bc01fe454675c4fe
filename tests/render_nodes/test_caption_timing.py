"""Captions drawn from what the default transcriber hears line up with the speech itself:
a karaoke highlight starts when its word is heard (within 150 ms of the audio onset)."""

from __future__ import annotations

import re

import pysubs2
import pytest

from harness import speech_samples as ss
from render_nodes.captions import build_caption_track
from render_nodes.speech import whisper_models
from render_nodes.speech.transcribe import FasterWhisperTranscriber
from render_nodes.speech.vad import speech_segments

pytestmark = pytest.mark.skipif(not ss.espeak_available(), reason="espeak-ng and ffmpeg are needed (apt)")

VOICE = "en-us+f3"
SAMPLE_RATE = 16000
TOLERANCE = 0.150


def _highlight_starts(ass_text: str) -> list[tuple[str, float]]:
    """(word, second its karaoke highlight starts) for every word of every event: the
    event's start plus the \\k durations (centiseconds) of the words before it."""
    out = []
    for event in pysubs2.SSAFile.from_string(ass_text).events:
        at = event.start / 1000
        for duration, word in re.findall(r"\\k(\d+)[^}]*}([^{]*)", event.text):
            out.append((word.strip().strip(".,!?").lower(), at))
            at += int(duration) / 100
    return out


@pytest.mark.parametrize("word", ["yesterday", "mountain"])
def test_a_karaoke_highlight_starts_when_its_word_is_heard(tmp_path, word):
    lead = ss.speak("Listen to this.", VOICE)
    spoken = ss.speak(f"{word.capitalize()} was the answer.", VOICE)  # trimmed: it starts at its onset
    pcm = ss.silence(0.6) + lead + ss.silence(1.1) + spoken + ss.silence(0.6)
    onset = (len(ss.silence(0.6)) + len(lead) + len(ss.silence(1.1))) / 2 / SAMPLE_RATE
    whisper = FasterWhisperTranscriber(whisper_models.packaged("tiny.en"))
    words = whisper.transcribe(pcm, speech=speech_segments(pcm))
    heard = next(w for w in words if w.text.strip(".,!?").lower() == word)
    assert abs(heard.start - onset) <= TOLERANCE, (heard, onset)

    duration = len(pcm) / 2 / SAMPLE_RATE
    ass = build_caption_track(words, preset="karaoke", clip_start=0.0, clip_end=duration, width=720, height=1280)
    highlight = dict(_highlight_starts(ass))[word]
    assert abs(highlight - onset) <= TOLERANCE, (highlight, onset)
    # The other presets draw the same words from the same timings.
    for preset in ("beasty", "mozi"):
        drawn = pysubs2.SSAFile.from_string(build_caption_track(words, preset=preset, clip_start=0.0,
                                                                clip_end=duration, width=720, height=1280))  # fmt: skip
        assert any(word in e.plaintext.lower() and e.start / 1000 <= onset + TOLERANCE <= e.end / 1000 + TOLERANCE
                   for e in drawn.events), [(e.start, e.plaintext) for e in drawn.events]  # fmt: skip


def test_words_are_fitted_to_the_sound_around_a_pause(tmp_path):
    """Whisper alone times the word before a pause long (into the silence) and the word
    after it late; fitted (render_nodes/speech/align.py) they sit on the sound."""
    lead = ss.speak("Listen to this.", VOICE)
    spoken = ss.speak("Tomorrow was the answer.", VOICE)
    pcm = ss.silence(0.6) + lead + ss.silence(1.1) + spoken + ss.silence(0.6)
    lead_end = (len(ss.silence(0.6)) + len(lead)) / 2 / SAMPLE_RATE
    onset = lead_end + 1.1
    words = FasterWhisperTranscriber(whisper_models.packaged("tiny.en")).transcribe(
        pcm, speech=speech_segments(pcm))  # fmt: skip
    before = [w for w in words if w.start < lead_end + 0.5]
    after = [w for w in words if w.start > lead_end + 0.5]
    assert abs(before[0].start - 0.6) <= 0.05 and abs(before[-1].end - lead_end) <= 0.05, before
    assert abs(after[0].start - onset) <= 0.05, after
    assert all(not (lead_end + 0.05 < w.start < onset - 0.05) for w in words)  # nothing in the silence
