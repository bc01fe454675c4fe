"""Shot cuts and sampled face detections from decoded frames.

Every decoded frame feeds the shot detector (a luma/chroma histogram read straight
from the decoded planes, no scaling), and about `sample_fps` frames a second are scaled
to the detector's input size and detected in batches (`FrameAnalyser`). The renderer
pushes the frames it decodes for the encoder, so a clip is decoded once; `scan_source`
is the analysis-only pass, streaming with flat memory.

In `scan_source`, `fast_decode` skips non-reference (B-)frames, which nearly halves decode time on a
2-core machine. A cut must still be exact (the crop jumps on the cut frame), and x264
does not always start a new shot with an I- or P-frame, so around every packet much
bigger than its recent neighbours (a cut costs the encoder intra blocks) the next few
packets in decode order, the B-frames shown before it, are decoded too. A cut that
shows no such size jump can still be found up to two frames late; `fast_decode=False`
decodes everything.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from reelfarm.media import MediaError
from render_nodes.faces import FaceBox, FaceDetector

# A histogram distance (0..1) above this between consecutive decoded frames is a cut.
from render_nodes.ffmpeg import Cancelled

# A histogram distance (0..1) above this between consecutive decoded frames is a cut.
CUT_THRESHOLD = 0.35
# Cuts closer than this to the previous one are flashes, not shots.
MIN_SHOT_SECONDS = 0.5
_DETECT_BATCH = 16
# fast_decode: a packet this many times the median size of the recent ones may start a
# shot; decode that many following packets in full (B-frame runs are at most 3-4 long).
_SIZE_JUMP = 2.5
_FULL_DECODE_AFTER_JUMP = 4
_LUMA_BINS, _CHROMA_BINS = 32, 16
# Read every Nth pixel of each plane for the histogram: cheap and plenty for cut detection.
_PLANE_STRIDE = 8


@dataclass(frozen=True)
class FaceSample:
    time: float  # seconds from the clip start
    faces: tuple[FaceBox, ...]


@dataclass
class SourceScan:
    start: float  # source seconds the scan covered
    end: float
    samples: list[FaceSample] = field(default_factory=list)
    cuts: list[float] = field(default_factory=list)  # clip-relative times where a new shot starts
    decoded_frames: int = 0
    detector: str = ""
    decoder: str = "cpu"
    seconds: float = 0.0


class ShotCutDetector:
    """Flags a cut when the colour histogram of a frame jumps away from the previous frame's."""

    def __init__(self, threshold: float = CUT_THRESHOLD, min_shot_seconds: float = MIN_SHOT_SECONDS) -> None:
        self.threshold = threshold
        self.min_shot_seconds = min_shot_seconds
        self._previous: np.ndarray | None = None
        self._last_cut = 0.0

    def push(self, time_s: float, histogram: np.ndarray) -> bool:
        previous, self._previous = self._previous, histogram
        if previous is None:
            return False
        distance = 0.5 * float(np.abs(histogram - previous).sum()) / 3  # three planes, each sums to 1
        if distance > self.threshold and time_s - self._last_cut >= self.min_shot_seconds:
            self._last_cut = time_s
            return True
        return False


def plane_histogram(frame) -> np.ndarray:
    """Normalised Y, U and V histograms of a decoded YUV frame, read without conversion."""
    parts = []
    for index, bins in ((0, _LUMA_BINS), (1, _CHROMA_BINS), (2, _CHROMA_BINS)):
        plane = frame.planes[index]
        pixels = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        sample = pixels[::_PLANE_STRIDE, : plane.width : _PLANE_STRIDE]
        counts = np.bincount(sample.ravel() >> (8 - int(np.log2(bins))), minlength=bins).astype(np.float32)
        parts.append(counts / max(1.0, counts.sum()))
    return np.concatenate(parts)


