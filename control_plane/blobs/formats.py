"""What a blob is, judged by its bytes: sniffing, declared-type checks, deep validation.

Three steps, cheapest first:
- `sniff(head)`: the first 64 KiB name one supported format (or raise FormatError).
  libmagic is the base; container headers are parsed here where it is coarse (ISO-BMFF
  brands, EBML doctype, RIFF form type, ADTS/MPEG frame sync, SVG behind a BOM).
- `check_declared(content_type, detected)`: the declared MIME type must name that format.
- `validate_file(source, detected)`: ffprobe (audio/video, local path or http(s) URL),
  Pillow (raster images) or the SVG checker prove the whole file is usable, and return
  its media metadata.

Supported: video MP4 MOV WebM AVI; audio MP3 WAV AAC FLAC OGG M4A; image JPG PNG WebP
SVG GIF AVIF. Anything else is a FormatError, whose message is shown to the uploader.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import magic

from control_plane.blobs import svg
from control_plane.blobs.format_error import FormatError

SNIFF_BYTES = 64 * 1024
FFPROBE_TIMEOUT_S = 30
MAX_IMAGE_PIXELS = 100_000_000
MAX_SVG_BYTES = 16 << 20
# Packets ffprobe decodes to prove the streams are decodable (then it flushes decoders).
DECODE_PACKETS = 64


@dataclass(frozen=True)
class Detected:
    format: str  # "mp4","mov","webm","avi","mp3","wav","aac","flac","ogg","m4a","jpg","png","webp","svg","gif","avif"
    kind: str  # "video" | "audio" | "image"
    content_type: str  # canonical MIME


# format -> (kind, canonical MIME, label for messages, other accepted declared types)
_FORMATS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "mp4": ("video", "video/mp4", "MP4 video", ()),
    "mov": ("video", "video/quicktime", "MOV video", ()),
    "webm": ("video", "video/webm", "WebM video", ()),
    "avi": ("video", "video/x-msvideo", "AVI video", ("video/avi", "video/msvideo")),
    "mp3": ("audio", "audio/mpeg", "MP3 audio", ("audio/mp3",)),
    "wav": ("audio", "audio/wav", "WAV audio", ("audio/x-wav", "audio/wave", "audio/vnd.wave")),
    "aac": ("audio", "audio/aac", "AAC audio", ("audio/x-aac", "audio/aacp")),
    "flac": ("audio", "audio/flac", "FLAC audio", ("audio/x-flac",)),
    "ogg": ("audio", "audio/ogg", "Ogg audio", ("application/ogg", "audio/vorbis", "audio/opus")),
    "m4a": ("audio", "audio/mp4", "M4A audio", ("audio/x-m4a", "audio/m4a")),
    "jpg": ("image", "image/jpeg", "JPEG image", ("image/jpg",)),
    "png": ("image", "image/png", "PNG image", ()),
    "webp": ("image", "image/webp", "WebP image", ()),
    "svg": ("image", "image/svg+xml", "SVG image", ()),
    "gif": ("image", "image/gif", "GIF image", ()),
    "avif": ("image", "image/avif", "AVIF image", ()),
}
FORMATS = tuple(_FORMATS)

# ffmpeg demuxer per format: forcing it means ffprobe/ffmpeg never re-guess the container
# (a file sniffed as AVI is read as AVI, not as whatever else it may also parse as).
DEMUXERS = {"mp4": "mov", "mov": "mov", "m4a": "mov", "webm": "matroska", "avi": "avi", "mp3": "mp3",
            "wav": "wav", "aac": "aac", "flac": "flac", "ogg": "ogg"}  # fmt: skip
PILLOW_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "avif": "AVIF"}


def detected(fmt: str) -> Detected:
    kind, content_type, _, _ = _FORMATS[fmt]
    return Detected(format=fmt, kind=kind, content_type=content_type)


def label(fmt: str) -> str:
    """Human name of a format for messages, e.g. "PNG image"."""
    return _FORMATS[fmt][2]


# ---------------------------------------------------------------------------- sniffing

def sniff(head: bytes) -> Detected:
    """The supported format the first bytes of a file (pass 64 KiB) belong to.

    Raises FormatError("unsupported format: <what libmagic said>") otherwise.
    """
    if not head:
        raise FormatError("unsupported format: empty file")
    mime = magic.from_buffer(head, mime=True)
    fmt = _by_header(head, mime)
    if fmt is None:
        raise FormatError(f"unsupported format: {_describe(head, mime)}")
    return detected(fmt)


def _describe(head: bytes, mime: str) -> str:
    text = " ".join(magic.from_buffer(head).split())  # one line: libmagic nests with newlines
    return f"{text[:120]} ({mime})"


def _by_header(head: bytes, mime: str) -> str | None:
    """The format from container headers, libmagic's MIME type where headers say nothing."""
    if head[4:8] == b"ftyp":
        return _iso_bmff(head)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if _ebml_doctype(head) == b"webm" else None  # plain Matroska is not supported
    if head[:4] == b"RIFF":
        return {b"WAVE": "wav", b"AVI ": "avi", b"WEBP": "webp"}.get(head[8:12])
    if head[:4] in (b"RF64", b"BW64"):  # WAV over 4 GiB
        return "wav" if head[8:12] == b"WAVE" else None
    if head.startswith(b"OggS"):
        # Theora's identification header sits in the first pages: Ogg video is not supported.
        return None if b"\x80theora" in head else "ogg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"ID3"):
        return _after_id3(head)
    if _is_adts(head, 0):
        return "aac"
    if _mpeg_audio_frame(head, 0):
        return "mp3"
    if _looks_like_svg(head):
        return "svg"
    if mime == "video/quicktime":  # old QuickTime files start with moov/mdat/wide, no ftyp
        return "mov"
    return None


