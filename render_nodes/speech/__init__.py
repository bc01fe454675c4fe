"""Offline speech analysis for picking clip moments.

- :mod:`.audio`: mono PCM16 from any source via ffmpeg; a loudness profile.
- :mod:`.vad`: speech segments (WebRTC VAD) and silence-aligned chunk plans.
- :mod:`.transcribe`: timed words (PocketSphinx on CPU; faster-whisper where installed).
- :mod:`.diarize`: speaker turns from MFCC statistics, clustered without any model.

Times are seconds; functions that take PCM report them relative to its start unless an
``offset`` is given.
"""

from render_nodes.speech.audio import decode_pcm16, loudness_profile
from render_nodes.speech.diarize import Turn, cluster_speakers, speaker_features
from render_nodes.speech.transcribe import (
    FasterWhisperTranscriber,
    PocketSphinxTranscriber,
    Transcriber,
    TranscriberUnavailable,
    Word,
    available_backends,
    make_transcriber,
)
from render_nodes.speech.vad import plan_chunks, speech_segments

__all__ = [
    "FasterWhisperTranscriber",
    "PocketSphinxTranscriber",
    "Transcriber",
    "TranscriberUnavailable",
    "Turn",
    "Word",
    "available_backends",
    "cluster_speakers",
    "decode_pcm16",
    "loudness_profile",
    "make_transcriber",
    "plan_chunks",
    "speaker_features",
    "speech_segments",
]
