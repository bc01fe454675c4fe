"""kind "transcribe": the words, voice activity, loudness and voice features of one part of a source.

The part's audio is decoded with a margin either side, split into utterances by voice
activity (silence is never decoded), transcribed, and measured (loudness per half second,
speaker features per voiced window). Words belong to the part that holds their midpoint,
so the scheduler merges parts by concatenation. The result is JSON for the scheduler
(analysis/selection.py reads it).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from reelfarm import transcript
from reelfarm.storage import Storage
from render_nodes.speech.engines import Choice, EngineRefused, SpeechEngines
from render_nodes.speech.transcribe import FASTER_WHISPER, POCKETSPHINX, TranscriberUnavailable
from render_nodes.tasks.common import ProgressFn, TaskFailure, cancelled, fetch_source, media_failures

log = logging.getLogger(__name__)

LOUDNESS_STEP_SECONDS = 0.5
# Speech transcribed between two progress reports (and cancel checks).
PROGRESS_BATCH_SECONDS = 15.0


def run_transcribe_task(task: dict, *, storage: Storage, work_dir: Path, engines: SpeechEngines,
                        on_progress: ProgressFn, cancel: threading.Event) -> dict:  # fmt: skip
    """The words, voice activity, loudness and speaker features of [start, end)."""
    from render_nodes.speech import audio, diarize, vad

    spec = task["analysis"]
    start, end = float(spec.get("start_seconds", 0.0)), float(spec["end_seconds"])
    margin = float(spec.get("margin_seconds", 0.0))
    on_progress("fetching", 0.0)
    source = fetch_source(storage, spec["source_key"], work_dir)
    decode_from = max(0.0, start - margin)
    on_progress("decoding audio", 5.0)
    with media_failures():
        pcm = audio.decode_pcm16(source, decode_from, end + margin)
    if cancel.is_set():
        raise cancelled()
    speech = [(decode_from + a, decode_from + b) for a, b in vad.speech_segments(pcm)] if pcm else []
    try:
        engine = engines.engine_for(spec.get("transcriber") or "auto")
    except TranscriberUnavailable as exc:
        raise TaskFailure(str(exc), retryable=True) from exc
    local = [(a - decode_from, b - decode_from) for a, b in speech]
    language, probability = _language(engines, engine, spec.get("language") or "", pcm, local)
    try:
        choice = engines.choose(engine, language)
    except EngineRefused as exc:
        raise TaskFailure(str(exc), retryable=False) from exc
    on_progress("transcribing", 10.0)
    words = []
    began = time.perf_counter()
    if speech:
        transcriber, choice = _acquire(engines, choice)
        try:
            # A batch of utterances at a time: progress to report, and a cancel is noticed.
            batches: list[list[tuple[float, float]]] = [[]]
            for a, b in local:
                if sum(y - x for x, y in batches[-1]) >= PROGRESS_BATCH_SECONDS:
                    batches.append([])
                batches[-1].append((a, b))
            for done, batch in enumerate(batches, start=1):
                if cancel.is_set():
                    raise cancelled()
                words += transcriber.transcribe(pcm, offset=decode_from, speech=batch, language=choice.language)
                on_progress("transcribing", 10.0 + 80.0 * done / len(batches))
        finally:
            engines.release(choice.engine, choice.model, transcriber)
    transcribe_seconds = time.perf_counter() - began
    if cancel.is_set():
        raise cancelled()
    on_progress("measuring", 90.0)
    mine = [w for w in words if start <= (w.start + w.end) / 2 < end]
    # Loudness and speech of the nominal range only: chunks then tile the source.
    skip = int(round((start - decode_from) * 16000)) * 2
    own = pcm[skip : skip + int(round((end - start) * 16000)) * 2]
    loudness = audio.loudness_profile(own, window_seconds=LOUDNESS_STEP_SECONDS) if own else []
    own_speech = [(max(a, start), min(b, end)) for a, b in speech if b > start and a < end]
    features = []
    if own_speech:
        local = [(a - decode_from, b - decode_from) for a, b in own_speech]
        features = [(decode_from + a, decode_from + b, [round(x, 5) for x in vec])
                    for a, b, vec in diarize.speaker_features(pcm, local)]  # fmt: skip
    on_progress("measuring", 100.0)
    return {
        "start": start,
        "end": end,
        "transcriber": choice.engine,
        "model": choice.model,
        "language": choice.language,
        "language_probability": None if probability is None else round(probability, 3),
        "audio_seconds": round(len(pcm) / 32000, 3),
        "speech_seconds": round(sum(b - a for a, b in speech), 3),
        "transcribe_seconds": round(transcribe_seconds, 3),
        "words": transcript.to_rows(mine),
        "speech": [[round(a, 3), round(b, 3)] for a, b in own_speech],
        "loudness_step": LOUDNESS_STEP_SECONDS,
        "loudness": [round(x, 2) for x in loudness],
        "speaker_features": [[round(a, 3), round(b, 3), vec] for a, b, vec in features],
    }


def _language(engines: SpeechEngines, engine: str, requested: str, pcm: bytes,
              speech: list[tuple[float, float]]) -> tuple[str, float | None]:  # fmt: skip
    """The job's language, else the one Whisper hears (English where nothing can tell)."""
    if requested:
        return requested, None
    if engine != FASTER_WHISPER or not speech:
        return "en", None
    try:
        detector = engines.detector()
    except TranscriberUnavailable as exc:
        log.warning("cannot detect the language (%s); assuming English", exc)
        return "en", None
    if detector is None:
        return "en", None  # only English models here: English is what they read
    try:
        return detector.detect_language(pcm, speech)
    finally:
        engines.release(FASTER_WHISPER, detector.model.name, detector)


def _acquire(engines: SpeechEngines, choice: Choice):
    """A transcriber for `choice`; English falls back to PocketSphinx (logged) when the
    Whisper model cannot load here after all."""
    try:
        return engines.acquire(choice.engine, choice.model), choice
    except TranscriberUnavailable as exc:
        if choice.engine == POCKETSPHINX or choice.language != "en":
            raise TaskFailure(str(exc), retryable=True) from exc
        log.warning("%s; transcribing with PocketSphinx", exc)
        fallback = Choice(POCKETSPHINX, None, "en")
        return engines.acquire(fallback.engine, fallback.model), fallback
