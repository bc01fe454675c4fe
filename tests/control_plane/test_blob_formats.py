"""Content validation of blobs (control_plane/blobs/formats.py, svg.py, previews.py).

Every sample is made here, once per module, with ffmpeg and Pillow: 1-2 s, 64x48, so
the module runs in seconds. The http(s) source path is exercised against a real
loopback HTTP server that honours Range requests, as S3 does.
"""

from __future__ import annotations

import io
import re
import resource
import shutil
import struct
import subprocess
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from control_plane.blobs import formats, previews, svg
from control_plane.blobs.formats import (
    Detected,
    FormatError,
    check_declared,
    sniff,
    validate_file,
)

pytestmark = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                                reason="ffmpeg/ffprobe not installed")  # fmt: skip

VIDEO = ["-f", "lavfi", "-i", "testsrc=s=64x48:r=10:d=2"]
TONE = ["-f", "lavfi", "-i", "sine=f=440:d=2"]
H264_AAC = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"]

# name -> ffmpeg arguments (output path appended)
FFMPEG_SAMPLES = {
    "video.mp4": [*VIDEO, *TONE, *H264_AAC],  # moov at the end (ffmpeg's default)
    # 2 MB of noise with the moov at the end: reading it over HTTP needs a range request.
    "noise.mp4": ["-f", "lavfi", "-i", "nullsrc=s=160x120:r=25:d=2,format=yuv420p,noise=alls=100:allf=t", *TONE,
                  "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-c:a", "aac"],
    "faststart.mp4": [*VIDEO, *TONE, *H264_AAC, "-movflags", "+faststart"],
    "portrait.mp4": ["-f", "lavfi", "-i", "testsrc=s=48x64:r=10:d=1", "-c:v", "libx264", "-pix_fmt", "yuv420p"],
    "video.mov": [*VIDEO, *TONE, *H264_AAC],
    "video.webm": [*VIDEO, *TONE, "-c:v", "libvpx-vp9", "-c:a", "libopus"],
    "video.avi": [*VIDEO, *TONE, "-c:v", "mpeg4", "-c:a", "libmp3lame"],
    "video.mkv": [*VIDEO, "-c:v", "libx264", "-pix_fmt", "yuv420p"],
    "audio.mp3": [*TONE, "-c:a", "libmp3lame"],
    "bare.mp3": [*TONE, "-c:a", "libmp3lame", "-id3v2_version", "0", "-write_xing", "0"],
    "audio.wav": [*TONE],
    "audio.aac": [*TONE, "-c:a", "aac", "-f", "adts"],
    "audio.flac": [*TONE],
    "audio.ogg": [*TONE, "-c:a", "libvorbis"],
    "opus.ogg": [*TONE, "-c:a", "libopus"],
    "audio.m4a": [*TONE, "-c:a", "aac"],
    # Audio only, generic 'isom' brand: only the moov's track handlers say it is audio.
    "isom-audio.mp4": [*TONE, "-c:a", "aac", "-movflags", "+faststart"],
    "isom-audio-moov-last.mp4": [*TONE, "-c:a", "aac"],
}


