"""One small preview per blob, made right after validation.

- video: a JPEG poster, POSTER_SIZE px on the long side, the frame at 10% of the
  duration (at most 10 s in);
- audio: an 800x200 PNG waveform;
- raster image: a WebP thumbnail, at most THUMBNAIL_SIZE px on the long side (first frame);
- SVG: the SVG itself (checked safe by svg.check_svg).

Sources are what formats.validate_file read: a local path, or for audio/video an
http(s) URL (a presigned GET: ffmpeg seeks with range requests). The preview is
written to a temporary name next to `out_path` and renamed, so a failure never leaves
a partial file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from control_plane.blobs.formats import Detected, FormatError, ffmpeg_input_args, redact

POSTER_SIZE = 480
WAVEFORM_SIZE = (800, 200)
WAVEFORM_COLOR = "#3b82f6"
THUMBNAIL_SIZE = 320
PROBE_TIMEOUT_S = 30
FFMPEG_TIMEOUT_S = 120  # a waveform decodes the whole audio
MAX_POSTER_SECONDS = 10.0


class PreviewError(RuntimeError):
    """No preview could be made (ffmpeg's or Pillow's complaint in the message)."""


def make_preview(source: str | Path, detected: Detected, out_path: Path) -> str:
    """Write the preview of a validated blob to `out_path`; return its content type."""
    out_path = Path(out_path)
    part = out_path.with_name(out_path.name + ".part")
    try:
        if detected.kind == "video":
            _poster(source, detected, part)
            content_type = "image/jpeg"
        elif detected.kind == "audio":
            _waveform(source, detected, part)
            content_type = "image/png"
        elif detected.format == "svg":
            _svg_copy(Path(source), part)
            content_type = "image/svg+xml"
        else:
            _thumbnail(Path(source), detected, part)
            content_type = "image/webp"
        os.replace(part, out_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    return content_type


def _run_ffmpeg(args: list[str], source: str | Path, out: Path) -> None:
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *args, str(out)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise PreviewError(f"ffmpeg took more than {FFMPEG_TIMEOUT_S} s") from None
    if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        tail = " | ".join(redact(proc.stderr, source).strip().splitlines()[-5:])
        raise PreviewError(f"ffmpeg failed (exit {proc.returncode}): {tail or 'no frame written'}")


def _duration(source: str | Path, detected: Detected) -> float | None:
    cmd = ["ffprobe", "-v", "error", "-print_format", "json", "-show_entries", "format=duration",
           *ffmpeg_input_args(source, detected)]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
        return float(json.loads(proc.stdout)["format"]["duration"])
    except (subprocess.TimeoutExpired, ValueError, KeyError, TypeError):
        return None


def _poster(source: str | Path, detected: Detected, out: Path) -> None:
    duration = _duration(source, detected)
    at = min(duration * 0.1, MAX_POSTER_SECONDS) if duration else 0.0
    # Long side POSTER_SIZE, aspect kept (even short side); ffmpeg has already applied rotation.
    scale = (f"scale='if(gte(iw,ih),{POSTER_SIZE},-2)':'if(gte(iw,ih),-2,{POSTER_SIZE})',"
             "format=yuvj420p")  # fmt: skip
    # -ss before -i: a fast keyframe seek (range requests on a URL), not a decode from the start.
    for seek in dict.fromkeys([at, 0.0]):  # a seek past the last frame writes nothing: retry at 0
        args = ["-ss", f"{seek:.3f}", *ffmpeg_input_args(source, detected), "-map", "0:V:0", "-frames:v", "1",
                "-vf", scale, "-c:v", "mjpeg", "-q:v", "3", "-f", "image2", "-update", "1"]  # fmt: skip
        try:
            _run_ffmpeg(args, source, out)
            return
        except PreviewError:
            if seek == 0.0:
                raise


def _waveform(source: str | Path, detected: Detected, out: Path) -> None:
    w, h = WAVEFORM_SIZE
    # Mono 8 kHz s16 before drawing: showwavespic keeps all samples until the end.
    graph = (f"[0:a:0]aformat=sample_fmts=s16:sample_rates=8000:channel_layouts=mono,"
             f"showwavespic=s={w}x{h}:colors={WAVEFORM_COLOR}[wave]")  # fmt: skip
    args = [*ffmpeg_input_args(source, detected), "-filter_complex", graph, "-map", "[wave]", "-frames:v", "1",
            "-c:v", "png", "-f", "image2", "-update", "1"]  # fmt: skip
    _run_ffmpeg(args, source, out)


def _thumbnail(path: Path, detected: Detected, out: Path) -> None:
    from PIL import Image, ImageOps

    from control_plane.blobs.formats import PILLOW_FORMATS

    try:
        with Image.open(path, formats=[PILLOW_FORMATS[detected.format]]) as im:
            im.seek(0)  # animated GIF/WebP/AVIF: the first frame
            im.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))  # draft-decodes JPEGs; never enlarges
            im = ImageOps.exif_transpose(im)
            has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
            im = im.convert("RGBA" if has_alpha else "RGB")
            im.save(out, format="WEBP", quality=80)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for malformed data
        raise PreviewError(f"thumbnail failed: {exc}") from None


def _svg_copy(path: Path, out: Path) -> None:
    from control_plane.blobs import svg

    data = path.read_bytes()
    try:
        svg.check_svg(data)  # cheap, and the copy is served as-is: never serve an unchecked one
    except FormatError as exc:
        raise PreviewError(str(exc)) from None
    shutil.copyfile(path, out)
