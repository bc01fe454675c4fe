"""The tasks that find a job's moments, before any clip is rendered.

kind "transcribe": one chunk of the source's audio. Decoded with a margin either side,
split into utterances by voice activity (silence is never decoded), transcribed, and
measured (loudness per half second, speaker features per voiced window). Words belong to
the chunk that holds their midpoint, so the scheduler merges chunks by concatenation.

kind "analyze": how often a face is on screen, from keyframes only (a keyframe-only decode
of an hour of H.264 takes seconds; every frame would take minutes).

Both answer with plain JSON for the scheduler (scheduler/selection.py reads it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from control_plane.storage import Storage
from render_nodes.media import Cancelled, MediaError

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, float], None]
LOUDNESS_STEP_SECONDS = 0.5
# Speech transcribed between two progress reports (and cancel checks).
PROGRESS_BATCH_SECONDS = 15.0
# Frames per second looked at when a source has keyframes further apart than this.
MAX_FACE_SAMPLES = 600


class Transcribers:
    """One transcriber per backend per node, loaded on first use (pocketsphinx ~0.5 s).

    Decoders are not thread-safe: a node running two transcribe tasks at once gets
    one decoder each (a small pool).
    """

    def __init__(self, *, whisper_model_dir: Path | None = None, device: str = "auto") -> None:
        self.whisper_model_dir = whisper_model_dir
        self.device = device
        self._idle: dict[str, list] = {}
        self._lock = threading.Lock()

    def available(self) -> list[str]:
        from render_nodes.speech.transcribe import available_backends

        return available_backends(self.whisper_model_dir)

    def resolve(self, requested: str) -> str:
        available = self.available()
        if requested in ("", "auto"):
            return "faster-whisper" if "faster-whisper" in available else "pocketsphinx"
        if requested not in available:
            from render_nodes.tasks import TaskFailure

            raise TaskFailure(f"transcriber {requested} is not available on this node", retryable=True)
        return requested

    def acquire(self, name: str):
        with self._lock:
            idle = self._idle.setdefault(name, [])
            if idle:
                return idle.pop()
        from render_nodes.speech.transcribe import make_transcriber

        return make_transcriber(name, whisper_model_dir=self.whisper_model_dir, device=self.device)

    def release(self, name: str, transcriber) -> None:
        with self._lock:
            self._idle.setdefault(name, []).append(transcriber)


def _fetch(storage: Storage, key: str, work_dir: Path) -> Path:
    from render_nodes.tasks import TaskFailure

    try:
        return storage.fetch_to_local(key, work_dir / "sources")
    except Exception as exc:  # storage hiccups are worth another attempt
        raise TaskFailure(f"cannot fetch source: {exc}", retryable=True) from exc


def run_transcribe_task(task: dict, *, storage: Storage, work_dir: Path, transcribers: Transcribers,
                        on_progress: ProgressFn, cancel: threading.Event) -> dict:  # fmt: skip
    """The words, voice activity, loudness and speaker features of [start, end)."""
    from render_nodes.speech import audio, diarize, vad
    from render_nodes.tasks import TaskFailure

    spec = task["analysis"]
    start, end = float(spec.get("start_seconds", 0.0)), float(spec["end_seconds"])
    margin = float(spec.get("margin_seconds", 0.0))
    on_progress("fetching", 0.0)
    source = _fetch(storage, spec["source_key"], work_dir)
    decode_from = max(0.0, start - margin)
    on_progress("decoding audio", 5.0)
    try:
        pcm = audio.decode_pcm16(source, decode_from, end + margin)
    except MediaError as exc:
        raise TaskFailure(str(exc), retryable=False) from exc
    if cancel.is_set():
        raise TaskFailure("cancelled", retryable=False)
    speech = [(decode_from + a, decode_from + b) for a, b in vad.speech_segments(pcm)] if pcm else []
    name = transcribers.resolve(spec.get("transcriber") or "auto")
    on_progress("transcribing", 10.0)
    words = []
    began = time.perf_counter()
    if speech:
        transcriber = transcribers.acquire(name)
        try:
            # A batch of utterances at a time: progress to report, and a cancel is noticed.
            batches: list[list[tuple[float, float]]] = [[]]
            for a, b in speech:
                if sum(y - x for x, y in batches[-1]) >= PROGRESS_BATCH_SECONDS:
                    batches.append([])
                batches[-1].append((a - decode_from, b - decode_from))
            for done, batch in enumerate(batches, start=1):
                if cancel.is_set():
                    raise TaskFailure("cancelled", retryable=False)
                words += transcriber.transcribe(pcm, offset=decode_from, speech=batch)
                on_progress("transcribing", 10.0 + 80.0 * done / len(batches))
        finally:
            transcribers.release(name, transcriber)
    transcribe_seconds = time.perf_counter() - began
    if cancel.is_set():
        raise TaskFailure("cancelled", retryable=False)
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
        "transcriber": name,
        "audio_seconds": round(len(pcm) / 32000, 3),
        "speech_seconds": round(sum(b - a for a, b in speech), 3),
        "transcribe_seconds": round(transcribe_seconds, 3),
        "words": [[w.text, round(w.start, 3), round(w.end, 3)] for w in mine],
        "speech": [[round(a, 3), round(b, 3)] for a, b in own_speech],
        "loudness_step": LOUDNESS_STEP_SECONDS,
        "loudness": [round(x, 2) for x in loudness],
        "speaker_features": [[round(a, 3), round(b, 3), vec] for a, b, vec in features],
    }


def run_analyze_task(task: dict, *, storage: Storage, work_dir: Path, detector, on_progress: ProgressFn,
                     cancel: threading.Event, hwaccel: str | None = None) -> dict:  # fmt: skip
    """Face presence over [start, end): (time, 1 or 0) per keyframe looked at."""
    import av

    from render_nodes.analysis import open_video
    from render_nodes.tasks import TaskFailure

    spec = task["analysis"]
    start, end = float(spec.get("start_seconds", 0.0)), float(spec["end_seconds"])
    on_progress("fetching", 0.0)
    source = _fetch(storage, spec["source_key"], work_dir)
    if detector is None:
        return {"start": start, "end": end, "faces": [], "detector": None}
    on_progress("analyzing", 5.0)
    samples: list[tuple[float, int]] = []
    min_gap = max(0.5, (end - start) / MAX_FACE_SAMPLES)
    last = -1e9
    try:
        container, stream = open_video(source, hwaccel)
    except MediaError as exc:
        raise TaskFailure(str(exc), retryable=False) from exc
    batch: list[tuple[float, object]] = []

    def flush() -> None:
        if batch:
            found = detector.detect([rgb for _, rgb in batch])
            samples.extend((round(t, 2), 1 if faces else 0) for (t, _), faces in zip(batch, found, strict=True))
            batch.clear()

    with container:
        stream.codec_context.skip_frame = "NONKEY"
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        size = None
        try:
            for frame in container.decode(stream):
                if cancel.is_set():
                    raise Cancelled()
                if frame.time is None or frame.time < start:
                    continue
                if frame.time >= end:
                    break
                if frame.time - last < min_gap:
                    continue
                last = frame.time
                if size is None:
                    scale = min(1.0, detector.input_size / max(frame.width, frame.height))
                    size = (max(2, int(frame.width * scale) // 2 * 2), max(2, int(frame.height * scale) // 2 * 2))
                rgb = frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA").to_ndarray()
                batch.append((frame.time, rgb))
                if len(batch) >= 16:
                    flush()
                    on_progress("analyzing", min(99.0, 5 + 95 * (frame.time - start) / max(1e-6, end - start)))
        except av.FFmpegError as exc:
            raise TaskFailure(f"source cannot be decoded: {exc}", retryable=False) from exc
        except Cancelled:
            raise TaskFailure("cancelled", retryable=False) from None
        flush()
    on_progress("analyzing", 100.0)
    return {"start": start, "end": end, "faces": samples, "detector": detector.name}