def _ffmpeg(*args: str) -> None:
    proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    if proc.returncode:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {proc.stderr[-2000:]}")


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with almost no data behind it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("samples")
    out = {name: root / name for name in FFMPEG_SAMPLES}
    # Images with Pillow: a 64x48 gradient, so JPEG/AVIF have something to encode.
    grad = np.zeros((48, 64, 3), np.uint8)
    grad[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)
    grad[..., 1] = np.linspace(0, 255, 48, dtype=np.uint8)[:, None]
    image = Image.fromarray(grad)
    for name, fmt in [("image.jpg", "JPEG"), ("image.png", "PNG"), ("image.webp", "WEBP"), ("image.avif", "AVIF")]:
        out[name] = root / name
        image.save(out[name], format=fmt)
    frames = [Image.new("RGB", (64, 48), c) for c in ("red", "lime", "blue")]  # animated: red comes first
    for name, fmt in [("image.gif", "GIF"), ("animated.webp", "WEBP")]:
        out[name] = root / name
        frames[0].save(out[name], format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out["large.png"] = root / "large.png"
    Image.new("RGB", (1000, 500), "orange").save(out["large.png"])
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees when shown
    out["rotated.jpg"] = root / "rotated.jpg"
    image.save(out["rotated.jpg"], format="JPEG", exif=exif)
    # A cover bigger than the 64 KiB head: random pixels do not compress.
    out["cover-big.png"] = root / "cover-big.png"
    noise = np.random.default_rng(7).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    Image.fromarray(noise).save(out["cover-big.png"])
    out["bomb.png"] = root / "bomb.png"
    out["bomb.png"].write_bytes(_png_with_size(20000, 20000))
    out["110mp.png"] = root / "110mp.png"
    out["110mp.png"].write_bytes(_png_with_size(11000, 10000))
    out["doc.pdf"] = root / "doc.pdf"
    out["doc.pdf"].write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<<>>\n%%EOF\n")
    out["notes.txt"] = root / "notes.txt"
    out["notes.txt"].write_text("just some plain text, not media at all\n" * 20)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: _ffmpeg(*FFMPEG_SAMPLES[name], str(out[name])), FFMPEG_SAMPLES))
    for name, cover in [("cover.mp3", "image.png"), ("cover-big.mp3", "cover-big.png")]:
        out[name] = root / name
        _ffmpeg("-i", str(out["audio.mp3"]), "-i", str(out[cover]), "-map", "0", "-map", "1", "-c", "copy",
                "-id3v2_version", "3", "-disposition:v", "attached_pic", str(out[name]))  # fmt: skip
    # Truncations: head intact, the rest cut off.
    data = out["faststart.mp4"].read_bytes()
    moov_end = data.index(b"mdat") + 64  # moov first, then a sliver of media data
    out["truncated-faststart.mp4"] = root / "truncated-faststart.mp4"
    out["truncated-faststart.mp4"].write_bytes(data[:moov_end])
    out["truncated.mp4"] = root / "truncated.mp4"
    out["truncated.mp4"].write_bytes(out["video.mp4"].read_bytes()[:4000])  # moov (at the end) is gone
    return out


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(formats.SNIFF_BYTES)


# -------------------------------------------------------------------------- sniffing

SNIFFED = {
    "video.mp4": ("mp4", "video", "video/mp4"),
    "faststart.mp4": ("mp4", "video", "video/mp4"),
    "video.mov": ("mov", "video", "video/quicktime"),
    "video.webm": ("webm", "video", "video/webm"),
    "video.avi": ("avi", "video", "video/x-msvideo"),
    "audio.mp3": ("mp3", "audio", "audio/mpeg"),
    "bare.mp3": ("mp3", "audio", "audio/mpeg"),
    "cover.mp3": ("mp3", "audio", "audio/mpeg"),
    "cover-big.mp3": ("mp3", "audio", "audio/mpeg"),
    "audio.wav": ("wav", "audio", "audio/wav"),
    "audio.aac": ("aac", "audio", "audio/aac"),
    "audio.flac": ("flac", "audio", "audio/flac"),
    "audio.ogg": ("ogg", "audio", "audio/ogg"),
    "opus.ogg": ("ogg", "audio", "audio/ogg"),
    "audio.m4a": ("m4a", "audio", "audio/mp4"),
    "isom-audio.mp4": ("m4a", "audio", "audio/mp4"),
    "image.jpg": ("jpg", "image", "image/jpeg"),
    "image.png": ("png", "image", "image/png"),
    "image.webp": ("webp", "image", "image/webp"),
    "animated.webp": ("webp", "image", "image/webp"),
    "image.gif": ("gif", "image", "image/gif"),
    "image.avif": ("avif", "image", "image/avif"),
}


@pytest.mark.parametrize("name", SNIFFED)
def test_sniff_names_every_supported_format(samples, name):
    fmt, kind, content_type = SNIFFED[name]
    assert sniff(_head(samples[name])) == Detected(format=fmt, kind=kind, content_type=content_type)


def test_every_supported_format_has_a_sample():
    covered = {fmt for fmt, _, _ in SNIFFED.values()} | {"svg"}
    assert covered == set(formats.FORMATS) == {"mp4", "mov", "webm", "avi", "mp3", "wav", "aac", "flac", "ogg",
                                               "m4a", "jpg", "png", "webp", "svg", "gif", "avif"}  # fmt: skip


