"""Style DNA, audio: measure a clip's audio style, track its beats, and build the ffmpeg
filter chain that gives another clip that style.

The style_json fields this module owns::

    "audio_style": {"normalization_level": 0.85, "compression_ratio": 4.0,
                    "bass_boost": 20, "enhance_speech": true},
    "detected_beats": [{"timestamp_ms": 0, "confidence": 0.95, "frequency": "bass"}],
    "tempo_bpm": 120.0

Pipeline
--------
decode (one ffmpeg run)  ->  measure_audio  ->  AudioStyle  (loudness, dynamics, bass, speech)
                         ->  detect_beats   ->  BeatAnalysis (tempo, beats; none without a pulse)
AudioStyle (target, and the source's own)  ->  audio_filters  ->  an ffmpeg ``-af`` chain

Decoding. ``decode_audio`` gives mono float32 (what beat tracking and the analyses want);
``decode_audio_channels`` keeps the channel layout (mono or stereo; more channels are
downmixed to stereo by ffmpeg) because EBU R128 loudness sums the channels' energies: a
stereo clip measured as a mono downmix reads up to 3 LU lower than ffmpeg's ``loudnorm``
and ``ebur128`` measure it, and the filter chain is applied to the real layout.
``analyze_audio_file`` decodes once (48 kHz, layout kept) and does both analyses.

Every number, constant and measured accuracy is documented in docs/style-dna.md ("Audio and beats").
librosa (and with it numba) is imported inside detect_beats: importing its beat tracker
costs ~3.5 s, and its first beat tracking compiles numba code (see ``detect_beats``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from reelfarm.media import FFMPEG, MediaError, dies_with_parent

# --------------------------------------------------------------------------- constants

# normalization_level <-> integrated loudness, linear between these (clamped): -40 LUFS is a
# whisper-quiet mix, -5 LUFS is the loudest target ffmpeg's loudnorm accepts. Streaming
# platforms' -14 LUFS reads 0.743; broadcast's -23 LUFS reads 0.486.
QUIETEST_LUFS = -40.0
LOUDEST_LUFS = -5.0

# True-peak ceiling of the loudnorm step (dBTP): EBU R128 s1 recommends <= -1 dBTP for
# lossy delivery; -1.5 leaves room for AAC's overshoot.
TRUE_PEAK_TARGET_DBTP = -1.5
MAX_PRE_GAIN_DB = 40.0  # the most the loudness step's pre-gain raises or lowers a source

# The compression estimate (see measure_audio): the spread (95th - 10th percentile) of the
# gated momentary loudness, against the spread of an uncompressed reference: pink noise whose
# level jumps every 0.6 s to a uniformly random value in a 30 dB range (reads 20.6 LU). The
# exponent maps the spread quotient onto the ratio of ffmpeg's acompressor at this module's
# settings (COMPRESSOR_*) on that reference: 2:1 -> 2.0, 4:1 -> 4.0; beyond ~4:1 the spread
# reaches the floor set by the material's own fast fluctuation and the estimate saturates.
REFERENCE_LOUDNESS_SPREAD_LU = 20.6
COMPRESSION_EXPONENT = 1.42
MAX_COMPRESSION_RATIO = 20.0  # acompressor's own maximum
MIN_GATED_BLOCKS = 10  # ~1.3 s of non-silent audio before a spread means anything

# Compressor settings of the filter chain. The threshold sits COMPRESSOR_THRESHOLD_BELOW_LU
# under the source's integrated loudness, so nearly all of the programme (not its noise floor)
# is above it and the ratio acts on the whole range the measurement sees; without a measured
# source it is DEFAULT_COMPRESSOR_THRESHOLD_DBFS. With a measured source, makeup gain restores
# the level the compressor takes at the source's integrated loudness. Attack/release: fast
# enough to act on syllables and drum hits, slow enough not to distort low voices.
COMPRESSOR_THRESHOLD_BELOW_LU = 15.0
DEFAULT_COMPRESSOR_THRESHOLD_DBFS = -35.0
COMPRESSOR_ATTACK_MS = 10.0
COMPRESSOR_RELEASE_MS = 200.0
MIN_APPLIED_RATIO = 1.05  # below this the compressor would be a no-op; leave it out

# Bass balance: energy in [20, 150) Hz against [150, 8000) Hz, in dB, relative to pink noise
# (equal energy per octave: the neutral reference of loudspeaker and room calibration, and
# close to the long-term spectrum of mixed music). Analytically 10*log10(ln(150/20) / ln(8000/150))
# = -2.95 dB; -3.08 dB measured with measure_audio's Welch estimate on 30 s of numpy pink noise
# (the shipped value, so that pink noise reads 0).
BASS_BAND_HZ = (20.0, 150.0)
REST_BAND_HZ = (150.0, 8000.0)
REFERENCE_BASS_BALANCE_DB = -3.08
DB_PER_BASS_UNIT = 0.2  # bass_boost 100 = +20 dB of low band over the reference
# The chain's shelf (ffmpeg `bass`, 150 Hz, Q 0.5) moves the measured balance of pink noise by
# 0.86 dB per dB of gain, so it is given gain / 0.86. Applied gain is clamped to +-12 dB.
BASS_SHELF_HZ = 150.0
BASS_SHELF_Q = 0.5
BASS_SHELF_EFFICIENCY = 0.86
MAX_BASS_GAIN_DB = 12.0

# Speech: Silero VAD (the ONNX model faster-whisper ships) on 32 ms chunks at 16 kHz, after
# normalising the clip to SPEECH_ANALYSIS_LUFS so its decision does not depend on the level.
# speech_share = speech chunks / active chunks (RMS >= ACTIVE_CHUNK_DBFS after normalising).
# webrtcvad was measured and not used: at every aggressiveness it called 96-100 % of a drum
# loop, a steady tone and pink noise "speech". Silero called 0 % of those and ~100 % of speech.
SPEECH_ANALYSIS_LUFS = -23.0
ACTIVE_CHUNK_DBFS = -50.0
SPEECH_PROBABILITY = 0.5
SPEECH_SHARE_THRESHOLD = 0.5  # enhance_speech when at least half the active audio is speech
VAD_SAMPLE_RATE = 16000
_VAD_CHUNK = 512
_VAD_CONTEXT = 64

# Beats: librosa's onset envelope and dynamic-programming beat tracker at 22.05 kHz.
BEAT_SAMPLE_RATE = 22050
BEAT_HOP = 512  # 23.2 ms frames
BEAT_N_FFT = 2048
MIN_BEAT_SECONDS = 4.0
MIN_BEATS = 4
# The no-music rule: the onset envelope's normalised autocorrelation at the beat period
# (best lag within +-5 %) must reach max(MIN_PULSE_CLARITY, PULSE_NOISE_SIGMAS / sqrt(frames)).
# Synthetic drum loops read 0.63-0.94 (4-24 s); speech 0.01; random noise bursts stayed under
# 4.9 / sqrt(frames) (0.36 at 4 s, 0.125 at 24 s: 40 seeds per length), hence the second term.
MIN_PULSE_CLARITY = 0.2
PULSE_NOISE_SIGMAS = 6.0
BASS_BEAT_HZ = 250.0
HIGH_BEAT_HZ = 4000.0

Frequency = Literal["bass", "mid", "high"]

_DECODE_TIMEOUT_SECONDS: float | None = None  # a long source takes as long as it takes
_NO_STREAM_MARKER = "does not contain any stream"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AudioStyle:
    """A clip's audio style. ``as_dict()`` is the style_json "audio_style" object; the other
    attributes are the raw measurements behind it, for this process (not part of the API)."""

    normalization_level: float  # 0..1, see QUIETEST_LUFS / LOUDEST_LUFS
    compression_ratio: float  # >= 1.0, 1 decimal; reliable only up to ~4:1
    bass_boost: int  # -100..100, 0 = the pink-noise balance
    enhance_speech: bool
    integrated_lufs: float | None = None  # None: silent (nothing above the -70 LUFS gate)
    loudness_spread_lu: float | None = None  # None: too little non-silent audio to tell
    bass_balance_db: float | None = None  # raw [20,150) vs [150,8000) Hz balance, dB
    speech_share: float = 0.0  # 0..1 of active audio

    def as_dict(self) -> dict[str, Any]:
        return {
            "normalization_level": self.normalization_level,
            "compression_ratio": self.compression_ratio,
            "bass_boost": self.bass_boost,
            "enhance_speech": self.enhance_speech,
        }

    @classmethod
    def silent(cls) -> AudioStyle:
        """What silence, or no audio at all, measures as."""
        return cls(normalization_level=0.0, compression_ratio=1.0, bass_boost=0, enhance_speech=False)


@dataclass(frozen=True)
class BeatAnalysis:
    """Tempo and beats; ``tempo_bpm`` None and no beats where there is no clear pulse."""

    tempo_bpm: float | None
    beats: list[dict[str, Any]] = field(default_factory=list)
    pulse_clarity: float = 0.0  # the no-music criterion's value, 0..1 (internal)

    def as_dict(self) -> dict[str, Any]:
        """The style_json "tempo_bpm" and "detected_beats" fields."""
        return {"tempo_bpm": self.tempo_bpm, "detected_beats": [dict(b) for b in self.beats]}


# --------------------------------------------------------------------------- decoding


def decode_audio(path: str | os.PathLike[str], sample_rate: int = 22050, *, start: float | None = None,
                 duration: float | None = None) -> np.ndarray:
    """Mono float32 samples of ``path``'s first audio stream at ``sample_rate``, from one ffmpeg run.

    A file without an audio stream (a silent video) gives an empty array; a missing or
    undecodable file raises MediaError. ``start``/``duration`` are seconds (``-ss`` before
    ``-i``: a sample-accurate seek).
    """
    raw = _run_decoder(path, start, duration,
                       ["-ac", "1", "-ar", str(int(sample_rate)), "-f", "f32le", "-c:a", "pcm_f32le", "pipe:1"])
    usable = len(raw) - len(raw) % 4
    return np.frombuffer(raw[:usable], dtype="<f4").astype(np.float32, copy=True)


def decode_audio_channels(path: str | os.PathLike[str], sample_rate: int = 48000, *, start: float | None = None,
                          duration: float | None = None) -> np.ndarray:
    """float32 samples shaped (frames, channels), the source's layout kept: mono stays mono,
    stereo stereo, more channels are downmixed to stereo by ffmpeg. For loudness (EBU R128).

    One ffmpeg run writing WAV to a pipe, whose header says how many channels came out.
    No audio stream: shape (0, 1). Missing or undecodable file: MediaError.
    """
    raw = _run_decoder(path, start, duration,
                       ["-af", "aformat=channel_layouts=mono|stereo", "-ar", str(int(sample_rate)),
                        "-c:a", "pcm_f32le", "-fflags", "+bitexact", "-f", "wav", "pipe:1"])
    if not raw:
        return np.zeros((0, 1), dtype=np.float32)
    channels, payload = _parse_wav_f32(raw)
    usable = len(payload) - len(payload) % (4 * channels)
    return np.frombuffer(payload[:usable], dtype="<f4").reshape(-1, channels).astype(np.float32, copy=True)


def _run_decoder(path: str | os.PathLike[str], start: float | None, duration: float | None,
                 output_args: list[str]) -> bytes:
    source = os.fspath(path)
    if "://" not in source and not os.path.exists(source):
        raise MediaError(f"cannot decode audio: no such file: {source}")
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error"]
    if start is not None:
        cmd += ["-ss", f"{_seconds(start, 'start'):.6f}"]
    if duration is not None:
        if _seconds(duration, "duration") <= 0:
            raise ValueError(f"duration must be > 0, not {duration!r}")
        cmd += ["-t", f"{duration:.6f}"]
    # "0:a:0?": the first audio stream if there is one; with none, ffmpeg has no output
    # stream and says so, which is how a silent video is told from a broken file here.
    cmd += ["-i", source, "-map", "0:a:0?", "-vn", "-sn", "-dn", *output_args]
    try:
        proc = subprocess.run(dies_with_parent(cmd), stdin=subprocess.DEVNULL, capture_output=True, check=False,
                              timeout=_DECODE_TIMEOUT_SECONDS)
    except FileNotFoundError as exc:
        raise MediaError(f"{FFMPEG} is not installed") from exc
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace")
        if _NO_STREAM_MARKER in stderr:
            return b""
        reason = next((ln.strip() for ln in stderr.splitlines() if ln.strip()), f"exit code {proc.returncode}")
        raise MediaError(f"cannot decode audio from {source}: {reason}")
    return proc.stdout


def _seconds(value: float, name: str) -> float:
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
    return seconds


def _parse_wav_f32(raw: bytes) -> tuple[int, bytes]:
    """(channels, sample bytes) of the WAV ffmpeg wrote to a pipe. Its RIFF and data sizes are
    placeholders there (it cannot seek back), so the data chunk runs to the end of the stream."""
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise MediaError("cannot decode audio: ffmpeg did not write a WAV stream")
    pos, channels = 12, 0
    while pos + 8 <= len(raw):
        chunk_id, size = raw[pos : pos + 4], int.from_bytes(raw[pos + 4 : pos + 8], "little")
        body = pos + 8
        if chunk_id == b"fmt ":
            channels = int.from_bytes(raw[body + 2 : body + 4], "little")
        elif chunk_id == b"data":
            if channels <= 0:
                break
            end = len(raw) if size in (0, 0xFFFFFFFF) or body + size > len(raw) else body + size
            return channels, raw[body:end]
        pos = body + size + (size & 1)
    raise MediaError("cannot decode audio: unreadable WAV header from ffmpeg")


# --------------------------------------------------------------------------- measuring


def normalization_level(integrated_lufs: float | None) -> float:
    """Integrated loudness (LUFS) -> 0..1: linear from QUIETEST_LUFS (0) to LOUDEST_LUFS (1), clamped."""
    if integrated_lufs is None or not math.isfinite(integrated_lufs):
        return 0.0
    level = (integrated_lufs - QUIETEST_LUFS) / (LOUDEST_LUFS - QUIETEST_LUFS)
    return round(min(1.0, max(0.0, level)), 3)


def loudness_target(level: float) -> float:
    """The inverse of ``normalization_level``: 0..1 (clamped) -> integrated loudness in LUFS."""
    level = min(1.0, max(0.0, float(level))) if math.isfinite(float(level)) else 0.0
    return round(QUIETEST_LUFS + level * (LOUDEST_LUFS - QUIETEST_LUFS), 2)


def measure_audio(samples: np.ndarray, sample_rate: int) -> AudioStyle:
    """Measure ``samples`` (mono (n,) or (n, channels) float, channels in the source's layout
    for correct loudness) as an AudioStyle. Silence and empty input give ``AudioStyle.silent()``;
    never NaN, never an exception for well-formed input."""
    audio = _as_frames(samples)
    if audio.shape[0] == 0 or sample_rate <= 0 or not np.any(audio):
        return AudioStyle.silent()
    meter, integrated = _integrated_loudness(audio, sample_rate)
    if integrated is None:
        return AudioStyle.silent()
    mono = audio.mean(axis=1)
    spread = _loudness_spread(meter.blockwise_loudness)
    balance = _bass_balance_db(mono, sample_rate)
    speech_share = _speech_share(mono, sample_rate, integrated)
    return AudioStyle(
        normalization_level=normalization_level(integrated),
        compression_ratio=compression_ratio_from_spread(spread),
        bass_boost=bass_boost_from_balance(balance),
        enhance_speech=speech_share >= SPEECH_SHARE_THRESHOLD,
        integrated_lufs=round(integrated, 2),
        loudness_spread_lu=None if spread is None else round(spread, 2),
        bass_balance_db=None if balance is None else round(balance, 2),
        speech_share=round(speech_share, 3),
    )


def _as_frames(samples: np.ndarray) -> np.ndarray:
    audio = np.asarray(samples, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2:
        raise ValueError(f"samples must be (n,) or (n, channels), not shape {audio.shape}")
    if audio.shape[1] > 5:  # BS.1770 weights go up to 5 channels (L, R, C, Ls, Rs)
        raise ValueError(f"at most 5 channels are supported, not {audio.shape[1]}")
    # A decoder glitch must not turn every statistic into NaN.
    return np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)


def _integrated_loudness(audio: np.ndarray, sample_rate: int) -> tuple[Any, float | None]:
    """pyloudnorm's BS.1770-4 meter (agrees with ffmpeg's ebur128 within 0.1 LU); None: silent."""
    import pyloudnorm

    block_frames = math.ceil(0.4 * sample_rate) + 1
    if audio.shape[0] < block_frames:
        # Shorter than one 400 ms gating block: repeating the clip keeps its mean square, so
        # its loudness is that of the one (partial) block there is.
        audio = np.resize(audio, (block_frames, audio.shape[1]))
    meter = pyloudnorm.Meter(sample_rate)
    lufs = float(meter.integrated_loudness(audio[:, 0] if audio.shape[1] == 1 else audio))
    if not math.isfinite(lufs) or lufs < -70.0:
        return meter, None
    return meter, lufs


def _loudness_spread(blockwise_loudness: list[float]) -> float | None:
    """95th - 10th percentile of momentary (400 ms) loudness, gated like EBU Tech 3342's LRA:
    blocks under -70 LUFS, then those 20 LU under the remaining blocks' energy mean, are out."""
    blocks = np.asarray(blockwise_loudness, dtype=np.float64)
    blocks = blocks[np.isfinite(blocks) & (blocks >= -70.0)]
    if blocks.size == 0:
        return None
    mean_level = 10.0 * np.log10(np.mean(10.0 ** (blocks / 10.0)))
    blocks = blocks[blocks >= mean_level - 20.0]
    if blocks.size < MIN_GATED_BLOCKS:
        return None
    return float(np.percentile(blocks, 95) - np.percentile(blocks, 10))


