"""One language's campaign video: screenshots + a voice track -> a 1080x1920 H.264/AAC mp4 and a poster.

The video is an intro title card, then scenes cut from the page's screenshots while the voice
speaks, then an end card with the page's domain::

    | intro (title) 1.8 s | scene | scene | ... (the voice track, V s) | end (domain) 2.0 s |

Its duration is exactly intro + V + end (frame-rounded, 30 fps). The voice plays over the scenes
only: the cards are silent, so the title is read before anyone speaks and the captions never sit
on a card. The voice is loudness-normalised to -14 LUFS like every clip the farm renders.

Scenes last about 5 s (one screenshot each, in page order; cycled when there are few, spread over
the page when there are many), cut at the sentence boundary nearest each nominal cut. Each scene
moves gently: zoompan on a 2x supersampled copy of the screenshot (its crop lands on whole
input pixels, so supersampling makes every step half an output pixel: no visible jitter), with
smoothstep easing (no jolt at either end). Neighbouring segments cross-fade for 0.4 s; the cross-
fade eats into the later segment, so every boundary falls where the timeline says.

Captions, the title and the domain are one ASS document burned in by libass after the cross-fades,
so the whole video is one ffmpeg run (run_ffmpeg: progress and cancel). libass wraps only at
spaces, so the layout breaks every line itself, measuring the text with Pillow in the very font
libass will use (fontconfig's match for the family named in the style): Japanese and Chinese break
between characters (never before closing punctuation or small kana, never after opening brackets),
Korean at spaces, everything else at spaces, and a word wider than the frame anywhere. A sentence
that needs more than three lines is shown as pages, each for its share of the sentence's time.

Fonts: DejaVu Sans (fonts-dejavu-core) for Latin-script languages, Noto Sans CJK JP/SC/TC/KR
(fonts-noto-cjk) for Japanese, Chinese and Korean; a missing font is an error rather than tofu.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import struct
import subprocess
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pysubs2 import Alignment, Color, SSAEvent, SSAFile, SSAStyle

from reelfarm.media import MediaError, dies_with_parent, probe
from render_nodes.campaigns.types import SpokenSentence, VoiceTrack
from render_nodes.captions import _escape, ass_filter, caption_area
from render_nodes.ffmpeg import ENCODERS, LOUDNORM, Cancelled, run_ffmpeg, video_encoder_args

WIDTH, HEIGHT, FPS = 1080, 1920, 30
INTRO_SECONDS = 1.8
END_SECONDS = 2.0
SCENE_SECONDS = 5.0  # a screenshot's nominal time on screen
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")

_CROSSFADE_FRAMES = 12  # 0.4 s
_SUPERSAMPLE = 2  # zoompan crops whole input pixels: 2x makes each step half an output pixel
_SNAP_SECONDS = 1.0  # a scene cut moves to a sentence boundary this close
_MIN_SCENE_SECONDS = 2.5
_POSTER_AT = 0.7  # of the intro: the title card, fully faded in

# (zoom from, zoom to, focus x from, focus y from, focus x to, focus y to): focus is where the
# crop sits in the room the zoom leaves, 0 = left/top, 1 = right/bottom. Scene k moves as
# _MOVES[k % len(_MOVES)].
_MOVES = (
    (1.00, 1.10, 0.5, 0.15, 0.5, 0.35),  # push in on the upper middle
    (1.10, 1.10, 0.5, 0.0, 0.5, 1.0),  # pan down the page
    (1.12, 1.03, 0.5, 0.5, 0.5, 0.5),  # pull back
    (1.05, 1.12, 0.25, 0.5, 0.75, 0.45),  # drift right while pushing in
)
_CARD_ZOOM = 0.04  # the blurred card backgrounds creep in by this much

# Layout, in output pixels (ASS PlayRes = the output size). Sizes are em heights; libass sizes a
# font by ascender + descender, so each font converts em to its own \fs (_Font.font_size).
_CAPTION_EM = 0.034 * HEIGHT
_CAPTION_MAX_LINES = 3
_CAPTION_BOX_PAD = round(0.011 * HEIGHT)  # BorderStyle 4 pads the box by the shadow size
_TITLE_EM, _TITLE_MIN_EM, _TITLE_MAX_LINES = 0.050 * HEIGHT, 0.030 * HEIGHT, 4
_DOMAIN_EM, _DOMAIN_MIN_EM = 0.042 * HEIGHT, 0.022 * HEIGHT
_CARD_SIDE_MARGIN = round(0.08 * WIDTH)
_WIDTH_SAFETY = 0.97  # Pillow and libass shape alike; this absorbs the rest
_HOLD_GAP_SECONDS = 0.6  # a caption stays up through a shorter pause
_ELLIPSIS = "\u2026"

_CJK_FAMILIES = {"ja": "Noto Sans CJK JP", "zh": "Noto Sans CJK SC", "zh-hant": "Noto Sans CJK TC",
                 "ko": "Noto Sans CJK KR"}  # fmt: skip
LATIN_FAMILY = "DejaVu Sans"

# Kinsoku: characters a line may not start with, and ones it may not end with.
_NO_BREAK_BEFORE = frozenset(
    "、。，．・：；？！゛゜ヽヾゝゞ々〻ー’”）〕］｝〉》」』】〙〗〟｠»…‥〜～"
    "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶ"
    ",.!?:;)]}%'\"\u00b0\u2030"
)
_NO_BREAK_AFTER = frozenset("（〔［｛〈《「『【〘〖〝｟«‘“([{¥$£€#")


@dataclass(frozen=True)
class ComposedVideo:
    video: Path  # 1080x1920 H.264 + AAC mp4, +faststart
    poster: Path  # JPEG, the title card
    duration_seconds: float  # as probed
    width: int
    height: int


# --------------------------------------------------------------------------- fonts


@dataclass(frozen=True)
class _Font:
    family: str
    path: str
    index: int
    em_per_size: float  # em height per unit of ASS font size (libass: size = winAscent + winDescent)

    def font_size(self, em_px: float) -> int:
        """The ASS \\fs that makes the em ``em_px`` pixels."""
        return max(1, round(em_px / self.em_per_size))

    def measure(self, font_size: int) -> Callable[[str], float]:
        """Advance width in pixels of a line of text at ASS size ``font_size``."""
        ref = _pil_font(self.path, self.index)
        scale = font_size * self.em_per_size / _REF_EM
        return lambda text: ref.getlength(text) * scale


_REF_EM = 200


@functools.lru_cache(maxsize=16)
def _pil_font(path: str, index: int):  # PIL is imported lazily: only a render needs it
    from PIL import ImageFont

    return ImageFont.truetype(path, size=_REF_EM, index=index)


def font_family(language: str) -> str:
    """The family the captions of ``language`` are set in."""
    lang = language.lower()
    if lang.startswith("zh") and any(tag in lang for tag in ("hant", "-tw", "-hk", "-mo")):
        return _CJK_FAMILIES["zh-hant"]
    return _CJK_FAMILIES.get(lang.split("-")[0], LATIN_FAMILY)


def is_cjk(language: str) -> bool:
    return font_family(language) != LATIN_FAMILY


@functools.lru_cache(maxsize=16)
def find_font(family: str, bold: bool = True) -> _Font:
    """fontconfig's file for ``family`` (what libass will load), refusing a substitute."""
    pattern = f"{family}:weight={'bold' if bold else 'regular'}"
    try:
        out = subprocess.run(dies_with_parent(["fc-match", "-f", "%{file}\n%{index}\n%{family}\n", pattern]),
                             capture_output=True, text=True, timeout=20, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise MediaError("fontconfig's fc-match is not available (apt: fontconfig)") from exc
    path, index, families = (out.split("\n") + ["", "", ""])[:3]
    if family.lower() not in [f.strip().lower() for f in families.split(",")] or not path:
        package = "fonts-noto-cjk" if "CJK" in family else "fonts-dejavu-core"
        raise MediaError(f"font {family!r} is not installed (apt: {package}); its text would not render")
    return _Font(family, path, int(index or 0), _em_per_size(path, int(index or 0)))


def _em_per_size(path: str, index: int) -> float:
    """units_per_em / (usWinAscent + usWinDescent), as libass sizes fonts (hhea as a fallback)."""
    with open(path, "rb") as f:
        base = 0
        if f.read(4) == b"ttcf":
            f.seek(12 + 4 * index)
            (base,) = struct.unpack(">I", f.read(4))
        f.seek(base + 4)
        (count,) = struct.unpack(">H", f.read(2))
        f.seek(base + 12)
        tables = {}
        for _ in range(count):
            tag, _checksum, offset, _length = struct.unpack(">4sIII", f.read(16))
            tables[tag] = offset
        f.seek(tables[b"head"] + 18)
        (units_per_em,) = struct.unpack(">H", f.read(2))
        if b"OS/2" in tables:
            f.seek(tables[b"OS/2"] + 74)
            ascent, descent = struct.unpack(">hh", f.read(4))  # libass reads them as shorts
            if ascent + descent > 0:
                return units_per_em / (ascent + descent)
        f.seek(tables[b"hhea"] + 4)
        ascent, descent = struct.unpack(">hh", f.read(4))
        return units_per_em / (ascent - descent)


# --------------------------------------------------------------------------- line breaking


def _wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _hangul(ch: str) -> bool:
    return "\uac00" <= ch <= "\ud7a3" or "\u1100" <= ch <= "\u11ff" or "\u3130" <= ch <= "\u318f"


def _segments(text: str, language: str) -> list[tuple[str, bool]]:
    """``text`` as unbreakable pieces, each with whether a space precedes it. A line may break
    between pieces (dropping that space). Japanese and Chinese may break between any two wide
    characters, kinsoku permitting; Korean and the rest only at spaces."""
    cjk, korean = is_cjk(language), language.lower().startswith("ko")
    pieces: list[list] = []
    space = False
    for ch in " ".join(text.split()):
        if ch == " ":
            space = True
            continue
        if not pieces:
            pieces.append([ch, False])
            continue
        prev = pieces[-1][0][-1]
        glue = not space and (
            not cjk  # Latin scripts break at spaces only
            or ch in _NO_BREAK_BEFORE
            or prev in _NO_BREAK_AFTER
            or not (_wide(ch) or _wide(prev))  # a Latin word or number inside CJK text
            or (korean and _hangul(ch) and _hangul(prev))  # Korean keeps words whole
        )
        if glue:
            pieces[-1][0] += ch
        else:
            pieces.append([ch, space])
        space = False
    return [(text, sp) for text, sp in pieces]


def _split_wide_piece(piece: str, max_width: float, measure: Callable[[str], float]) -> list[str]:
    """A piece wider than a line (a long URL, a long Korean word) in character chunks that fit."""
    chunks, current = [], ""
    for ch in piece:
        if current and measure(current + ch) > max_width:
            chunks.append(current)
            current = ch
        else:
            current += ch
    return chunks + [current] if current else chunks


def _greedy(pieces: Sequence[tuple[str, bool]], width: float, measure: Callable[[str], float]) -> list[str]:
    lines: list[str] = []
    current = ""
    for text, space in pieces:
        candidate = current + (" " if space else "") + text if current else text
        if current and measure(candidate) > width:
            lines.append(current)
            current = text
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def break_lines(text: str, *, max_width: float, measure: Callable[[str], float], language: str) -> list[str]:
    """``text`` as the fewest lines no wider than ``max_width`` (by ``measure``), their widths
    balanced. Joining the lines (with a space where one was dropped) gives the text back."""
    pieces: list[tuple[str, bool]] = []
    for piece, space in _segments(text, language):
        if measure(piece) <= max_width:
            pieces.append((piece, space))
        else:
            chunks = _split_wide_piece(piece, max_width, measure)
            pieces.extend((chunk, space and i == 0) for i, chunk in enumerate(chunks))
    if not pieces:
        return []
    lines = _greedy(pieces, max_width, measure)
    if len(lines) == 1:
        return lines
    # Balance: the narrowest width at which greedy filling still needs no more lines.
    lo, hi = 0.0, max_width
    for _ in range(18):
        mid = (lo + hi) / 2
        if len(_greedy(pieces, mid, measure)) <= len(lines):
            hi = mid
        else:
            lo = mid
    return _greedy(pieces, hi, measure)


def caption_pages(lines: Sequence[str], max_lines: int) -> list[list[str]]:
    """Lines grouped into as few pages of at most ``max_lines`` as possible, evenly filled."""
    count = len(lines)
    if count == 0:
        return []
    pages = math.ceil(count / max_lines)
    sizes = [count // pages + (1 if i < count % pages else 0) for i in range(pages)]
    out, start = [], 0
    for size in sizes:
        out.append(list(lines[start:start + size]))
        start += size
    return out


def _fit(text: str, font: _Font, *, em: float, min_em: float, max_width: float, max_lines: int,
         language: str, truncate: bool = True) -> tuple[int, list[str]]:
    """The largest size (ASS \\fs) from ``em`` down to ``min_em`` at which ``text`` fits in
    ``max_lines``; at the smallest, the lines that fit with an ellipsis (``truncate``) or all of them."""
    while True:
        size = font.font_size(em)
        measure = font.measure(size)
        lines = break_lines(text, max_width=max_width, measure=measure, language=language)
        if len(lines) <= max_lines:
            return size, lines
        if em <= min_em:
            if not truncate:
                return size, lines
            break
        em = max(min_em, em * 0.92)
    kept = lines[:max_lines]
    last = kept[-1]
    while last and measure(last + _ELLIPSIS) > max_width:
        last = last[:-1].rstrip()
    kept[-1] = last + _ELLIPSIS
    return size, kept


# --------------------------------------------------------------------------- timeline


@dataclass(frozen=True)
class _Segment:
    shot: int  # index into the unique screenshots
    frames: int  # nominal length; the clip rendered is longer by the cross-fade into the next
    kind: str  # "intro", "scene", "end"
    move: tuple[float, float, float, float, float, float] = (1.0, 1.0, 0.5, 0.5, 0.5, 0.5)


def _scene_cuts(voice_frames: int, sentences: Sequence[SpokenSentence]) -> list[int]:
    """Frame offsets (in the voice) where one scene gives way to the next."""
    seconds = voice_frames / FPS
    count = max(1, round(seconds / SCENE_SECONDS))
    ordered = sorted(sentences, key=lambda s: s.start)
    boundaries = [(a.end + b.start) / 2 for a, b in itertools.pairwise(ordered) if b.start >= a.end]
    cuts: list[float] = []
    for k in range(1, count):
        nominal = k * seconds / count
        previous = cuts[-1] if cuts else 0.0
        near = [b for b in boundaries if abs(b - nominal) <= _SNAP_SECONDS
                and b - previous >= _MIN_SCENE_SECONDS and seconds - b >= _MIN_SCENE_SECONDS]
        cuts.append(min(near, key=lambda b: abs(b - nominal)) if near else nominal)
    return [round(c * FPS) for c in cuts]


def _plan(shot_count: int, voice_frames: int, sentences: Sequence[SpokenSentence]) -> list[_Segment]:
    intro, end = round(INTRO_SECONDS * FPS), round(END_SECONDS * FPS)
    bounds = [0, *_scene_cuts(voice_frames, sentences), voice_frames]
    scenes = len(bounds) - 1
    segments = [_Segment(0, intro, "intro", (1.0, 1.0 + _CARD_ZOOM, 0.5, 0.5, 0.5, 0.5))]
    for k in range(scenes):
        # Many screenshots: spread the scenes over the page; few: cycle through them.
        shot = k * shot_count // scenes if shot_count >= scenes else k % shot_count
        segments.append(_Segment(shot, bounds[k + 1] - bounds[k], "scene", _MOVES[k % len(_MOVES)]))
    segments.append(_Segment(0, end, "end", (1.0, 1.0 + _CARD_ZOOM, 0.5, 0.5, 0.5, 0.5)))
    return segments


# --------------------------------------------------------------------------- filter graph


def _eased(frames: int) -> str:
    """Smoothstep of zoompan's output frame number over a clip of ``frames`` frames, in 0..1."""
    p = f"(on/{max(frames - 1, 1)})"
    return f"({p}*{p}*(3-2*{p}))"


def _zoompan(move: tuple[float, ...], frames: int) -> str:
    z0, z1, fx0, fy0, fx1, fy1 = move
    s = _eased(frames)
    zoom = f"{z0:g}+{z1 - z0:g}*{s}"
    x = f"(iw-iw/zoom)*({fx0:g}+{fx1 - fx0:g}*{s})"
    y = f"(ih-ih/zoom)*({fy0:g}+{fy1 - fy0:g}*{s})"
    return f"zoompan=z='{zoom}':x='{x}':y='{y}':d={frames}:s={WIDTH}x{HEIGHT}:fps={FPS}"


def _graph(segments: list[_Segment], shot_count: int, voice_input: int, voice_frames: int,
           ass_name: str, poster_frame: int) -> str:
    crossfade = min(_CROSSFADE_FRAMES, *(s.frames // 2 for s in segments))
    uses = [sum(1 for s in segments if s.shot == i) for i in range(shot_count)]
    parts, labels = [], [[f"s{i}u{n}" for n in range(uses[i])] for i in range(shot_count)]
    cover = f"scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=increase,crop={WIDTH}:{HEIGHT}"
    for i in range(shot_count):
        split = f",split={uses[i]}" if uses[i] > 1 else ""
        parts.append(f"[{i}:v]{cover},setsar=1,format=yuv420p{split}" + "".join(f"[{lab}]" for lab in labels[i]))
    taken = [0] * shot_count
    clips: list[str] = []  # the pieces of the final timeline, in order
    for k, seg in enumerate(segments):
        label = labels[seg.shot][taken[seg.shot]]
        taken[seg.shot] += 1
        frames = seg.frames + (crossfade if k < len(segments) - 1 else 0)
        if seg.kind == "scene":
            big = f"scale={WIDTH * _SUPERSAMPLE}:{HEIGHT * _SUPERSAMPLE}:flags=lanczos"
            chain = f"{big},{_zoompan(seg.move, frames)}"
        else:  # a card: the screenshot blurred and darkened under the title or domain
            chain = (f"boxblur=luma_radius=40:luma_power=3:chroma_radius=20,"
                     f"drawbox=x=0:y=0:w=iw:h=ih:color=black@0.45:t=fill,{_zoompan(seg.move, frames)}")
        # Cross-fades only where clips overlap: xfade copies every frame it passes, so the
        # clips are cut into head (fades in), body and tail (fades out), and only the
        # tail/head pairs go through xfade; the pieces are then concatenated.
        first, last = k == 0, k == len(segments) - 1
        pieces = [("h", 0, crossfade)] if not first else []
        pieces.append(("b", 0 if first else crossfade, frames - (0 if last else crossfade)))
        if not last:
            pieces.append(("t", frames - crossfade, frames))
        pieces = [p for p in pieces if p[2] > p[1]]
        split = f",split={len(pieces)}" if len(pieces) > 1 else ""
        parts.append(f"[{label}]{chain},setsar=1,format=yuv420p,settb=1/{FPS},setpts=N{split}"
                     + "".join(f"[c{k}{name}]" for name, _, _ in pieces))
        for name, start, stop in pieces:
            parts.append(f"[c{k}{name}]trim=start_frame={start}:end_frame={stop},setpts=N[p{k}{name}]")
            if name == "b":
                clips.append(f"p{k}b")
            elif name == "t":
                parts.append(f"[p{k}t][p{k + 1}h]xfade=transition=fade:duration={crossfade / FPS:.6f}:offset=0,"
                             f"settb=1/{FPS},setpts=N[f{k}]")
                clips.append(f"f{k}")
    parts.append("".join(f"[{c}]" for c in clips) + f"concat=n={len(clips)}:v=1:a=0[joined]")
    current = "joined"
    parts.append(f"[{current}]{ass_filter(ass_name)},format=yuv420p,split=2[v][all];"
                 f"[all]select='eq(n\\,{poster_frame})'[poster]")
    intro_ms = round(segments[0].frames / FPS * 1000)
    total = sum(s.frames for s in segments) / FPS
    parts.append(f"[{voice_input}:a]atrim=end={voice_frames / FPS:.6f},asetpts=N/SR/TB,aresample=48000,"
                 f"{LOUDNORM},aresample=48000,aformat=channel_layouts=stereo,"
                 f"adelay=delays={intro_ms}:all=1,apad=whole_dur={total:.6f},atrim=end={total:.6f}[a]")
    return ";".join(parts)


# --------------------------------------------------------------------------- captions and cards


def _ass_document(*, title: str, domain: str, language: str, sentences: Sequence[SpokenSentence],
                  intro_frames: int, voice_frames: int, end_frames: int) -> str:
    font = find_font(font_family(language))
    white, black = Color(255, 255, 255), Color(0, 0, 0)
    area_x, area_y, _, area_h = caption_area(WIDTH, HEIGHT)
    caption_margin = area_x + _CAPTION_BOX_PAD + 2
    caption_width = (WIDTH - 2 * caption_margin) * _WIDTH_SAFETY
    card_width = (WIDTH - 2 * _CARD_SIDE_MARGIN) * _WIDTH_SAFETY
    caption_size = font.font_size(_CAPTION_EM)

    doc = SSAFile()
    doc.info.update({"PlayResX": str(WIDTH), "PlayResY": str(HEIGHT), "WrapStyle": "0",
                     "ScaledBorderAndShadow": "yes"})  # fmt: skip
    doc.styles = {
        # One semi-opaque box behind the whole event (libass BorderStyle 4), as the "mozi" preset.
        "Caption": SSAStyle(fontname=font.family, fontsize=caption_size, bold=True, primarycolor=white,
                            outlinecolor=black, backcolor=Color(0, 0, 0, 70), borderstyle=4, outline=0,
                            shadow=_CAPTION_BOX_PAD, alignment=Alignment.BOTTOM_CENTER,
                            marginl=caption_margin, marginr=caption_margin,
                            marginv=HEIGHT - (area_y + area_h) + _CAPTION_BOX_PAD),
        "Card": SSAStyle(fontname=font.family, fontsize=font.font_size(_TITLE_EM), bold=True, primarycolor=white,
                         outlinecolor=Color(0, 0, 0, 80), backcolor=Color(0, 0, 0, 140), borderstyle=1,
                         outline=3, shadow=4, alignment=Alignment.MIDDLE_CENTER,
                         marginl=_CARD_SIDE_MARGIN, marginr=_CARD_SIDE_MARGIN, marginv=0),
    }  # fmt: skip

    def ms(frames: float) -> int:
        return round(frames / FPS * 1000)

    def text(size: int, default: int, lines: Sequence[str]) -> tuple[str, str]:
        tag = f"\\fs{size}" if size != default else ""
        return tag, r"\N".join(_escape(line) for line in lines)

    intro_end = ms(intro_frames + _CROSSFADE_FRAMES)
    size, lines = _fit(title, font, em=_TITLE_EM, min_em=_TITLE_MIN_EM, max_width=card_width,
                       max_lines=_TITLE_MAX_LINES, language=language)
    tag, body = text(size, doc.styles["Card"].fontsize, lines)
    if body:
        doc.events.append(SSAEvent(start=0, end=intro_end, style="Card", text=(
            f"{{\\fad(250,{ms(_CROSSFADE_FRAMES)}){tag}\\fscx94\\fscy94\\t(0,700,\\fscx100\\fscy100)}}{body}")))

    end_start, total = intro_frames + voice_frames, intro_frames + voice_frames + end_frames
    size, lines = _fit(domain, font, em=_DOMAIN_EM, min_em=_DOMAIN_MIN_EM, max_width=card_width,
                       max_lines=1, language=language, truncate=False)  # a domain is never cut short
    tag, body = text(size, doc.styles["Card"].fontsize, lines)
    if body:
        doc.events.append(SSAEvent(start=ms(end_start), end=ms(total), style="Card",
                                   text=f"{{\\fad(400,0){tag}}}{body}"))

    measure = font.measure(caption_size)
    voice_seconds = voice_frames / FPS
    spoken = sorted((s for s in sentences if " ".join(s.text.split())), key=lambda s: s.start)
    for i, sentence in enumerate(spoken):
        start = min(max(sentence.start, 0.0), voice_seconds)
        next_start = min(spoken[i + 1].start, voice_seconds) if i + 1 < len(spoken) else voice_seconds
        end = min(max(sentence.end, start), voice_seconds)
        if next_start - end <= _HOLD_GAP_SECONDS:
            end = max(end, next_start)  # no blink between sentences
        end = min(end, max(next_start, start))  # never two captions at once
        if end - start < 0.05:
            continue
        lines = break_lines(sentence.text, max_width=caption_width, measure=measure, language=language)
        pages = caption_pages(lines, _CAPTION_MAX_LINES)
        weights = [max(1, sum(len("".join(line.split())) for line in page)) for page in pages]
        t = start
        for page, weight in zip(pages, weights):
            page_end = t + (end - start) * weight / sum(weights)
            body = r"\N".join(_escape(line) for line in page)
            doc.events.append(SSAEvent(start=round((intro_frames / FPS + t) * 1000),
                                       end=round((intro_frames / FPS + page_end) * 1000),
                                       style="Caption", text=body))
            t = page_end
    return doc.to_string("ass")


# --------------------------------------------------------------------------- compose


def compose_video(
    *,
    screenshots: list[Path],
    voice: VoiceTrack,
    title: str,
    domain: str,
    language: str,
    out_dir: Path,
    encoder: str = "libx264",
    x264_preset: str = "veryfast",
    on_progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> ComposedVideo:
    """Render ``campaign_<language>.mp4`` and ``campaign_<language>.jpg`` (and the captions,
    ``campaign_<language>.ass``) into ``out_dir``.

    ``on_progress`` gets non-decreasing percentages in 0..100 on the calling thread; setting
    ``cancel`` stops ffmpeg and raises render_nodes.ffmpeg.Cancelled. Raises ValueError for bad
    arguments and reelfarm.media.MediaError (FfmpegFailed, Cancelled) when the render fails;
    no partial output is left behind either way.
    """
    if not screenshots:
        raise ValueError("no screenshots to compose")
    if encoder not in ENCODERS:
        raise ValueError(f"unsupported encoder {encoder!r}; expected one of {list(ENCODERS)}")
    if x264_preset not in X264_PRESETS:
        raise ValueError(f"unknown x264 preset {x264_preset!r}")
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*", language):
        raise ValueError(f"not a language tag: {language!r}")
    if voice.duration_seconds < 0.5:
        raise ValueError(f"voice track too short ({voice.duration_seconds:.2f} s)")
    for path in [*screenshots, voice.path]:
        if not Path(path).is_file():
            raise MediaError(f"missing input: {Path(path).name}")
    if cancel is not None and cancel.is_set():
        raise Cancelled()

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"campaign_{language}"
    video, poster, ass = out_dir / f"{stem}.mp4", out_dir / f"{stem}.jpg", out_dir / f"{stem}.ass"

    voice_frames = max(1, round(voice.duration_seconds * FPS))
    planned = _plan(len(screenshots), voice_frames, voice.sentences)
    # One ffmpeg input per screenshot shown (an unused input would be an unconnected output).
    resolved = [Path(p).resolve() for p in screenshots]
    unique = list(dict.fromkeys(resolved[s.shot] for s in planned))
    segments = [_Segment(unique.index(resolved[s.shot]), s.frames, s.kind, s.move) for s in planned]
    intro_frames, end_frames = segments[0].frames, segments[-1].frames
    total_frames = sum(s.frames for s in segments)
    ass.write_text(_ass_document(title=title, domain=domain, language=language, sentences=voice.sentences,
                                 intro_frames=intro_frames, voice_frames=voice_frames, end_frames=end_frames),
                   encoding="utf-8")  # fmt: skip
    graph = _graph(segments, len(unique), len(unique), voice_frames, ass.name,
                   poster_frame=round(intro_frames * _POSTER_AT))
    args = [arg for path in unique for arg in ("-i", str(path))]
    args += ["-i", str(Path(voice.path).resolve()), "-filter_complex", graph,
             "-map", "[v]", "-map", "[a]", *video_encoder_args(encoder, x264_preset), "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-t", f"{total_frames / FPS:.6f}",
             "-movflags", "+faststart", str(video.resolve()),
             "-map", "[poster]", "-frames:v", "1", "-q:v", "3", "-update", "1", str(poster.resolve())]  # fmt: skip
    try:
        run_ffmpeg(args, expected_duration=total_frames / FPS, cancel=cancel, cwd=out_dir,
                   on_progress=(lambda pct: on_progress(min(pct, 99.0))) if on_progress else None)
        info = probe(video)
        if (info.width, info.height) != (WIDTH, HEIGHT) or not info.has_audio:
            raise MediaError(f"rendered {info.width}x{info.height}, audio {info.has_audio}: not the video asked for")
        if abs(info.duration_seconds - total_frames / FPS) > 0.25:
            raise MediaError(f"rendered {info.duration_seconds:.2f} s of {total_frames / FPS:.2f} s")
        if not poster.is_file() or poster.stat().st_size == 0:
            raise MediaError("no poster frame was written")
    except BaseException:
        video.unlink(missing_ok=True)
        poster.unlink(missing_ok=True)
        raise
    if on_progress is not None:
        on_progress(100.0)
    return ComposedVideo(video=video, poster=poster, duration_seconds=info.duration_seconds,
                         width=info.width, height=info.height)
