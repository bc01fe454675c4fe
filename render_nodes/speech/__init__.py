"""Offline speech analysis for picking clip moments.

- :mod:`.audio`: mono PCM16 from any source via ffmpeg; a loudness profile.
- :mod:`.vad`: speech segments (WebRTC VAD) and silence-aligned chunk plans.
- :mod:`.transcribe`: timed words (reelfarm.transcript.Word; PocketSphinx on CPU, faster-whisper
  where installed).
- :mod:`.diarize`: voice features (MFCC statistics per window of speech); analysis.speakers
  clusters them into speaker turns.

Times are seconds; functions that take PCM report them relative to its start unless an
``offset`` is given.
"""

from render_nodes.speech.audio import decode_pcm16, loudness_profile
from render_nodes.speech.diarize import speaker_features
from render_nodes.speech.transcribe import (
    FasterWhisperTranscriber,
    PocketSphinxTranscriber,
    Transcriber,
    TranscriberUnavailable,
    available_backends,
    make_transcriber,
)
from render_nodes.speech.vad import plan_chunks, speech_segments

__all__ = [
    "FasterWhisperTranscriber",
    "PocketSphinxTranscriber",
    "Transcriber",
    "TranscriberUnavailable",
    "available_backends",
    "decode_pcm16",
    "loudness_profile",
    "make_transcriber",
    "plan_chunks",
    "speaker_features",
    "speech_segments",
]