def test_sniff_needs_only_the_head(samples):
    # The video's moov is at its end, far beyond the first bytes: the ftyp box is enough.
    assert sniff(samples["video.mp4"].read_bytes()[:64]).format == "mp4"
    assert sniff(samples["video.webm"].read_bytes()[:64]).format == "webm"


def test_id3_tag_in_front_of_aac_is_aac(samples):
    tag = b"ID3\x03\x00\x00\x00\x00\x00\x0a" + b"\0" * 10  # empty ID3v2.3 tag, 10 bytes of padding
    assert sniff(tag + _head(samples["audio.aac"])).format == "aac"
    assert sniff(tag + _head(samples["audio.flac"])).format == "flac"


@pytest.mark.parametrize(("name", "said"), [
    ("video.mkv", "Matroska"),
    ("doc.pdf", "PDF document"),
    ("notes.txt", "text"),
])  # fmt: skip
def test_unsupported_formats_are_refused_with_what_libmagic_said(samples, name, said):
    with pytest.raises(FormatError, match=rf"^unsupported format: .*{said}"):
        sniff(_head(samples[name]))


def test_empty_and_random_bytes_are_refused():
    with pytest.raises(FormatError, match="unsupported format: empty"):
        sniff(b"")
    with pytest.raises(FormatError, match="unsupported format"):
        sniff(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(FormatError, match="unsupported format"):  # MP3 frame sync, but no frame follows
        sniff(b"\xff\xfb\x90\x64" + b"\x55" * 2000)


def test_ogg_theora_video_is_refused(tmp_path):
    path = tmp_path / "theora.ogg"
    try:
        _ffmpeg("-f", "lavfi", "-i", "testsrc=s=64x48:r=10:d=1", "-c:v", "libtheora", str(path))
    except RuntimeError:
        pytest.skip("this ffmpeg has no libtheora encoder")
    with pytest.raises(FormatError, match="unsupported format: .*Theora"):
        sniff(_head(path))


def test_heic_and_3gp_brands_are_refused():
    def ftyp(major: bytes, *compatible: bytes) -> bytes:
        body = major + b"\0\0\0\0" + b"".join(compatible)
        return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\0\0\0\x08free"

    assert sniff(ftyp(b"mif1", b"mif1", b"avif")).format == "avif"
    assert sniff(ftyp(b"qt  ", b"qt  ")).format == "mov"
    for major in (b"heic", b"3gp4", b"mif1"):
        with pytest.raises(FormatError, match="unsupported format"):
            sniff(ftyp(major, major))


# ----------------------------------------------------------------- declared types

ALIASES = {
    "mp4": ["video/mp4"],
    "mov": ["video/quicktime"],
    "webm": ["video/webm"],
    "avi": ["video/x-msvideo", "video/avi", "video/msvideo"],
    "mp3": ["audio/mpeg", "audio/mp3"],
    "wav": ["audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"],
    "aac": ["audio/aac", "audio/x-aac", "audio/aacp"],
    "flac": ["audio/flac", "audio/x-flac"],
    "ogg": ["audio/ogg", "application/ogg", "audio/vorbis", "audio/opus"],
    "m4a": ["audio/mp4", "audio/x-m4a", "audio/m4a"],
    "jpg": ["image/jpeg", "image/jpg"],
    "png": ["image/png"],
    "webp": ["image/webp"],
    "svg": ["image/svg+xml"],
    "gif": ["image/gif"],
    "avif": ["image/avif"],
}


@pytest.mark.parametrize(("fmt", "declared"), [(f, d) for f, ds in ALIASES.items() for d in ds])
def test_every_alias_names_its_format_and_no_other(fmt, declared):
    check_declared(declared, formats.detected(fmt))
    check_declared(declared.upper() + "; charset=binary", formats.detected(fmt))  # case and parameters ignored
    for other in ALIASES:
        if other != fmt:
            with pytest.raises(FormatError):
                check_declared(declared, formats.detected(other))


def test_png_declared_as_mp4_names_both(samples):
    detected = sniff(_head(samples["image.png"]))
    with pytest.raises(FormatError) as err:
        check_declared("video/mp4", detected)
    assert str(err.value) == "declared video/mp4 but the bytes are PNG image"


@pytest.mark.parametrize("name", ["audio.m4a", "isom-audio.mp4", "audio.mp3", "audio.wav"])
def test_audio_declared_as_video_is_an_error(samples, name):
    detected = sniff(_head(samples[name]))
    for declared in ("video/mp4", "video/webm", "video/quicktime"):
        with pytest.raises(FormatError, match=f"declared {declared} but the bytes are .* audio"):
            check_declared(declared, detected)


def test_missing_or_generic_declared_type_is_an_error():
    for declared in ("", "application/octet-stream", "video/*"):
        with pytest.raises(FormatError, match="but the bytes are MP4 video"):
            check_declared(declared, formats.detected("mp4"))


# ---------------------------------------------------------------- deep validation

MEDIA = {  # name -> (duration, width, height, codec, audio codec)
    "video.mp4": (2.0, 64, 48, "h264", "aac"),
    "faststart.mp4": (2.0, 64, 48, "h264", "aac"),
    "video.mov": (2.0, 64, 48, "h264", "aac"),
    "video.webm": (2.0, 64, 48, "vp9", "opus"),
    "video.avi": (2.0, 64, 48, "mpeg4", "mp3"),
    "audio.mp3": (2.0, None, None, "mp3", "mp3"),
    "bare.mp3": (2.0, None, None, "mp3", "mp3"),
    "audio.wav": (2.0, None, None, "pcm_s16le", "pcm_s16le"),
    "audio.aac": (2.0, None, None, "aac", "aac"),
    "audio.flac": (2.0, None, None, "flac", "flac"),
    "audio.ogg": (2.0, None, None, "vorbis", "vorbis"),
    "opus.ogg": (2.0, None, None, "opus", "opus"),
    "audio.m4a": (2.0, None, None, "aac", "aac"),
    "isom-audio.mp4": (2.0, None, None, "aac", "aac"),
}


@pytest.mark.parametrize("name", MEDIA)
def test_validate_media_metadata(samples, name):
    duration, width, height, codec, audio_codec = MEDIA[name]
    media = validate_file(samples[name], sniff(_head(samples[name])))
    assert media["duration_seconds"] == pytest.approx(duration, abs=0.15)
    assert (media["width"], media["height"]) == (width, height)
    assert (media["codec"], media["audio_codec"]) == (codec, audio_codec)
    assert media["bitrate_kbps"] > 0


@pytest.mark.parametrize("name", ["image.jpg", "image.png", "image.webp", "animated.webp", "image.gif",
                                  "image.avif"])  # fmt: skip
def test_validate_raster_image_size(samples, name):
    assert validate_file(samples[name], sniff(_head(samples[name]))) == {"width": 64, "height": 48}


def test_exif_rotation_is_applied_to_the_size(samples):
    assert validate_file(samples["rotated.jpg"], formats.detected("jpg")) == {"width": 48, "height": 64}


@pytest.mark.parametrize("name", ["cover.mp3", "cover-big.mp3"])
def test_mp3_with_cover_art_is_audio(samples, name):
    detected = sniff(_head(samples[name]))
    assert detected.kind == "audio"
    media = validate_file(samples[name], detected)
    assert media["codec"] == "mp3" and media["width"] is None
    assert media["duration_seconds"] == pytest.approx(2.0, abs=0.15)


def test_truncated_mp4_with_valid_head_is_refused(samples):
    for name in ("truncated-faststart.mp4", "truncated.mp4"):
        detected = sniff(_head(samples[name]))
        assert detected.format == "mp4"  # the head alone looks fine
        with pytest.raises(FormatError, match="MP4 video"):
            validate_file(samples[name], detected)
    with pytest.raises(FormatError, match="no decodable video stream"):
        validate_file(samples["truncated-faststart.mp4"], formats.detected("mp4"))


def test_audio_only_mp4_with_moov_beyond_the_head_is_not_a_video(samples):
    # A generic brand and no moov in the head (the first 4 KiB stand for 64 KiB of a long
    # file): sniffing cannot tell, it says MP4, and validation refuses it as a video.
    path = samples["isom-audio-moov-last.mp4"]
    detected = sniff(path.read_bytes()[:4096])
    assert detected.format == "mp4"
    with pytest.raises(FormatError, match="no decodable video stream"):
        validate_file(path, detected)


def test_video_passed_off_as_audio_is_refused(samples):
    with pytest.raises(FormatError, match="has a video stream .*h264"):
        validate_file(samples["video.mp4"], formats.detected("m4a"))


def test_demuxer_is_forced_to_the_sniffed_format(samples):
    # ffprobe must not re-guess: MP3 bytes read as WebM, a PNG read as AVI, are errors.
    with pytest.raises(FormatError, match="not a readable WebM video"):
        validate_file(samples["audio.mp3"], formats.detected("webm"))
    with pytest.raises(FormatError, match="AVI video"):
        validate_file(samples["image.png"], formats.detected("avi"))


def test_broken_image_is_refused(samples, tmp_path):
    truncated = tmp_path / "truncated.jpg"
    data = samples["image.jpg"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="not a readable JPEG image"):
        validate_file(truncated, sniff(_head(truncated)))
    with pytest.raises(FormatError, match="not a readable PNG image"):  # JPEG bytes are not a PNG
        validate_file(samples["image.jpg"], formats.detected("png"))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # 110 MP: Pillow warns, we refuse
@pytest.mark.parametrize("name", ["bomb.png", "110mp.png"])
def test_image_bomb_is_refused_without_decoding(samples, name):
    detected = sniff(_head(samples[name]))
    assert detected.format == "png"
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(FormatError, match="image too large"):
        validate_file(samples[name], detected)
    # Decoding would need >= 330 MB (110 MP RGB); the peak must not have moved by a fraction of that.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000


# ----------------------------------------------------------------------------- SVG

CLEAN_SVG = b"""<?xml version="1.0" encoding="UTF-8"?>
<!-- drawn by hand -->
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" width="64" height="48" viewBox="0 0 32 24">
  <defs>
    <linearGradient id="grad"><stop offset="0" stop-color="#3b82f6"/><stop offset="1" stop-color="white"/></linearGradient>
    <circle id="dot" r="2"/>
  </defs>
  <style>/* internal references only */ .a { fill: url(#grad); stroke: url( "#grad" ) }</style>
  <rect class="a" width="32" height="24" style="fill: url('#grad')" inkscape:label="background"/>
  <use href="#dot" x="4" y="4"/><use xlink:href="#dot" x="8" y="4"/>
  <a href="#dot"><text x="2" y="20">hello</text></a>
  <image width="1" height="1" href="data:image/png;base64,iVBORw0KGgo="/>
  <animate attributeName="opacity" from="0" to="1" dur="1s"/>
</svg>
"""


def _svg(body: str, root_attrs: str = "") -> bytes:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" {root_attrs}>'
            f"{body}</svg>").encode()  # fmt: skip