_AVIF_BRANDS = {b"avif", b"avis"}
_M4A_BRANDS = {b"M4A ", b"M4B "}  # audio-only brands (M4P is DRM-protected: not decodable)
_IMAGE_CONTAINERS = {b"mif1", b"msf1", b"miaf"}  # HEIF family: AVIF only with an avif/avis brand


def _iso_bmff(head: bytes) -> str | None:
    size = struct.unpack(">I", head[:4])[0]
    box = head[8:min(size, len(head))] if size >= 16 else b""
    major = box[:4]
    brands = {box[i:i + 4] for i in range(8, len(box) - 3, 4)} | {major}
    if major == b"qt  ":
        return "mov"
    if major in _AVIF_BRANDS or (major in _IMAGE_CONTAINERS and brands & _AVIF_BRANDS):
        return "avif"
    if major in _M4A_BRANDS:
        return "m4a"
    if major in _IMAGE_CONTAINERS or major.startswith((b"hei", b"hev", b"3g", b"crx", b"jp")):
        return None  # HEIC, 3GPP, Canon raw, JPEG 2000: not supported
    # Generic brands (isom, mp41, mp42, ...): audio-only when the moov in the head says so.
    handlers = _handler_types(head)
    if b"soun" in handlers and b"vide" not in handlers:
        return "m4a"
    return "mp4"


def _handler_types(head: bytes) -> set[bytes]:
    """Track handler types ('vide', 'soun', ...) of a moov box that lies within the head."""
    pos = 0
    while pos + 8 <= len(head):
        size, kind = struct.unpack(">I4s", head[pos:pos + 8])
        if size == 1 and pos + 16 <= len(head):
            size = struct.unpack(">Q", head[pos + 8:pos + 16])[0]
        if kind == b"moov":
            moov = head[pos:pos + size]
            # hdlr box: size, 'hdlr', version/flags, pre_defined, handler_type.
            return {moov[m.start() + 12:m.start() + 16] for m in re.finditer(b"hdlr", moov)}
        if size < 8:
            break
        pos += size
    return set()


def _ebml_doctype(head: bytes) -> bytes | None:
    """DocType (0x4282) of the EBML header: b"webm" or b"matroska"."""
    def vint(pos: int, keep_marker: bool) -> tuple[int, int]:
        first = head[pos]
        length = 9 - first.bit_length() if first else 9
        value = first if keep_marker else first & ((1 << (8 - length)) - 1)
        for b in head[pos + 1:pos + length]:
            value = value << 8 | b
        return value, pos + length

    try:
        _, pos = vint(0, True)
        header_size, pos = vint(pos, False)
        end = min(pos + header_size, len(head))
        while pos < end:
            element, pos = vint(pos, True)
            size, pos = vint(pos, False)
            if element == 0x4282:
                return head[pos:pos + size].rstrip(b"\0")
            pos += size
    except IndexError:
        pass
    return None


def _after_id3(head: bytes) -> str | None:
    """ID3v2 tags precede MP3 (usually), AAC or FLAC: look at what follows the tag."""
    if len(head) < 10:
        return None
    size = 0
    for b in head[6:10]:  # syncsafe integer: 7 bits a byte
        size = size << 7 | (b & 0x7F)
    pos = 10 + size + (10 if head[5] & 0x10 else 0)  # footer flag
    while pos < len(head) and head[pos] == 0:  # padding between the tag and the first frame
        pos += 1
    if pos + 4 > len(head):
        return "mp3"  # a large tag (cover art) hides the audio: ffprobe checks it is MP3
    if head[pos:pos + 4] == b"fLaC":
        return "flac"
    if _is_adts(head, pos):
        return "aac"
    return "mp3" if _mpeg_audio_frame(head, pos) else None


