"""Splicing turns out of a clip: the interviewer's questions, for ``removeAiVoice`` interviews.

A clip [start, end] of an interview comes with ``keep``, the source ranges inside it to
keep. :func:`splice_source` cuts those ranges out of the source in one ffmpeg run
(trim/atrim + setpts/asetpts per range, joined by the concat filter) into an
intermediate file; the normal renderer (render_nodes/pipeline.py) then renders that
file from 0 to the total kept length, and :func:`remap_words` moves the transcript's
source-timed words onto the spliced timeline so the captions still follow the speech::

    keep = normalise_keep(keep, start, end, fps=probe(source).frame_rate)
    if keep != [(start, end)]:
        source = splice_source(source, keep, work_dir / "spliced.mov", cancel=cancel)
        start, end, words = 0.0, kept_length(keep), remap_words(words, keep)

The intermediate is re-encoded (cuts fall between keyframes, so stream copy could not
be frame-accurate), as cheaply as possible and close to lossless: x264 ``ultrafast``
at CRF 12 and 16-bit PCM audio (AAC only in an .mp4, which cannot hold PCM). It keeps
the source's resolution and frame rate. ffmpeg turns rotated phone footage upright as
it decodes (its default ``-autorotate``) and writes no display matrix, so the
intermediate is stored upright: :func:`reelfarm.media.probe` reports rotation 0
and the same displayed size as the source's.

Cost, measured with ffmpeg 5.1 / libx264 on 2 cores, keeping 8 s of a 10 s 1920x1080
25 fps H.264/AAC source (testsrc2 + light temporal noise): the splice took ~2.3-2.6 s,
~0.6x the ~3.7-4.2 s of rendering those 8 s as a 1080x1920 9:16 karaoke-captioned clip
(veryfast, CRF 23, static crop; a face-tracked render costs more, so less in
proportion); rendering from the intermediate was ~10% faster than from the source.
The intermediate ran ~33 Mbit/s (~4 MB of scratch disk per second of 1080p kept);
heavy sensor noise inflates that (~210 Mbit/s with strong per-frame noise). superfast
was ~1.7x slower for no smaller file, so ultrafast it is. The removed gaps are decoded
and dropped, not seeked over: cheap next to the encode, and one decoder serves all
the pieces.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from reelfarm.media import probe
from reelfarm.transcript import Word

# Decode from a little before the first kept frame: frames whose timestamps round to
from render_nodes.ffmpeg import run_ffmpeg

# Decode from a little before the first kept frame: frames whose timestamps round to
# just under a cut must not be lost to the seek itself.
_SEEK_MARGIN_SECONDS = 1.0
_VIDEO_ARGS = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "12"]


def normalise_keep(keep: Sequence[tuple[float, float]], start: float, end: float, min_piece: float = 0.5,
                   *, fps: float | None = None) -> list[tuple[float, float]]:
    """The ranges of ``keep`` clamped to [start, end], sorted, overlapping or touching ones
    merged, pieces shorter than ``min_piece`` seconds dropped.

    With ``fps`` (the source's frame rate) every boundary is first snapped to the nearest
    frame time k/fps, and the pieces are kept within the frames inside [start, end], so
    that audio and video are cut at the same instants and the spliced file lasts exactly
    the sum of the pieces: pass the same list to :func:`splice_source` and
    :func:`remap_words`.

    Nothing left to keep (``keep`` empty, or every piece too short) means there is no
    usable splice: the whole clip, ``[(start, end)]``, is returned, as it is when the
    pieces cover all of it: nothing needs splicing out.
    """
    if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
        raise ValueError(f"clip range must be finite with end > start, got {start!r}-{end!r}")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be positive, got {fps!r}")

    def snap(t: float) -> float:
        return round(t * fps) / fps if fps else t

    # The frames inside the clip: its first at or after start, its last before end.
    lo = math.ceil(start * fps - 1e-6) / fps if fps else start
    hi = math.floor(end * fps + 1e-6) / fps if fps else end
    pieces = []
    for s, e in keep:
        if not (math.isfinite(s) and math.isfinite(e)):
            continue
        s, e = max(snap(s), lo), min(snap(e), hi)
        if e > s:
            pieces.append((s, e))
    pieces.sort()
    merged: list[tuple[float, float]] = []
    for s, e in pieces:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    kept = [(s, e) for s, e in merged if e - s >= min_piece]
    if not kept or kept == [(lo, hi)]:
        return [(start, end)]
    return kept


def kept_length(keep: Sequence[tuple[float, float]]) -> float:
    """Seconds of the spliced file: the end to render it to."""
    return sum(e - s for s, e in keep)


def splice_source(source: Path, keep: Sequence[tuple[float, float]], out_path: Path, *,
                  cancel: threading.Event | None = None,
                  on_progress: Callable[[float], None] | None = None) -> Path:
    """Write ``keep``'s source ranges, back to back, into ``out_path`` and return it.

    ``keep`` is sorted, disjoint and non-empty (see :func:`normalise_keep`), in seconds
    of the source as ffmpeg's ``-ss`` counts them. Audio is cut sample-exactly at the
    boundaries; video keeps the frames whose times round into each range (times within
    half a frame of a boundary count as on it), so with frame-snapped boundaries both
    cut at the same instants. A source without audio gives a file without audio.
    The container follows ``out_path``'s suffix (.mov/.mkv recommended: PCM audio;
    .mp4: AAC). Raises Cancelled when ``cancel`` is set and FfmpegFailed when ffmpeg
    fails; either way no partial file is left.
    """
    source, out_path = Path(source).resolve(), Path(out_path).resolve()
    pieces = [(float(s), float(e)) for s, e in keep]
    if not pieces:
        raise ValueError("nothing to keep")
    for (s, e), following in zip(pieces, [*pieces[1:], None]):
        if not (math.isfinite(s) and math.isfinite(e)) or s < 0 or e <= s:
            raise ValueError(f"bad keep range {s!r}-{e!r}")
        if following is not None and following[0] < e:
            raise ValueError("keep ranges must be sorted and must not overlap")

    info = probe(source)
    half_frame = 0.5 / (info.frame_rate or 30.0)
    seek = max(0.0, pieces[0][0] - _SEEK_MARGIN_SECONDS)
    read = pieces[-1][1] - seek + _SEEK_MARGIN_SECONDS
    n = len(pieces)

    chains = []
    if n > 1:
        chains.append(f"[0:v:0]split={n}" + "".join(f"[vin{i}]" for i in range(n)))
        if info.has_audio:
            chains.append(f"[0:a:0]asplit={n}" + "".join(f"[ain{i}]" for i in range(n)))
    joined = ""
    for i, (s, e) in enumerate(pieces):
        vin = f"[vin{i}]" if n > 1 else "[0:v:0]"
        chains.append(f"{vin}trim=start={max(0.0, s - seek - half_frame):.6f}:end={e - seek - half_frame:.6f},"
                      f"setpts=PTS-STARTPTS[v{i}]")
        joined += f"[v{i}]"
        if info.has_audio:
            ain = f"[ain{i}]" if n > 1 else "[0:a:0]"
            chains.append(f"{ain}atrim=start={s - seek:.6f}:end={e - seek:.6f},asetpts=PTS-STARTPTS[a{i}]")
            joined += f"[a{i}]"
    chains.append(f"{joined}concat=n={n}:v=1:a={int(info.has_audio)}[v]" + ("[a]" if info.has_audio else ""))

    audio_out: list[str] = []
    if info.has_audio:
        codec = ["-c:a", "aac", "-b:a", "256k"] if out_path.suffix.lower() == ".mp4" else ["-c:a", "pcm_s16le"]
        audio_out = ["-map", "[a]", *codec]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_ffmpeg(
            [*(["-ss", f"{seek:.6f}"] if seek > 0 else []), "-t", f"{read:.6f}", "-i", str(source),
             "-filter_complex", ";".join(chains), "-map", "[v]", *_VIDEO_ARGS, *audio_out,
             "-map_metadata", "-1", str(out_path)],
            expected_duration=kept_length(pieces),
            on_progress=on_progress,
            cancel=cancel,
        )  # fmt: skip
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise
    return out_path


def remap_time(t: float, keep: Sequence[tuple[float, float]]) -> float | None:
    """Where source time ``t`` falls in the spliced file (which starts at 0), or None when
    it was cut out. Ranges are closed: a range's end maps to the next one's start."""
    offset = 0.0
    for s, e in keep:
        if s <= t <= e:
            return offset + (t - s)
        offset += e - s
    return None


def remap_words(words: Sequence[Word], keep: Sequence[tuple[float, float]]) -> list[Word]:
    """``words`` moved from the source's timeline onto the spliced file's.

    A word inside a removed range is dropped; one straddling a cut is clipped to its
    kept part (a word spanning a whole removed range keeps both sides, now adjacent).
    """
    out = []
    for word in words:
        w_start, w_end = word.start, max(word.start, word.end)
        overlapping = [
            (s, e) for s, e in keep
            if (min(w_end, e) > max(w_start, s)) or (w_start == w_end and s <= w_start <= e)
        ]  # fmt: skip
        if not overlapping:
            continue
        start = remap_time(max(w_start, overlapping[0][0]), keep)
        end = remap_time(min(w_end, overlapping[-1][1]), keep)
        assert start is not None and end is not None
        out.append(Word(word.text, start, end))
    return out