def test_clean_svg_passes_sniff_validation_and_sizing(tmp_path):
    svg.check_svg(CLEAN_SVG)
    assert sniff(CLEAN_SVG) == Detected("svg", "image", "image/svg+xml")
    path = tmp_path / "clean.svg"
    path.write_bytes(CLEAN_SVG)
    assert validate_file(path, formats.detected("svg")) == {"width": 64, "height": 48}


@pytest.mark.parametrize(("root_attrs", "size"), [
    ('viewBox="0 0 300 150"', (300, 150)),
    ('width="200px" viewBox="0,0,300,150"', (200, 100)),
    ('height="30" viewBox="0 0 300 150"', (60, 30)),
    ('width="100%" height="100%"', (None, None)),
    ('width="10cm" height="inf" viewBox="0 0 nan 5"', (None, None)),
])  # fmt: skip
def test_svg_size(root_attrs, size):
    assert svg.svg_size(_svg("<rect/>", root_attrs)) == size


@pytest.mark.parametrize("head", [
    b"\xef\xbb\xbf<svg xmlns='http://www.w3.org/2000/svg'/>",  # BOM: libmagic says text/plain
    b"<?xml version='1.0'?>\n<!-- a -->\n<?pi x?>\n<svg:svg xmlns:svg='http://www.w3.org/2000/svg'/>",
    b"<!DOCTYPE svg PUBLIC '-//W3C//DTD SVG 1.1//EN' 'http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd'>\n<svg>",
    b"<!DOCTYPE svg [<!ENTITY a '>'>]><svg>",
])  # fmt: skip
def test_svg_is_sniffed_behind_any_prolog(head):
    assert sniff(head).format == "svg"