def _is_adts(head: bytes, pos: int) -> bool:
    # 12-bit sync, layer 00 (0xFFF1/0xFFF9, or 0xFFF0/0xFFF8 with a CRC), valid sampling index.
    return (len(head) >= pos + 7 and head[pos] == 0xFF and head[pos + 1] & 0xF6 == 0xF0
            and (head[pos + 2] >> 2) & 0xF < 13)  # fmt: skip


_MP3_KBPS = {3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),  # MPEG-1
             2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}  # MPEG-2/2.5
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_audio_frame(head: bytes, pos: int) -> bool:
    """An MPEG layer III frame header at pos, and, if the head reaches it, the next one."""
    def frame_length(p: int) -> int | None:
        if len(head) < p + 4 or head[p] != 0xFF or head[p + 1] & 0xE0 != 0xE0:
            return None
        version, layer = (head[p + 1] >> 3) & 3, (head[p + 1] >> 1) & 3
        bitrate_index, rate_index = head[p + 2] >> 4, (head[p + 2] >> 2) & 3
        if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
            return None  # reserved version, not layer III, free/bad bitrate, reserved rate
        kbps = _MP3_KBPS[3 if version == 3 else 2][bitrate_index]
        rate = _MP3_RATES[version][rate_index]
        slot = 144 if version == 3 else 72
        return slot * kbps * 1000 // rate + ((head[p + 2] >> 1) & 1)

    length = frame_length(pos)
    if length is None:
        return False
    nxt = pos + length
    return nxt + 4 > len(head) or frame_length(nxt) is not None


_SVG_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?svg[\s/>]")


def _looks_like_svg(head: bytes) -> bool:
    """The first element, after the prolog (XML declaration, comments, processing
    instructions, DOCTYPE), is <svg>; svg.check_svg judges the rest.

    A loop, not one regex: nested lazy patterns backtrack exponentially on crafted input.
    """
    text = head.removeprefix(b"\xef\xbb\xbf")
    pos = 0
    while True:
        while pos < len(text) and text[pos] in b" \t\r\n":
            pos += 1
        if text.startswith((b"<?", b"<!--"), pos):
            close = b"?>" if text.startswith(b"<?", pos) else b"-->"
            end = text.find(close, pos)
        elif text.startswith(b"<!DOCTYPE", pos):
            close, end, bracket = b">", text.find(b">", pos), text.find(b"[", pos)
            if 0 <= bracket < end:  # internal subset: its declarations contain ">"
                end = text.find(b">", text.find(b"]", bracket))
        else:
            return bool(_SVG_ROOT.match(text, pos))
        if end < 0:
            return False
        pos = end + len(close)


# ------------------------------------------------------------------ declared type

def _declared_types(fmt: str) -> set[str]:
    _, canonical, _, aliases = _FORMATS[fmt]
    return {canonical, *aliases}


def check_declared(declared_content_type: str, detected: Detected) -> None:
    """Raise FormatError unless the declared MIME type names the detected format.

    Case and parameters (`; charset=...`) are ignored; common aliases are accepted
    (audio/x-wav, image/jpg, ...). An audio-only ISO file (m4a) declared video/mp4 is
    an error: it has nothing to show.
    """
    declared = (declared_content_type or "").split(";", 1)[0].strip().lower()
    if declared not in _declared_types(detected.format):
        raise FormatError(f"declared {declared or 'no content type'} but the bytes are {label(detected.format)}")


# ---------------------------------------------------------------- deep validation

def validate_file(source: str | Path, detected: Detected) -> dict:
    """Prove the whole file is usable as its detected format; return its media metadata.

    Video/audio: ffprobe reads `source` (a local path, or an http(s) URL such as a
    presigned GET, read with range requests) and decodes the first packets. Video needs
    a decodable video stream; audio a decodable audio stream and no video other than
    attached cover art. Returns duration_seconds, width, height (as displayed, rotation
    applied), codec (of the main stream), audio_codec, bitrate_kbps (None where n/a).

    Raster images (local path): Pillow verifies and decodes the first frame; more than
    MAX_IMAGE_PIXELS is refused before anything is allocated. SVG (local path): must pass
    svg.check_svg. Both return width and height (None when an SVG does not say).
    """
    if detected.kind in ("video", "audio"):
        return _validate_media(source, detected)
    if detected.format == "svg":
        return _validate_svg(Path(source))
    return _validate_raster(Path(source), detected)


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def ffmpeg_input_args(source: str | Path, detected: Detected) -> list[str]:
    """`-i` and the options before it for ffprobe/ffmpeg: the demuxer forced to the sniffed
    format, and only the protocols the source needs (no file reads from a URL's content,
    no network from a local file's)."""
    if is_url(source):
        protocols, target = "http,https,tls,tcp", str(source)
    else:
        protocols, target = "file", "file:" + str(Path(source).resolve())  # "file:": no other protocol by name
    return ["-protocol_whitelist", protocols, "-f", DEMUXERS[detected.format], "-i", target]