def compression_ratio_from_spread(spread_lu: float | None) -> float:
    """Loudness spread (LU) -> estimated compression ratio (>= 1.0, 1 decimal). See
    REFERENCE_LOUDNESS_SPREAD_LU; reliable only up to ~4:1."""
    if spread_lu is None or not math.isfinite(spread_lu):
        return 1.0
    quotient = REFERENCE_LOUDNESS_SPREAD_LU / max(spread_lu, 0.1)
    ratio = quotient**COMPRESSION_EXPONENT if quotient > 1.0 else 1.0
    return round(min(MAX_COMPRESSION_RATIO, ratio), 1)


def _bass_balance_db(mono: np.ndarray, sample_rate: int) -> float | None:
    """Energy in BASS_BAND_HZ against REST_BAND_HZ (capped at Nyquist), dB; None when too quiet."""
    from scipy.signal import welch

    # Bins of <= ~3 Hz, so the 20-150 Hz band has dozens of them.
    segment = min(mono.size, 2 ** math.ceil(math.log2(sample_rate / 3.0)))
    if segment < 256:
        return None
    freqs, power = welch(mono, fs=sample_rate, nperseg=segment)
    low = power[(freqs >= BASS_BAND_HZ[0]) & (freqs < BASS_BAND_HZ[1])].sum()
    rest = power[(freqs >= REST_BAND_HZ[0]) & (freqs < min(REST_BAND_HZ[1], sample_rate / 2))].sum()
    tiny = 1e-20
    if low + rest <= tiny:
        return None
    return float(10.0 * np.log10(max(low, tiny) / max(rest, tiny)))