def test_svg_sniff_is_linear_on_crafted_prologs():
    # Many comments and an unclosed one: a backtracking regex would not return.
    with pytest.raises(FormatError):
        sniff(b"<!-- a -->" * 6000 + b"<html/>")
    with pytest.raises(FormatError):
        sniff(b"<!--" * 16000)


UNSAFE = {
    "script": ("<script>alert(1)</script>", "<script> element"),
    "script in another namespace": ('<h:script xmlns:h="urn:x">alert(1)</h:script>', "<script> element"),
    "event handler": ('<rect onclick="alert(1)"/>', "event handler onclick"),
    "event handler on root": ("", "event handler onload"),
    "foreignObject": ("<foreignObject><div/></foreignObject>", "<foreignobject> element"),
    "external href": ('<use href="https://evil.example/sprite.svg#a"/>', "is not a #fragment"),
    "external xlink:href": ('<image xlink:href="http://evil.example/x.png"/>', "is not a #fragment"),
    "relative href": ('<use href="other.svg#a"/>', "is not a #fragment"),
    "link out": ('<a href="https://example.com"><text>x</text></a>', "is not a #fragment"),
    "data svg image": ('<image href="data:image/svg+xml;base64,PHN2Zz4="/>', "is not a #fragment"),
    "data png outside image": ('<use href="data:image/png;base64,iVBORw0KGgo="/>', "is not a #fragment"),
    "javascript href": ('<a href="java\tscript:alert(1)"><text>x</text></a>', "javascript: URL"),
    "javascript anywhere": ('<set attributeName="fill" to="javascript:alert(1)"/>', "javascript: URL"),
    "css url in style element": ("<style>rect { fill: url(https://evil.example/a) }</style>", "points outside"),
    "css url in style attribute": ('<rect style="fill:url(//evil.example/a)"/>', "points outside"),
    "css url in presentation attribute": ('<rect fill="url(http://evil.example/#g)"/>', "points outside"),
    "css escape hides url": ('<rect style="background:\\75 rl(http://evil.example/a)"/>', "points outside"),
    "css @import": ("<style>@import 'https://evil.example/a.css';</style>", "@import"),
    "css expression": ('<rect style="width: expression(alert(1))"/>', "expression()"),
    "iframe": ('<iframe src="https://evil.example"/>', "<iframe> element"),
    "embed": ('<embed src="x.swf"/>', "<embed> element"),
    "object": ('<object data="x.pdf"/>', "<object> element"),
    "audio": ('<audio src="x.mp3"/>', "<audio> element"),
    "video": ('<video src="x.mp4"/>', "<video> element"),
    "embedded html": ('<h:img xmlns:h="http://www.w3.org/1999/xhtml" src="http://t.example/p.gif"/>',
                      "embedded HTML element"),
    "animate href": ('<a href="#x"><animate attributeName="href" to="#y"/></a>', "animates href"),
    "set xlink:href": ('<a href="#x"><set attributeName="xlink:href" to="#y"/></a>', "animates xlink:href"),
    "xml:base": ('<g xml:base="https://evil.example/"><use href="#a"/></g>', "xml:base"),
    "stylesheet processing instruction": ("", "processing instruction <?xml-stylesheet?>"),
}


