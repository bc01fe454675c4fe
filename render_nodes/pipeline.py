"""Render one reframed, captioned clip from a source video: one decode, one encode.

With a face detector, the clip's frames are decoded once, here (PyAV), and each
decoded frame feeds both the analysis (render_nodes/scan.py: shot cuts, faces
sampled ~5 times a second) and, once render_nodes/reframe.py has planned its crop, the
encoder: an ffmpeg process that reads the cropped frames on a pipe, scales them, burns
the captions in (libass), loudness-normalises the audio and encodes with +faststart.
Decoding twice (an analysis pass, then ffmpeg decoding the source again) cost as much
as the whole analysis budget: decode is ~15% of x264's time here.

Frames wait in memory until their shot is planned: a cut ends a shot, and a shot longer
than the frame buffer (`frame_buffer_mb`) is planned in parts, each resuming the camera
where the last one left it. Memory is bounded by the buffer, never by the source.

Without a detector the clip is a static centre crop and ffmpeg does everything.
The poster is a frame of the clip where the subject is visible. Uploading is the
caller's job.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reelfarm.geometry import centre_crop
from reelfarm.media import MediaError, MediaInfo, normal_rotation, probe
from reelfarm.transcript import Word
from render_nodes.captions import ass_filter, build_caption_track
from render_nodes.ffmpeg import ENCODERS, LOUDNORM, Cancelled, FfmpegPipe, run_ffmpeg, video_encoder_args
from render_nodes.reframe import (
    CameraState,
    CropPath,
    ReframeConfig,
    crop_jitter,
    face_coverage,
    join_paths,
    plan_crop_path,
    poster_score,
    segment_scan,
)
from render_nodes.scan import FrameAnalyser, SourceScan, open_video

if TYPE_CHECKING:
    from analysis.style.apply import AppliedFilters
    from render_nodes.faces import FaceDetector

# Share of the whole task's progress each stage ends at.
_PROBED = 2.0
_RENDERED = 95.0
_POSTER_DONE = 97.0
# Shorter ranges would round to no frames at all.
_MIN_CLIP_SECONDS = 0.05
# A clip this much shorter than asked means the source ended early (truncated or
# corrupt data that ffprobe's header read could not see); decoders just stop.
_SHORTFALL_TOLERANCE_SECONDS = 0.5
# The frame buffer holds at least this much video whatever its size in MiB: a part
# (half the buffer) needs a few face samples to plan from and to look ahead to.
_MIN_BUFFER_SECONDS = 1.0
# When the encoder runs dry, frames are planned early, but never with less than this
# much video after them to look ahead to.
_LOOKAHEAD_SECONDS = 2.0


@dataclass(kw_only=True)
class RenderRequest:
    source_path: Path
    clip_index: int
    start_seconds: float
    end_seconds: float
    aspect_ratio: str
    output_width: int
    output_height: int
    encoder: str  # "libx264" or "h264_nvenc"
    x264_preset: str = "veryfast"
    work_dir: Path
    # None: no analysis, a static centre crop.
    detector: FaceDetector | None = None
    reframe: ReframeConfig | None = None
    caption_preset: str = "none"
    words: Sequence[Word] = field(default_factory=tuple)  # source-timed transcript words
    sample_fps: float = 5.0
    hwaccel: str | None = None  # "cuda" where the node has NVDEC
    # Decoded frames waiting for their shot to be planned: ~5 s of 1080p30 in 512 MiB.
    frame_buffer_mb: int = 512
    # A Style DNA's filters (analysis/style/apply.py): colour before the scale, the audio chain
    # instead of the default loudness normalisation, the output frame rate.
    style: AppliedFilters | None = None


@dataclass
class RenderedFile:
    name: str
    path: Path
    content_type: str


@dataclass
class RenderResult:
    files: list[RenderedFile]
    info: dict[str, Any]
    crop_path: CropPath | None = None  # the crop of every output frame, as rendered


def _finish_filters(req: RenderRequest, captions: str | None, crop_width: int, crop_height: int) -> str:
    """Scale the crop to the output size, grade it, and burn captions in; `captions` is a file
    name in ffmpeg's working directory (plain names need no filtergraph escaping)."""
    graph = f"scale={req.output_width}:{req.output_height},setsar=1"
    if req.style is not None and req.style.video:
        # The grade runs on the fewer pixels: before an upscale, after a downscale (a 1080p
        # source to 720p grades 2.25x fewer); captions come after it either way, ungraded.
        if crop_width * crop_height < req.output_width * req.output_height:
            graph = f"{req.style.video},{graph}"
        else:
            graph = f"{graph},{req.style.video}"
    if captions:
        graph += f",{ass_filter(captions)}"
    if req.style is not None and req.style.frame_rate:
        graph += f",fps={req.style.frame_rate:g}"
    return graph + ",format=yuv420p"