def bass_boost_from_balance(balance_db: float | None) -> int:
    """Bass balance (dB) -> bass_boost: DB_PER_BASS_UNIT dB per unit over the pink-noise
    reference, clamped to -100..100; 0 when unmeasurable."""
    if balance_db is None or not math.isfinite(balance_db):
        return 0
    units = (balance_db - REFERENCE_BASS_BALANCE_DB) / DB_PER_BASS_UNIT
    return int(max(-100, min(100, round(units))))


def _speech_share(mono: np.ndarray, sample_rate: int, integrated_lufs: float) -> float:
    """Share of active 32 ms chunks (at SPEECH_ANALYSIS_LUFS) that Silero VAD calls speech."""
    from scipy.signal import resample_poly

    gain = 10.0 ** ((SPEECH_ANALYSIS_LUFS - integrated_lufs) / 20.0)
    audio = mono * gain
    if sample_rate != VAD_SAMPLE_RATE:
        divisor = math.gcd(VAD_SAMPLE_RATE, int(sample_rate))
        audio = resample_poly(audio, VAD_SAMPLE_RATE // divisor, int(sample_rate) // divisor)
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    chunks = audio.size // _VAD_CHUNK
    if chunks == 0:
        return 0.0
    audio = audio[: chunks * _VAD_CHUNK]
    rms = np.sqrt(np.mean(audio.reshape(chunks, _VAD_CHUNK).astype(np.float64) ** 2, axis=1))
    active = rms >= 10.0 ** (ACTIVE_CHUNK_DBFS / 20.0)
    if not active.any():
        return 0.0
    probabilities = _silero_speech_probabilities(audio)
    return float(np.count_nonzero(active & (probabilities >= SPEECH_PROBABILITY)) / np.count_nonzero(active))


_vad_lock = threading.Lock()
_vad_session: Any = None


def _silero_model_path() -> Path:
    # Found without importing faster_whisper: its __init__ loads CTranslate2 and more.
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("speech detection needs faster-whisper (its Silero VAD model), which is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "silero_vad_v6.onnx"
    if not path.is_file():
        raise RuntimeError(f"faster-whisper's Silero VAD model is missing: {path}")
    return path


def _silero_speech_probabilities(audio16k: np.ndarray) -> np.ndarray:
    """Speech probability per 512-sample chunk (16 kHz), as faster-whisper runs the same model:
    each chunk with the previous chunk's last 64 samples as context, the recurrent state
    carried between batches."""
    global _vad_session
    with _vad_lock:
        if _vad_session is None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = 1
            options.log_severity_level = 4
            _vad_session = onnxruntime.InferenceSession(str(_silero_model_path()), sess_options=options,
                                                        providers=["CPUExecutionProvider"])
        session = _vad_session
    chunks = audio16k.reshape(-1, _VAD_CHUNK).astype(np.float32)
    context = np.zeros_like(chunks[:, -_VAD_CONTEXT:])
    context[1:] = chunks[:-1, -_VAD_CONTEXT:]
    batched = np.concatenate([context, chunks], axis=1)
    h = np.zeros((1, 1, 128), dtype=np.float32)
    c = np.zeros((1, 1, 128), dtype=np.float32)
    out = []
    for first in range(0, batched.shape[0], 10000):
        probs, h, c = session.run(None, {"input": batched[first : first + 10000], "h": h, "c": c})
        out.append(np.asarray(probs, dtype=np.float32).reshape(-1))
    return np.concatenate(out)


# --------------------------------------------------------------------------- beats


def detect_beats(samples: np.ndarray, sample_rate: int) -> BeatAnalysis:
    """Tempo and beats of ``samples`` (mono, or (n, channels) which is averaged) with librosa.

    Music only: without a clear pulse (speech, silence, noise, a steady tone) the result is
    tempo None and no beats, decided by the onset envelope's autocorrelation at the beat
    period (MIN_PULSE_CLARITY, PULSE_NOISE_SIGMAS). The tempo is that of a line fitted through
    the beat times (beat_track's own estimate is quantised, off by up to ~2 %).

    Cost (2 CPUs): importing librosa's beat tracker ~3.5 s (numba). The first call with an
    empty numba cache compiles librosa's kernels: ~39 s. librosa marks them cache=True, so
    numba keeps them on disk (__pycache__ next to librosa's files, or its user cache dir /
    NUMBA_CACHE_DIR where those are read-only); a new process then pays ~4-6 s on its first
    call. After that, ~0.3 s per minute of audio. Memory: the STFT, ~40 MB per minute.
    """
    import librosa

    audio = _as_frames(samples).mean(axis=1)
    if sample_rate <= 0 or audio.size < MIN_BEAT_SECONDS * sample_rate or not np.any(audio):
        return BeatAnalysis(None)
    if sample_rate != BEAT_SAMPLE_RATE:
        from scipy.signal import resample_poly

        divisor = math.gcd(BEAT_SAMPLE_RATE, int(sample_rate))
        audio = resample_poly(audio, BEAT_SAMPLE_RATE // divisor, int(sample_rate) // divisor)
    audio = audio.astype(np.float32)
    sr = BEAT_SAMPLE_RATE

    power = np.abs(librosa.stft(audio, n_fft=BEAT_N_FFT, hop_length=BEAT_HOP)) ** 2
    mel = librosa.feature.melspectrogram(S=power, sr=sr)
    # The same envelope librosa.onset.onset_strength(y=...) computes, from the STFT we keep.
    envelope = librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=sr, hop_length=BEAT_HOP,
                                            n_fft=BEAT_N_FFT)
    if envelope.size == 0 or not np.isfinite(envelope).all() or envelope.max() <= 1e-6:
        return BeatAnalysis(None)
    _, beat_frames = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, hop_length=BEAT_HOP)
    beat_frames = np.asarray(beat_frames, dtype=int)
    if beat_frames.size < MIN_BEATS:
        return BeatAnalysis(None)
    beat_times = beat_frames * BEAT_HOP / sr
    period = _fitted_beat_period(beat_times)
    if period is None or not 0.2 <= period <= 2.0:  # 30..300 bpm
        return BeatAnalysis(None)

    clarity = pulse_clarity(envelope, period * sr / BEAT_HOP)
    if clarity < min_pulse_clarity(envelope.size):
        return BeatAnalysis(None, pulse_clarity=round(clarity, 3))

    strengths = np.array([envelope[max(0, f - 1) : f + 2].max() for f in beat_frames])
    scale = max(float(np.percentile(envelope, 99.5)), 1e-9)
    bands = _beat_bands(power, sr, beat_frames)
    beats = [
        {"timestamp_ms": round(float(t) * 1000.0), "confidence": round(float(min(1.0, s / scale)), 3), "frequency": b}
        for t, s, b in zip(beat_times, strengths, bands, strict=True)
    ]
    return BeatAnalysis(round(60.0 / period, 2), beats, round(clarity, 3))


def _fitted_beat_period(beat_times: np.ndarray) -> float | None:
    """Seconds per beat from a least-squares line through (beat index, time). Indices count
    beats the tracker skipped (a gap of ~2 periods is 2 steps), so a gap does not bend the line."""
    intervals = np.diff(beat_times)
    typical = float(np.median(intervals)) if intervals.size else 0.0
    if typical <= 0:
        return None
    # Step by step, not (t - t0) / typical: a typical interval 2 % off would otherwise drift a
    # whole beat within 50 beats.
    steps = np.maximum(1.0, np.round(intervals / typical))
    index = np.concatenate([[0.0], np.cumsum(steps)])
    slope, _ = np.polyfit(index, beat_times, 1)
    return float(slope) if slope > 0 else None


def pulse_clarity(envelope: np.ndarray, period_frames: float) -> float:
    """Normalised autocorrelation (lag 0 = 1) of the mean-removed onset envelope, best value
    within +-5 % of the beat period: how strongly the onsets repeat at the beat. 0..1."""
    centred = np.asarray(envelope, dtype=np.float64) - float(np.mean(envelope))
    n = centred.size
    spectrum = np.fft.rfft(centred, 2 ** math.ceil(math.log2(2 * n)))
    acf = np.fft.irfft(np.abs(spectrum) ** 2)[:n]
    if acf[0] <= 0:
        return 0.0
    acf /= acf[0]
    low, high = math.floor(period_frames * 0.95), math.ceil(period_frames * 1.05)
    if low < 1 or high >= n:
        return 0.0
    return float(max(0.0, min(1.0, acf[low : high + 1].max())))


def min_pulse_clarity(envelope_frames: int) -> float:
    """The clarity a pulse needs over ``envelope_frames`` frames: random onsets' autocorrelation
    shrinks like 1/sqrt(frames), so short clips need a clearer pulse."""
    return max(MIN_PULSE_CLARITY, PULSE_NOISE_SIGMAS / math.sqrt(max(1, envelope_frames)))


def _beat_bands(power: np.ndarray, sample_rate: int, beat_frames: np.ndarray) -> list[Frequency]:
    """Per beat, the band (bass < 250 Hz <= mid < 4 kHz <= high) with the most spectral flux
    (summed rise in power over the band's bins) at the beat.

    librosa's onset envelope puts the rise into STFT frame n at envelope frame n + 2 (it pads
    by lag + n_fft / (2 hop) = 3 and the rise from n - 1 to n is its difference n - 1), so a
    beat at envelope frame f looks at the rises into STFT frames f - 3 .. f - 1: the one the
    envelope used, with a frame of slack either side for where the tracker put the beat.
    """
    freqs = np.fft.rfftfreq(BEAT_N_FFT, 1.0 / sample_rate)
    masks = (freqs < BASS_BEAT_HZ, (freqs >= BASS_BEAT_HZ) & (freqs < HIGH_BEAT_HZ), freqs >= HIGH_BEAT_HZ)
    names: tuple[Frequency, ...] = ("bass", "mid", "high")
    lag = BEAT_N_FFT // (2 * BEAT_HOP)
    out: list[Frequency] = []
    for frame in beat_frames:
        first_rise_into = max(1, int(frame) - lag - 1)
        last_rise_into = min(power.shape[1] - 1, int(frame) - lag + 1)
        if last_rise_into < first_rise_into:
            out.append("mid")
            continue
        # Only these few frames: the whole flux matrix of a long clip would be hundreds of MB.
        window = power[:, first_rise_into - 1 : last_rise_into + 1]
        rise = np.maximum(0.0, np.diff(window, axis=1))
        energy = [float(rise[mask].sum(axis=0).max()) for mask in masks]
        out.append(names[int(np.argmax(energy))])
    return out


# --------------------------------------------------------------------------- one file


def analyze_audio_file(path: str | os.PathLike[str], *, start: float | None = None,
                       duration: float | None = None) -> tuple[AudioStyle, BeatAnalysis]:
    """Decode ``path`` once (48 kHz, its channel layout) and measure its style and beats.
    A file without audio measures as silence."""
    audio = decode_audio_channels(path, 48000, start=start, duration=duration)
    if audio.shape[0] == 0:
        return AudioStyle.silent(), BeatAnalysis(None)
    return measure_audio(audio, 48000), detect_beats(audio.mean(axis=1), 48000)


# --------------------------------------------------------------------------- applying


def audio_filters(target: AudioStyle | Mapping[str, Any], source: AudioStyle | Mapping[str, Any] | None = None, *,
                  loudnorm_measurement: Mapping[str, Any] | None = None) -> str:
    """An ffmpeg ``-af`` chain that gives a clip the ``target`` style (an AudioStyle or the
    style_json "audio_style" dict; absent keys leave that aspect alone). ``source`` is the
    clip's own measurement (measure_audio's AudioStyle, or its "audio_style" dict): with it,
    changes are relative to what the clip already has; without it the clip is taken as neutral
    (ratio 1, bass 0) and its level as unknown. The source's loudness is its integrated_lufs,
    else loudness_target(normalization_level) (exact to 0.04 LU inside -40..-5 LUFS).

    Steps, in order (each documented in docs/style-dna.md ("Audio and beats")):
    1. enhance_speech: ``highpass`` 80 Hz, ``afftdn`` (adaptive noise reduction), presence EQ +3 dB at 3 kHz;
    2. ``acompressor`` at the target ratio, or target / source ratio when the source was measured;
    3. ``bass`` shelf by (target - source) bass_boost;
    4. loudness to loudness_target(normalization_level), ending in ``aresample=48000``
       (loudnorm outputs 192 kHz), one of:
       - ``loudnorm_measurement`` given (loudnorm_first_pass with the same target and source):
         the two-pass second pass, one fixed gain (loudnorm linear=true) when that gain keeps
         the true peak under the ceiling; otherwise as the next case, with the measured level;
       - the source's loudness known: ``volume`` by the missing gain into an ``alimiter`` at the
         ceiling, then single-pass ``loudnorm`` for what is left;
       - neither: single-pass ``loudnorm``.
    With nothing to do it is ``anull``.
    """
    source = _as_source(source)
    steps = style_filter_steps(target, source)
    level = _target_value(target, "normalization_level")
    if level is None:
        return ",".join(steps) or "anull"
    source_lufs = _source_loudness(source)
    target_lufs = loudness_target(float(level))
    if loudnorm_measurement is not None:
        measured = _loudnorm_values(loudnorm_measurement)
        gain = target_lufs - measured["input_i"]
        if measured["input_tp"] + gain <= TRUE_PEAK_TARGET_DBTP:
            steps.append(two_pass_loudnorm(measured, target_lufs))
        else:
            steps += [*_gain_into_limiter(gain), _loudnorm(target_lufs)]
    elif source_lufs is not None:
        steps += [*_gain_into_limiter(target_lufs - source_lufs), _loudnorm(target_lufs)]
    else:
        steps.append(_loudnorm(target_lufs))
    steps.append("aresample=48000")
    return ",".join(steps)


def _gain_into_limiter(gain_db: float) -> list[str]:
    """Gain towards the target and a peak limiter, to go before a dynamic loudnorm.

    loudnorm alone falls short of loud targets on peaky (uncompressed) audio: raising a
    -38 LUFS clip to -14 LUFS under a -1.5 dBTP ceiling it ended 2.3 LU (speech) to 4.4 LU
    (drums, dynamic noise) low. Bringing the level there first and limiting the peaks that
    would pass the ceiling leaves loudnorm a small correction (measured in the docs).
    """
    gain = max(-MAX_PRE_GAIN_DB, min(MAX_PRE_GAIN_DB, gain_db))
    # Sample-peak limiter half a dB under the true-peak ceiling: inter-sample peaks are
    # loudnorm's to catch. latency=1 compensates the lookahead, keeping audio in sync.
    ceiling = 10.0 ** ((TRUE_PEAK_TARGET_DBTP - 0.5) / 20.0)
    return [f"volume={gain:.2f}dB",
            f"alimiter=limit={ceiling:.4f}:attack=5:release=50:level=disabled:latency=1"]


def style_filter_steps(target: AudioStyle | Mapping[str, Any],
                       source: AudioStyle | Mapping[str, Any] | None = None) -> list[str]:
    """The steps of ``audio_filters`` before loudness normalisation (speech, compressor, bass)."""
    source = _as_source(source)
    source_lufs = _source_loudness(source)
    steps: list[str] = []
    if bool(_target_value(target, "enhance_speech")):
        # Rumble and handling noise out, stationary noise reduced (tracked as it changes),
        # consonants brought forward: intelligibility, the reason the style asks for it.
        steps += ["highpass=f=80", "afftdn=nr=12:nf=-50:tn=1", "equalizer=f=3000:t=q:w=1:g=3"]

    target_ratio = _target_value(target, "compression_ratio")
    if target_ratio is not None:
        ratio = max(1.0, float(target_ratio))
        if source is not None:
            # Ratios compound (each divides the spread), so only what the source lacks is added.
            ratio /= max(1.0, source.compression_ratio)
        ratio = min(MAX_COMPRESSION_RATIO, ratio)
        makeup_db = 0.0
        if source_lufs is not None:
            threshold = max(-60.0, min(0.0, source_lufs - COMPRESSOR_THRESHOLD_BELOW_LU))
            # Make up the gain the compressor takes at the programme's level, so the loudness
            # step's pre-gain (computed from the source) still fits.
            makeup_db = (source_lufs - threshold) * (1.0 - 1.0 / ratio)
        else:
            threshold = DEFAULT_COMPRESSOR_THRESHOLD_DBFS
        if ratio >= MIN_APPLIED_RATIO:
            makeup = min(64.0, max(1.0, 10.0 ** (makeup_db / 20.0)))  # acompressor's range
            steps.append(f"acompressor=threshold={threshold:.1f}dB:ratio={ratio:.2f}:attack={COMPRESSOR_ATTACK_MS:g}"
                         f":release={COMPRESSOR_RELEASE_MS:g}:makeup={makeup:.3f}")

    target_bass = _target_value(target, "bass_boost")
    if target_bass is not None:
        units = float(target_bass) - (source.bass_boost if source is not None else 0)
        gain = units * DB_PER_BASS_UNIT / BASS_SHELF_EFFICIENCY
        gain = max(-MAX_BASS_GAIN_DB, min(MAX_BASS_GAIN_DB, gain))
        if abs(gain) >= 0.5:
            steps.append(f"bass=g={gain:.1f}:f={BASS_SHELF_HZ:g}:t=q:w={BASS_SHELF_Q:g}")
    return steps


def _target_value(target: AudioStyle | Mapping[str, Any], key: str) -> Any:
    value = getattr(target, key, None) if isinstance(target, AudioStyle) else target.get(key)
    if value is None or key == "enhance_speech":
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"audio_style.{key} must be a finite number, not {value!r}")
    return value