@pytest.mark.parametrize("case", UNSAFE)
def test_unsafe_svg_constructs_are_caught(case):
    body, problem = UNSAFE[case]
    data = _svg(body, 'onload="alert(1)"' if case == "event handler on root" else "")
    if case == "stylesheet processing instruction":
        data = b'<?xml-stylesheet type="text/css" href="https://evil.example/a.css"?>' + data
    with pytest.raises(svg.UnsafeSvg) as err:
        svg.check_svg(data)
    assert problem in str(err.value)
    assert str(err.value).startswith("unsafe SVG: ")
    assert isinstance(err.value, FormatError)  # callers catching FormatError see it too


def test_every_problem_is_listed():
    body = "".join(b for b, _ in UNSAFE.values())
    with pytest.raises(svg.UnsafeSvg) as err:
        svg.check_svg(_svg(body, 'onload="x()"'))
    for case, (_, problem) in UNSAFE.items():
        if case != "stylesheet processing instruction":
            assert any(problem in p for p in err.value.problems), case


@pytest.mark.parametrize("doctype", [
    # Billion laughs: entities expanding to gigabytes.
    ('<!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
     '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'),
    '<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>',  # external entity
    '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">',
])  # fmt: skip
def test_doctype_is_unsafe(doctype, tmp_path):
    data = (doctype + '<svg xmlns="http://www.w3.org/2000/svg"><text>&d;</text></svg>').encode()
    if "ENTITY d" not in doctype:
        data = data.replace(b"&d;", b"x")
    with pytest.raises(svg.UnsafeSvg, match="DOCTYPE"):
        svg.check_svg(data)
    path = tmp_path / "x.svg"
    path.write_bytes(data)
    with pytest.raises(svg.UnsafeSvg):  # validate_file refuses it the same way
        validate_file(path, formats.detected("svg"))