def _audio_args(req: RenderRequest, source: MediaInfo, start: float, duration: float, index: int
                ) -> tuple[list[str], list[str]]:
    """(input args, output args) taking the clip's audio from input `index`, loudness-normalised."""
    if not source.has_audio:
        return [], []
    inputs = ["-ss", f"{start:.3f}", "-t", f"{duration:.3f}", "-i", str(req.source_path.resolve())] if index else []
    chain = req.style.audio if req.style is not None and req.style.audio else LOUDNORM
    return inputs, ["-map", f"{index}:a:0", "-af", chain, "-c:a", "aac", "-b:a", "128k", "-ar", "48000"]


def render_clip(
    req: RenderRequest,
    *,
    on_progress: Callable[[str, float], None] | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    """Render ``req`` into ``clip_NN.mp4``, ``clip_NN.jpg`` (and ``clip_NN.ass``) in ``req.work_dir``."""
    if req.encoder not in ENCODERS:
        raise ValueError(f"unsupported encoder {req.encoder!r}; expected one of {list(ENCODERS)}")
    started = time.monotonic()
    cancel = cancel or threading.Event()

    def report(stage: str, percent: float) -> None:
        if on_progress is not None:
            on_progress(stage, percent)

    if cancel.is_set():
        raise Cancelled()
    report("probing", 0.0)
    source = probe(req.source_path)
    start = max(0.0, req.start_seconds)
    end = min(req.end_seconds, source.duration_seconds)
    duration = end - start
    if duration < _MIN_CLIP_SECONDS:
        raise MediaError(
            f"empty clip range {req.start_seconds:.3f}-{req.end_seconds:.3f} s "
            f"(source is {source.duration_seconds:.3f} s long)"
        )
    req.work_dir.mkdir(parents=True, exist_ok=True)
    stem = f"clip_{req.clip_index:02d}"
    clip_path = req.work_dir / f"{stem}.mp4"
    poster_path = req.work_dir / f"{stem}.jpg"
    captions_path = req.work_dir / f"{stem}.ass"
    captions = None
    if req.caption_preset != "none" and req.words:
        captions = build_caption_track(
            req.words, preset=req.caption_preset, clip_start=start, clip_end=end,
            width=req.output_width, height=req.output_height,
        )  # fmt: skip
        if captions is not None:
            captions_path.write_text(captions, encoding="utf-8")
    report("rendering", _PROBED)
    render = _StreamingRender if req.detector is not None else _StaticRender
    try:
        outcome = render(req, source, start, duration, captions_path.name if captions else None, clip_path,
                         poster_path, cancel, report).run()  # fmt: skip
    except BaseException:
        clip_path.unlink(missing_ok=True)  # never leave a half-written clip to be uploaded
        poster_path.unlink(missing_ok=True)
        raise
    report("poster", _POSTER_DONE)

    path, scan = outcome.path, outcome.scan
    files = [
        RenderedFile(name=clip_path.name, path=clip_path, content_type="video/mp4"),
        RenderedFile(name=poster_path.name, path=poster_path, content_type="image/jpeg"),
    ]
    if captions is not None:
        files.append(RenderedFile(name=captions_path.name, path=captions_path, content_type="text/x-ssa"))
    return RenderResult(
        files=files,
        info={
            "encoder": req.encoder,
            "width": req.output_width,
            "height": req.output_height,
            "duration_seconds": round(outcome.duration_seconds, 3),
            "start_seconds": start,
            "end_seconds": end,
            "crop": {"w": path.crop_width, "h": path.crop_height, "x": int(path.xs[0]), "y": int(path.ys[0])},
            "detector": scan.detector,
            "decoder": scan.decoder,
            "shots": [
                {"start": round(shot.start, 3), "end": round(shot.end, 3), "camera": shot.mode,
                 "subject": shot.subject, **({"fallback": shot.fallback} if shot.fallback else {})}
                for shot in path.shots
            ],
            "face_coverage": face_coverage(path),
            "crop_jitter": crop_jitter(path),
            "captions": req.caption_preset if captions is not None else "none",
            "poster_seconds": round(outcome.poster_seconds, 3),
            "planned_parts": outcome.parts,
            "source": {
                "width": source.width,
                "height": source.height,
                "duration_seconds": source.duration_seconds,
            },
            "analysis_seconds": round(scan.seconds, 3),
            "render_seconds": round(time.monotonic() - started, 3),
        },
        crop_path=path,
    )  # fmt: skip


@dataclass
class _Outcome:
    path: CropPath
    scan: SourceScan
    duration_seconds: float
    poster_seconds: float
    parts: int


@dataclass
class _Render:
    req: RenderRequest
    source: MediaInfo
    start: float
    duration: float
    captions: str | None
    clip_path: Path
    poster_path: Path
    cancel: threading.Event
    report: Callable[[str, float], None]

    def _shortfall(self, rendered_seconds: float) -> None:
        if rendered_seconds < self.duration - max(_SHORTFALL_TOLERANCE_SECONDS, 0.05 * self.duration):
            raise MediaError(
                f"source is truncated or corrupt: rendered only {rendered_seconds:.2f} s "
                f"of {self.duration:.2f} s requested"
            )


class _StaticRender(_Render):
    """No detector: a centred crop, and ffmpeg decodes, crops and encodes on its own."""

    def run(self) -> _Outcome:
        req, fps = self.req, self.source.frame_rate or 30.0
        path = plan_crop_path(
            SourceScan(start=self.start, end=self.start + self.duration, detector="none"),
            source_width=self.source.width, source_height=self.source.height, aspect_ratio=req.aspect_ratio,
            fps=fps, duration=self.duration,
        )  # fmt: skip
        poster_frame = len(path.xs) // 2
        crop = f"crop={path.crop_width}:{path.crop_height}:{int(path.xs[0])}:{int(path.ys[0])}"
        graph = (f"[0:v]{crop},{_finish_filters(req, self.captions, path.crop_width, path.crop_height)},split=2[v][all];"
                 f"[all]select='eq(n\\,{poster_frame})'[poster]")  # the poster from the same pass
        _, audio_out = _audio_args(req, self.source, self.start, self.duration, 0)
        run_ffmpeg(
            ["-ss", f"{self.start:.3f}", "-i", str(req.source_path.resolve()), "-t", f"{self.duration:.3f}",
             "-filter_complex", graph, "-map", "[v]", *audio_out, *video_encoder_args(req.encoder, req.x264_preset), "-movflags", "+faststart",
             str(self.clip_path.resolve()),
             "-map", "[poster]", "-frames:v", "1", "-q:v", "3", "-update", "1", str(self.poster_path.resolve())],
            expected_duration=self.duration,
            on_progress=lambda pct: self.report("rendering", _PROBED + pct / 100 * (_RENDERED - _PROBED)),
            cancel=self.cancel,
            cwd=req.work_dir,
        )  # fmt: skip
        rendered = probe(self.clip_path).duration_seconds
        self._shortfall(rendered)
        if not self.poster_path.exists() or self.poster_path.stat().st_size == 0:
            raise MediaError("source is truncated or corrupt: no frame for the poster")
        scan = SourceScan(start=self.start, end=self.start + self.duration, detector="none")
        return _Outcome(path, scan, rendered, poster_frame / fps, 1)


class _StreamingRender(_Render):
    """One decode feeding the analysis and, shot by shot once planned, the encoder."""

    def run(self) -> _Outcome:
        import av

        req = self.req
        self.scan = SourceScan(start=self.start, end=self.start + self.duration)
        assert req.detector is not None
        self.analyser = FrameAnalyser(self.scan, req.detector, sample_fps=req.sample_fps)
        self.scan.decoder = "nvdec" if req.hwaccel else "cpu"
        self.buffer: deque[tuple[int, Any]] = deque()  # (output frame index, decoded frame)
        self.parts: list[tuple[float, CropPath]] = []
        self.next_slot = 0  # the next output frame to give a decoded frame to
        self.planned_until = 0  # output frames before this one are planned and sent
        self.resume: CameraState | None = None
        self.written = 0
        self.poster: tuple[float, int, list[np.ndarray] | None] = (-2.0, -1, None)  # score, frame, planes
        self.encoder: FfmpegPipe | None = None
        self.punch_in = None  # render_nodes/punch_in.PunchIn when a style paces the clip

        container, stream = open_video(req.source_path, req.hwaccel)
        rate = stream.average_rate or stream.guessed_rate or Fraction(self.source.frame_rate or 30).limit_denominator(1001)
        self.rate = Fraction(rate)
        self.fps = float(self.rate)
        self.total = max(1, round(self.duration * self.fps))
        previous, previous_t = None, 0.0
        try:
            with container:
                if self.start > 0:
                    container.seek(int(self.start / stream.time_base), stream=stream, backward=True)
                try:
                    for frame in container.decode(stream):
                        if frame.time is None or frame.time < self.start - 1e-3:
                            continue
                        t = frame.time - self.start
                        if t >= self.duration - 1e-6:
                            break
                        if self.encoder is None:
                            self.upright = _upright(frame)
                            frame = self.upright(frame)
                            self._start_encoder(frame.width, frame.height)
                        else:
                            frame = self.upright(frame)
                        if frame.format.name not in ("yuv420p", "yuvj420p") or (frame.width, frame.height) != (
                            self.width, self.height,
                        ):  # 10-bit, 4:2:2, or a stream whose size changes midway  # fmt: skip
                            frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
                        self._assign(previous, t)
                        cut = self.analyser.push(frame, t)
                        previous, previous_t = frame, t
                        if cut and self.next_slot > self.planned_until:
                            self._send(until=self.next_slot, shot_ends=True)
                            self.scan.cuts.append(self.next_slot / self.fps)
                            if self.punch_in is not None:
                                self.punch_in.add_source_cut(self.next_slot / self.fps)
                        elif len(self.buffer) >= self.budget:  # plan half, look ahead over the rest
                            self._send(until=self.buffer[len(self.buffer) // 2][0], shot_ends=False)
                        elif len(self.buffer) >= self.hungry_after and self.encoder.queued() == 0:
                            # The encoder is about to idle: plan all but the look-ahead.
                            self._send(until=self.next_slot - self.lookahead, shot_ends=False)
                        if self.cancel.is_set():
                            raise Cancelled()
                except av.FFmpegError as exc:
                    raise MediaError(f"source cannot be decoded: {exc}") from exc
            if previous is None:
                raise MediaError("source is truncated or corrupt: no video frames in the clip's range")
            self._assign(previous, previous_t + 1 / self.fps)
            if self.next_slot > self.planned_until:
                self._send(until=self.next_slot, shot_ends=True)
            assert self.encoder is not None
            encoder, self.encoder = self.encoder, None
            encoder.close()
        except BaseException:
            if self.encoder is not None:
                self.encoder.kill()
            raise
        self.analyser.flush()
        self.scan.seconds = self.analyser.compute_seconds
        rendered = self.written / self.fps
        self._shortfall(rendered)
        self._write_poster()
        return _Outcome(join_paths(self.parts), self.scan, rendered, self.poster[1] / self.fps, len(self.parts))

    def _start_encoder(self, width: int, height: int) -> None:
        req = self.req
        self.width, self.height = width, height
        self.crop_w, self.crop_h, _, _ = centre_crop(width, height, req.aspect_ratio)
        frame_bytes = width * height * 3 // 2
        self.budget = max(math.ceil(_MIN_BUFFER_SECONDS * self.fps), req.frame_buffer_mb * 2**20 // frame_bytes)
        # Planning whole shots gives the best camera, but an idle encoder is lost time:
        # when it has nothing queued, plan all but the last `_LOOKAHEAD_SECONDS`.
        self.lookahead = min(self.budget // 2, math.ceil(_LOOKAHEAD_SECONDS * self.fps))
        self.hungry_after = self.lookahead + math.ceil(_MIN_BUFFER_SECONDS / 2 * self.fps)
        if req.style is not None and req.style.pacing is not None:
            from render_nodes.punch_in import PunchIn

            self.punch_in = PunchIn(req.style.pacing, self.crop_w, self.crop_h)
        audio_in, audio_out = _audio_args(req, self.source, self.start, self.duration, 1)
        self.encoder = FfmpegPipe(
            ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{self.crop_w}x{self.crop_h}",
             "-framerate", f"{self.rate.numerator}/{self.rate.denominator}", "-i", "pipe:0", *audio_in,
             "-filter_complex", f"[0:v]{_finish_filters(req, self.captions, self.crop_w, self.crop_h)}[v]", "-map", "[v]", *audio_out,
             # A style's frame rate changes the count: then the clip's length bounds it.
             *(["-t", f"{self.duration:.3f}"] if req.style is not None and req.style.frame_rate
               else ["-frames:v", str(self.total)]),
             *video_encoder_args(req.encoder, req.x264_preset), "-movflags", "+faststart",
             str(self.clip_path.resolve())],
            cwd=req.work_dir,
            # Cropped frames queue here while decoding goes on (up to half the buffer's
            # worth of source frames; a crop is smaller): a part is handed over at once.
            max_queued=max(8, self.budget // 2),
        )  # fmt: skip

    def _assign(self, frame, until: float) -> None:
        """Give `frame` every output frame whose time (+ half a frame) is before `until`:
        a constant frame rate out of whatever timing the source has."""
        while frame is not None and self.next_slot < self.total and (self.next_slot + 0.5) / self.fps < until - 1e-9:
            self.buffer.append((self.next_slot, frame))
            self.next_slot += 1

    def _send(self, *, until: int, shot_ends: bool) -> None:
        """Plan output frames [planned_until, until) and send them to the encoder.

        A part that does not end its shot is planned with every sample known so far (the
        frames still buffered are its look-ahead), and the next part resumes from it.
        """
        self.analyser.flush()
        first = self.planned_until
        plan_to = until if shot_ends else self.next_slot
        t0 = first / self.fps
        planned = plan_crop_path(
            segment_scan(self.scan, t0, plan_to / self.fps), source_width=self.width, source_height=self.height,
            aspect_ratio=self.req.aspect_ratio, fps=self.fps, duration=(plan_to - first) / self.fps,
            config=self.req.reframe, resume=self.resume,
        )  # fmt: skip
        part = planned.head(until - first)
        self.parts.append((t0, part))
        self.resume = None if shot_ends else part.end_state()
        for t, box in part.subject_boxes:
            if self.punch_in is not None and box is not None:
                k = part.frame_at(t)
                self.punch_in.add_subject(t0 + t, box, int(part.xs[k]), int(part.ys[k]))
            score = poster_score(t0 + t, box, self.duration)
            if score > self.poster[0]:
                self.poster = (score, first + part.frame_at(t), None)
        padded = part.pad_mask()
        while self.buffer and self.buffer[0][0] < until:
            slot, frame = self.buffer.popleft()
            k = slot - first
            planes = self._pad(frame) if padded[k] else self._crop(frame, int(part.xs[k]), int(part.ys[k]))
            if self.punch_in is not None:
                planes = self.punch_in.compose(planes, slot / self.fps)
            if slot == self.poster[1] or (self.poster[0] < 0 and slot == self.total // 2):
                self.poster = (max(self.poster[0], -1.0), slot, planes)
            assert self.encoder is not None
            self.encoder.write(planes)
            self.written += 1
        self.planned_until = until
        self.report("rendering", _PROBED + self.written / self.total * (_RENDERED - _PROBED))

    def _crop(self, frame, x: int, y: int) -> list[np.ndarray]:
        w, h = self.crop_w, self.crop_h
        return [
            np.ascontiguousarray(_plane(frame, i)[py : py + ph, px : px + pw])
            for i, (px, py, pw, ph) in enumerate(((x, y, w, h), (x // 2, y // 2, w // 2, h // 2),
                                                  (x // 2, y // 2, w // 2, h // 2)))
        ]  # fmt: skip

    def _pad(self, frame) -> list[np.ndarray]:
        """The whole frame, fitted into the crop's size, over a blurred, stretched copy of itself."""
        w, h = self.crop_w, self.crop_h
        scale = min(w / self.width, h / self.height)
        fit_w, fit_h = max(2, int(self.width * scale) // 2 * 2), max(2, int(self.height * scale) // 2 * 2)
        # Down to an eighth and back up with bilinear filtering: a cheap, smooth blur.
        small = frame.reformat(width=max(2, w // 16 * 2), height=max(2, h // 16 * 2), format="yuv420p")
        fill = small.reformat(width=w, height=h, format="yuv420p", interpolation="BILINEAR")
        fitted = frame.reformat(width=fit_w, height=fit_h, format="yuv420p")
        planes = [np.array(_plane(fill, i)[: (h if i == 0 else h // 2), : (w if i == 0 else w // 2)]) for i in range(3)]
        ox, oy = (w - fit_w) // 4 * 2, (h - fit_h) // 4 * 2
        for i, plane in enumerate(planes):
            div = 1 if i == 0 else 2
            fh, fw = fit_h // div, fit_w // div
            plane[oy // div : oy // div + fh, ox // div : ox // div + fw] = _plane(fitted, i)[:fh, :fw]
        return planes

    def _write_poster(self) -> None:
        _, _, planes = self.poster
        if planes is None:
            raise MediaError("source is truncated or corrupt: no frame for the poster")
        writer = FfmpegPipe(
            ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{self.crop_w}x{self.crop_h}", "-i", "pipe:0",
             "-vf", f"scale={self.req.output_width}:{self.req.output_height},setsar=1",
             "-frames:v", "1", "-q:v", "3", "-update", "1", str(self.poster_path.resolve())],
        )  # fmt: skip
        writer.write(planes)
        writer.close()


def _upright(first_frame) -> Callable[[Any], Any]:
    """What turns decoded frames the way they are meant to be shown: phones store
    portrait video sideways with a display matrix, which ffmpeg's CLI honours and PyAV
    leaves to us. Identity when there is none."""
    rotation = normal_rotation(getattr(first_frame, "rotation", 0) or 0)
    if rotation == 0:
        return lambda frame: frame
    import av

    graph = av.filter.Graph()
    source = graph.add_buffer(
        width=first_frame.width, height=first_frame.height, format=first_frame.format.name,
        time_base=first_frame.time_base or Fraction(1, 90000),
    )  # fmt: skip
    steps = {90: [("transpose", "cclock")], 180: [("hflip", ""), ("vflip", "")], 270: [("transpose", "clock")]}
    last = source
    for name, args in steps[rotation]:
        node = graph.add(name, args) if args else graph.add(name)
        last.link_to(node)
        last = node
    sink = graph.add("buffersink")
    last.link_to(sink)
    graph.configure()

    def turn(frame):
        graph.push(frame)
        return graph.pull()

    return turn


def _plane(frame, index: int) -> np.ndarray:
    """A decoded frame's plane as a (rows, line size) array, without copying."""
    plane = frame.planes[index]
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