# loudnorm works at 192 kHz (for its true-peak limiter) and asks its input to be resampled to
# that. Doing so explicitly matters: with loudnorm first in a chain and aresample after it,
# ffmpeg 5.1 fails ("Cannot select channel layout for the link between filters").
_LOUDNORM_INPUT = "aresample=192000"


def _as_source(source: AudioStyle | Mapping[str, Any] | None) -> AudioStyle | None:
    """The source's measurement as an AudioStyle; a style_json "audio_style" dict (the four
    public keys, or more of AudioStyle's fields) is accepted as well."""
    if source is None or isinstance(source, AudioStyle):
        return source
    known = {name: source[name] for name in AudioStyle.__dataclass_fields__ if name in source}
    try:
        return AudioStyle(**{"normalization_level": 0.0, "compression_ratio": 1.0, "bass_boost": 0,
                             "enhance_speech": False, **known})
    except TypeError as exc:
        raise ValueError(f"not an audio_style: {source!r}") from exc


def _source_loudness(source: AudioStyle | None) -> float | None:
    """The source's integrated loudness: measured, or read back from normalization_level when
    that is inside the mapped range (0 and 1 are clamped values and say only "at most/least")."""
    if source is None:
        return None
    if source.integrated_lufs is not None:
        return float(source.integrated_lufs)
    if 0.0 < source.normalization_level < 1.0:
        return loudness_target(source.normalization_level)
    return None