@pytest.mark.parametrize("data", [
    b'<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>',
    b"<svg><rect/></svg>",  # no SVG namespace: not SVG to a browser either
    b'<x:svg xmlns:x="urn:not-svg"/>',
    b'<svg xmlns="http://www.w3.org/2000/svg"><rect></svg>',  # malformed
])  # fmt: skip
def test_not_an_svg_document(data):
    with pytest.raises(FormatError, match="^not an SVG document") as err:
        svg.check_svg(data)
    assert not isinstance(err.value, svg.UnsafeSvg)


# -------------------------------------------------------------------------- previews

def test_video_poster_is_a_480px_jpeg(samples, tmp_path):
    for name, size in [("video.mp4", (480, 360)), ("video.webm", (480, 360)), ("portrait.mp4", (360, 480))]:
        out = tmp_path / f"{name}.poster"
        assert previews.make_preview(samples[name], sniff(_head(samples[name])), out) == "image/jpeg"
        with Image.open(out) as im:
            assert (im.format, im.size) == ("JPEG", size)


def test_audio_waveform_is_an_800x200_png_with_a_wave(samples, tmp_path):
    out = tmp_path / "wave"
    assert previews.make_preview(samples["audio.flac"], formats.detected("flac"), out) == "image/png"
    with Image.open(out) as im:
        assert (im.format, im.size) == ("PNG", (800, 200))
        pixels = np.asarray(im.convert("RGBA"))
    drawn = pixels[..., 3] > 0
    assert drawn.mean() > 0.05  # a 440 Hz tone fills a band around the middle
    assert tuple(pixels[drawn][0][:3]) == (0x3B, 0x82, 0xF6)


def test_audio_waveform_ignores_cover_art(samples, tmp_path):
    out = tmp_path / "wave"
    assert previews.make_preview(samples["cover.mp3"], formats.detected("mp3"), out) == "image/png"
    with Image.open(out) as im:
        assert im.size == (800, 200)


def test_image_thumbnails(samples, tmp_path):
    for name, size in [("large.png", (320, 160)), ("image.jpg", (64, 48)), ("image.avif", (64, 48)),
                       ("rotated.jpg", (48, 64))]:  # fmt: skip
        out = tmp_path / f"{name}.thumb"
        assert previews.make_preview(samples[name], sniff(_head(samples[name])), out) == "image/webp"
        with Image.open(out) as im:
            assert (im.format, im.size) == ("WEBP", size)
            assert max(im.size) <= previews.THUMBNAIL_SIZE


@pytest.mark.parametrize("name", ["image.gif", "animated.webp"])
def test_animated_image_thumbnail_is_the_first_frame(samples, tmp_path, name):
    out = tmp_path / "thumb"
    previews.make_preview(samples[name], sniff(_head(samples[name])), out)
    with Image.open(out) as im:
        assert getattr(im, "n_frames", 1) == 1
        r, g, b = im.convert("RGB").getpixel((32, 24))
    assert r > 200 and g < 60 and b < 60  # red: the first frame, not lime or blue