def _sample_size(width: int, height: int, longest: int) -> tuple[int, int]:
    scale = min(1.0, longest / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


class FrameAnalyser:
    """Analysis of decoded frames as they stream past: shot cuts and sampled faces.

    ``push`` every decoded frame (4:2:0) in order with its clip time; it says whether the
    frame starts a new shot. About ``sample_fps`` frames a second are scaled to the
    detector's input and queued; ``flush`` detects the queued ones into ``scan.samples``
    (batched, which GPU detectors need; it also runs by itself every ``batch`` samples).
    The caller records cuts, in whatever time base it plans in. ``compute_seconds`` is the
    time spent here, not counting the decode.
    """

    def __init__(self, scan: SourceScan, detector: FaceDetector, *, sample_fps: float = 5.0,
                 batch: int = _DETECT_BATCH) -> None:
        self.scan = scan
        self.detector = detector
        self.batch = batch
        self.compute_seconds = 0.0
        scan.detector = detector.name
        self._cuts = ShotCutDetector()
        self._pending: list[tuple[float, np.ndarray]] = []
        self._sample_every = 1.0 / sample_fps
        self._next_sample = 0.0
        self._size: tuple[int, int] | None = None

    def push(self, frame, t: float) -> bool:
        began = time.perf_counter()
        self.scan.decoded_frames += 1
        cut = self._cuts.push(t, plane_histogram(frame))
        if cut:
            self.flush()  # samples before the cut belong to the shot that just ended
        if t + 1e-6 >= self._next_sample:
            self._next_sample = (int(t / self._sample_every + 1e-6) + 1) * self._sample_every
            self._size = self._size or _sample_size(frame.width, frame.height, self.detector.input_size)
            # Area averaging: the right filter for a ~10x downscale, and faster than bicubic.
            rgb = frame.reformat(
                width=self._size[0], height=self._size[1], format="rgb24", interpolation="AREA"
            ).to_ndarray()
            self._pending.append((t, rgb))
            if len(self._pending) >= self.batch:
                self.flush()
        self.compute_seconds += time.perf_counter() - began
        return cut

    def flush(self) -> None:
        if self._pending:
            began = time.perf_counter()
            found = self.detector.detect([rgb for _, rgb in self._pending])
            self.scan.samples.extend(
                FaceSample(t, tuple(faces)) for (t, _), faces in zip(self._pending, found, strict=True)
            )
            self._pending.clear()
            self.compute_seconds += time.perf_counter() - began


def open_video(path, hwaccel: str | None = None):
    """A PyAV container and its first video stream, set up for threaded decoding."""
    import av  # lazy: the API process never needs PyAV

    try:
        container = av.open(str(path), hwaccel=_hwaccel(av, hwaccel) if hwaccel else None)
    except av.FFmpegError as exc:
        raise MediaError(f"cannot open source: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise MediaError("source has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def scan_source(
    path,
    *,
    start: float,
    end: float,
    detector: FaceDetector,
    sample_fps: float = 5.0,
    fast_decode: bool = True,
    hwaccel: str | None = None,
    on_progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> SourceScan:
    """Analyse source seconds [start, end) on their own: cuts and face samples, clip-relative.

    Rendering does not call this: it analyses the frames it decodes for the encoder
    (render_nodes/pipeline.py). This is the analysis-only pass, for when no clip is made.
    """
    import av

    began = time.monotonic()
    scan = SourceScan(start=start, end=end)
    analyser = FrameAnalyser(scan, detector, sample_fps=sample_fps)
    duration = max(1e-6, end - start)
    last_report = 0.0
    container, stream = open_video(path, hwaccel)
    with container:
        # Deblocking only polishes edges: detection at <= 640 px and histograms do not
        # need it, and skipping it saves ~10% of the decode.
        stream.codec_context.options = {"skip_loop_filter": "all"}
        scan.decoder = "nvdec" if hwaccel else "cpu"
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        try:
            for frame in _decode(container, stream, fast_decode):
                if frame.time is None or frame.time < start - 1e-3:
                    continue
                if frame.time >= end:
                    break
                t = frame.time - start
                if frame.format.name not in ("yuv420p", "yuvj420p"):
                    frame = frame.reformat(format="yuv420p")
                if analyser.push(frame, t):
                    scan.cuts.append(round(t, 6))
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                if on_progress is not None and t - last_report >= 1.0:
                    last_report = t
                    on_progress(min(100.0, 100.0 * t / duration))
        except av.FFmpegError as exc:
            raise MediaError(f"source cannot be decoded: {exc}") from exc
    analyser.flush()
    scan.seconds = round(time.monotonic() - began, 3)
    return scan


def _decode(container, stream, fast_decode: bool):
    """Decoded frames of `stream`; with fast_decode, B-frames only around likely cuts."""
    if not fast_decode:
        yield from container.decode(stream)
        return
    context = stream.codec_context
    recent: deque[int] = deque(maxlen=30)
    full_left = 0
    for packet in container.demux(stream):
        if packet.size:
            if len(recent) >= 5 and packet.size > _SIZE_JUMP * statistics.median(recent):
                full_left = _FULL_DECODE_AFTER_JUMP + 1
            recent.append(packet.size)
            # Read per packet by the decoder (frame threads included), so toggling is safe.
            context.skip_frame = "DEFAULT" if full_left > 0 else "NONREF"
            full_left = max(0, full_left - 1)
        yield from packet.decode()


def _hwaccel(av, name: str):
    from av.codec.hwaccel import HWAccel

    return HWAccel(device_type=name, allow_software_fallback=True)