def _loudnorm(target_lufs: float) -> str:
    # LRA=50 (the maximum): loudnorm should set the level, not squeeze the loudness range the
    # compressor step just set; its dynamic (single-pass) mode still evens out 3 s windows.
    return f"{_LOUDNORM_INPUT},loudnorm=I={target_lufs:.1f}:TP={TRUE_PEAK_TARGET_DBTP:g}:LRA=50"


def two_pass_loudnorm(measured: Mapping[str, Any], target_lufs: float, *,
                      true_peak_dbtp: float = TRUE_PEAK_TARGET_DBTP) -> str:
    """The second-pass loudnorm filter from a first pass's print_format=json values
    (input_i, input_tp, input_lra, input_thresh, target_offset; strings or numbers). With
    linear=true ffmpeg applies one fixed gain, keeping the dynamics, unless that gain would
    push the true peak over ``true_peak_dbtp``; then it falls back to its dynamic mode."""
    values = _loudnorm_values(measured)
    return (f"{_LOUDNORM_INPUT},loudnorm=I={target_lufs:.1f}:TP={true_peak_dbtp:g}:LRA=50"
            f":measured_I={values['input_i']:.2f}:measured_TP={values['input_tp']:.2f}"
            f":measured_LRA={values['input_lra']:.2f}:measured_thresh={values['input_thresh']:.2f}"
            f":offset={values['target_offset']:.2f}:linear=true")