def test_svg_preview_is_the_svg(tmp_path):
    src = tmp_path / "clean.svg"
    src.write_bytes(CLEAN_SVG)
    out = tmp_path / "preview"
    assert previews.make_preview(src, formats.detected("svg"), out) == "image/svg+xml"
    assert out.read_bytes() == CLEAN_SVG


def test_failed_preview_leaves_no_file(samples, tmp_path):
    out = tmp_path / "preview"
    with pytest.raises(previews.PreviewError, match="ffmpeg failed"):
        previews.make_preview(samples["truncated.mp4"], formats.detected("mp4"), out)
    with pytest.raises(previews.PreviewError, match="unsafe SVG"):
        bad = tmp_path / "bad.svg"
        bad.write_bytes(_svg("<script>x</script>"))
        previews.make_preview(bad, formats.detected("svg"), out)
    with pytest.raises(previews.PreviewError, match="thumbnail failed"):
        previews.make_preview(samples["notes.txt"], formats.detected("png"), out)
    assert list(tmp_path.iterdir()) == [bad]


# ----------------------------------------------------------------- http(s) sources

class _RangeHandler(BaseHTTPRequestHandler):
    """Serves the samples folder with byte ranges, as S3 does for a presigned GET."""

    root: Path
    requests: list[tuple[str, str | None]]

    def do_GET(self):
        self._serve(body=True)

    def do_HEAD(self):
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        wanted = self.headers.get("Range")
        self.requests.append((self.path, wanted))
        path = self.root / self.path.split("?", 1)[0].lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start, end, status = 0, len(data) - 1, 200
        if m := re.fullmatch(r"bytes=(\d+)-(\d*)", wanted or ""):
            start, end, status = int(m[1]), min(int(m[2] or end), end), 206
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if body:
            try:
                self.wfile.write(data[start:end + 1])
            except (BrokenPipeError, ConnectionResetError):
                pass  # ffmpeg hangs up once it has what it needs

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def http_base(samples):
    handler = type("Handler", (_RangeHandler,), {"root": samples["video.mp4"].parent, "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    finally:
        server.shutdown()
        server.server_close()


def test_validate_and_preview_from_an_http_url(http_base, tmp_path):
    base, requests = http_base
    url = f"{base}/noise.mp4?X-Amz-Signature=s3cr3t"
    detected = formats.detected("mp4")
    media = validate_file(url, detected)
    assert (media["width"], media["height"], media["codec"], media["audio_codec"]) == (160, 120, "h264", "aac")
    assert media["duration_seconds"] == pytest.approx(2.0, abs=0.15)
    # The moov is behind 2 MB of media data: ffprobe jumped there with a range request.
    assert any(path.startswith("/noise.mp4") and rng and not rng.startswith("bytes=0-") for path, rng in requests)
    out = tmp_path / "poster"
    assert previews.make_preview(url, detected, out) == "image/jpeg"
    with Image.open(out) as im:
        assert (im.format, im.size) == ("JPEG", (480, 360))


def test_url_errors_do_not_leak_the_url(http_base, tmp_path):
    base, _ = http_base
    url = f"{base}/missing.mp4?X-Amz-Signature=s3cr3t"
    with pytest.raises(FormatError) as err:
        validate_file(url, formats.detected("mp4"))
    assert "s3cr3t" not in str(err.value) and "127.0.0.1" not in str(err.value)
    with pytest.raises(previews.PreviewError) as perr:
        previews.make_preview(url, formats.detected("mp4"), tmp_path / "poster")
    assert "s3cr3t" not in str(perr.value) and "127.0.0.1" not in str(perr.value)
    assert not (tmp_path / "poster").exists()


@pytest.mark.parametrize("name", ["image.gif", "animated.webp"])
def test_animated_samples_have_several_frames(samples, name):
    # Keeps the first-frame thumbnail test honest: the samples really are animated.
    with Image.open(io.BytesIO(samples[name].read_bytes())) as im:
        assert im.n_frames == 3
