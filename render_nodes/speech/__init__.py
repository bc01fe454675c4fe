"""Offline speech analysis for picking clip moments.

- :mod:`.audio`: mono PCM16 from any source via ffmpeg; a loudness profile.
- :mod:`.vad`: speech segments (WebRTC VAD) and silence-aligned chunk plans.
- :mod:`.transcribe`: timed words (reelfarm.transcript.Word) from Whisper (faster-whisper) or
  PocketSphinx; :mod:`.whisper_models`: the shipped models, checked by SHA-256;
  :mod:`.engines`: which engine and model a task gets on this node.
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
)
from render_nodes.speech.vad import plan_chunks, speech_segments

__all__ = [
    "FasterWhisperTranscriber",
    "PocketSphinxTranscriber",
    "Transcriber",
    "TranscriberUnavailable",
    "decode_pcm16",
    "loudness_profile",
    "plan_chunks",
    "speaker_features",
    "speech_segments",
]