def _loudnorm_values(measured: Mapping[str, Any]) -> dict[str, float]:
    """loudnorm's JSON values as floats within its option ranges (a silent first pass reports
    -inf, which it cannot take back)."""
    ranges = {"input_i": (-99.0, 0.0, -99.0), "input_tp": (-99.0, 99.0, -99.0), "input_lra": (0.0, 99.0, 0.0),
              "input_thresh": (-99.0, 0.0, -99.0), "target_offset": (-99.0, 99.0, 0.0)}
    values = {}
    for key, (low, high, default) in ranges.items():
        try:
            value = float(measured[key])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"loudnorm measurement lacks a numeric {key!r}") from exc
        values[key] = min(high, max(low, value)) if math.isfinite(value) else default
    return values


def loudnorm_first_pass(path: str | os.PathLike[str], target: AudioStyle | Mapping[str, Any],
                        source: AudioStyle | Mapping[str, Any] | None = None, *, start: float | None = None,
                        duration: float | None = None) -> dict[str, float]:
    """Run the first pass of a two-pass style application on ``path``: the chain's steps before
    loudness, then loudnorm with print_format=json, output discarded. Returns loudnorm's
    measurement of the audio entering the loudness step (input_i, input_tp, input_lra,
    input_thresh, target_offset) for ``audio_filters(target, source, loudnorm_measurement=...)``.
    Raises MediaError if ffmpeg fails (a file without audio included)."""
    level = _target_value(target, "normalization_level")
    target_lufs = loudness_target(0.0 if level is None else float(level))
    chain = ",".join([*style_filter_steps(target, source), _loudnorm(target_lufs) + ":print_format=json"])
    source_path = os.fspath(path)
    if "://" not in source_path and not os.path.exists(source_path):
        raise MediaError(f"cannot measure loudness: no such file: {source_path}")
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"]
    if start is not None:
        cmd += ["-ss", f"{_seconds(start, 'start'):.6f}"]
    if duration is not None:
        cmd += ["-t", f"{_seconds(duration, 'duration'):.6f}"]
    cmd += ["-i", source_path, "-map", "0:a:0", "-vn", "-sn", "-dn", "-af", chain, "-f", "null", "-"]
    try:
        proc = subprocess.run(dies_with_parent(cmd), stdin=subprocess.DEVNULL, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise MediaError(f"{FFMPEG} is not installed") from exc
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        reason = next((ln.strip() for ln in stderr.splitlines()[::-1] if ln.strip()), f"exit code {proc.returncode}")
        raise MediaError(f"loudness measurement of {source_path} failed: {reason}")
    # loudnorm prints its JSON object last, after the "[Parsed_loudnorm_N @ ...]" line.
    match = re.search(r"\{[^{}]*\"input_i\"[^{}]*\}", stderr)
    if match is None:
        raise MediaError(f"loudness measurement of {source_path}: loudnorm printed no JSON")
    raw = json.loads(match.group(0))
    return _loudnorm_values(raw)


__all__ = [
    "AudioStyle",
    "BeatAnalysis",
    "analyze_audio_file",
    "audio_filters",
    "bass_boost_from_balance",
    "compression_ratio_from_spread",
    "decode_audio",
    "decode_audio_channels",
    "detect_beats",
    "loudness_target",
    "loudnorm_first_pass",
    "measure_audio",
    "min_pulse_clarity",
    "normalization_level",
    "pulse_clarity",
    "style_filter_steps",
    "two_pass_loudnorm",
]