def redact(text: str, source: str | Path) -> str:
    """Tool output without the source: a presigned URL is a credential, a path is internal."""
    if not is_url(source):
        text = text.replace("file:" + str(Path(source).resolve()), "<input>").replace(str(source), "<input>")
    return re.sub(r"https?://\S+", "<url>", text)


def _tail(stderr: str, source: str | Path, lines: int = 5) -> str:
    return " | ".join(redact(stderr, source).strip().splitlines()[-lines:]) or "no error output"


def _validate_media(source: str | Path, detected: Detected) -> dict:
    args = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
            "-show_frames", "-show_entries", "frame=media_type,stream_index",
            "-read_intervals", f"%+#{DECODE_PACKETS}", *ffmpeg_input_args(source, detected)]  # fmt: skip
    what = label(detected.format)
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=FFPROBE_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise FormatError(f"could not read the {what} within {FFPROBE_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise FormatError(f"not a readable {what}: {_tail(proc.stderr, source)}")
    try:
        probe = json.loads(proc.stdout or "{}")
    except ValueError:
        raise FormatError(f"not a readable {what}: unexpected ffprobe output") from None
    streams = probe.get("streams") or []
    decoded = {f.get("stream_index") for f in probe.get("frames") or []}
    video = [s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if detected.kind == "video":
        good = [s for s in video if s.get("index") in decoded]
        if not good:
            raise FormatError(f"not a usable {what}: no decodable video stream"
                              + (" (the video streams could not be decoded)" if video else ""))
        main = good[0]
    else:
        if video:
            raise FormatError(f"not a usable {what}: it has a video stream ({video[0].get('codec_name')}); "
                              "upload videos as video")
        good = [s for s in audio if s.get("index") in decoded]
        if not good:
            raise FormatError(f"not a usable {what}: no decodable audio stream"
                              + (" (the audio streams could not be decoded)" if audio else ""))
        main = good[0]
    fmt = probe.get("format") or {}
    width, height = main.get("width"), main.get("height")
    if width and height and abs(_rotation(main)) % 180 == 90:
        width, height = height, width
    audio_main = next((s for s in audio if s.get("index") in decoded), audio[0] if audio else None)
    return {
        "duration_seconds": _float(fmt.get("duration")) or _float(main.get("duration")),
        "width": width if detected.kind == "video" else None,
        "height": height if detected.kind == "video" else None,
        "codec": main.get("codec_name"),
        "audio_codec": audio_main.get("codec_name") if audio_main else None,
        "bitrate_kbps": round(b / 1000) if (b := _float(fmt.get("bit_rate"))) else None,
    }


def _float(value) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return round(f, 3) if f > 0 else None


def _rotation(stream: dict) -> int:
    """Display rotation in degrees: side data (ffmpeg >= 5) or the older rotate tag."""
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return int(float(side["rotation"]))
    try:
        return int((stream.get("tags") or {}).get("rotate", 0))
    except ValueError:
        return 0


def _validate_raster(path: Path, detected: Detected) -> dict:
    from PIL import Image

    what = label(detected.format)
    try:
        with Image.open(path, formats=[PILLOW_FORMATS[detected.format]]) as im:
            _check_pixels(im.size)
            im.verify()  # structure and checksums (PNG) without decoding
        with Image.open(path, formats=[PILLOW_FORMATS[detected.format]]) as im:
            width, height = im.size
            im.draft("RGB", (1024, 1024))  # JPEG: decode at a reduced scale, enough to prove it decodes
            im.load()  # the first frame really decodes (verify alone misses truncated JPEGs)
            orientation = im.getexif().get(0x0112, 1)
    except FormatError:
        raise
    except Image.DecompressionBombError as exc:
        raise FormatError(f"image too large: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for malformed data
        raise FormatError(f"not a readable {what}: {exc}") from None
    if orientation in (5, 6, 7, 8):  # EXIF: shown rotated by 90 degrees
        width, height = height, width
    return {"width": width, "height": height}


def _check_pixels(size: tuple[int, int]) -> None:
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise FormatError(f"image too large: {size[0]}x{size[1]} is more than {MAX_IMAGE_PIXELS // 1_000_000} megapixels")


def _validate_svg(path: Path) -> dict:
    with open(path, "rb") as f:
        data = f.read(MAX_SVG_BYTES + 1)
    if len(data) > MAX_SVG_BYTES:
        raise FormatError(f"SVG too large: more than {MAX_SVG_BYTES >> 20} MiB")
    svg.check_svg(data)
    width, height = svg.svg_size(data)
    return {"width": width, "height": height}
