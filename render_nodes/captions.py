"""Burned-in captions: an ASS subtitle document built from a transcript's timed words.

The document is meant for ffmpeg's ``ass`` filter (libass). Its script resolution
equals the output size, so every length here is in output pixels, and all of them
are derived from the output height: a 720x1280 and a 1080x1920 clip look the same.

Captions stay inside :func:`caption_area`, a band above the bottom strip where
short-video apps draw their own UI. The layout does not trust libass to keep them
there: it breaks lines itself and shrinks the font of an event whose longest word
or line count would not fit, using a conservative estimate of the text width.
"""

from __future__ import annotations

import itertools
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike

from pysubs2 import Alignment, Color, SSAEvent, SSAFile, SSAStyle

from reelfarm.transcript import Word

PRESETS = ("none", "beasty", "karaoke", "mozi")

# Debian's fonts-dejavu-core. The width estimate below is measured on it; with another
# font fontconfig substitutes, the estimate's safety margin has to absorb the difference.
FONT_NAME = "DejaVu Sans"

# Caption area, as fractions of the output size.
_AREA_SIDE_MARGIN = 0.06  # of the width, on each side
_AREA_TOP = 0.58  # of the height: captions live in roughly the lower third...
_AREA_BOTTOM = 0.86  # ...and stay clear of the bottom ~12-14% where platforms put their UI

_PAUSE_SECONDS = 0.6  # a longer silence starts a new caption
_SENTENCE_END = (".", "!", "?")
_ANTIALIAS_SLACK_PX = 2  # glyph edges and blur reach a pixel or so past the outline

# libass sizes a font so its ascender + descender equal the font size; for DejaVu Sans
# that makes one em 1/1.164 of the font size.
_EM_PER_FONT_SIZE = 0.86
# Advance widths in em of DejaVu Sans Bold (the regular face is narrower), grouped and
# rounded up so the estimate errs wide: a line that the estimate says fits does fit.
_NARROW_CHARS = frozenset(" 'ijlIJ/\\|,.:;-f!()[]\u2019")
_WIDE_CHARS = frozenset("mwMW@%&\u2014\u2026")
_NARROW_EM, _LOWER_EM, _UPPER_EM, _WIDE_EM = 0.46, 0.72, 0.86, 1.11


@dataclass(frozen=True)
class _Look:
    """One preset's style. Sizes are fractions of the output height."""

    max_words: int  # per caption event
    max_chars: int  # per caption event, spaces included: long words make shorter captions
    font_size: float
    bold: bool
    border_style: int  # 1: outline and shadow; 4: one box behind the whole event (libass)
    outline: float
    shadow: float  # with border_style 4: the box's padding around the text
    text_colour: Color
    highlight_colour: Color  # the word being spoken (karaoke: the words already sung)
    outline_colour: Color
    back_colour: Color  # shadow, or the box with border_style 4
    pop_in: bool = False  # captions scale up into place
    karaoke: bool = False  # one event per caption with \k tags, not one per spoken word


# Scale of a popping-in caption at its largest: the layout must leave room for it.
_POP_IN_OVERSHOOT = 1.08
_POP_IN_TAGS = r"\fscx80\fscy80\t(0,90,\fscx108\fscy108)\t(90,160,\fscx100\fscy100)"

_WHITE = Color(255, 255, 255)
_BLACK = Color(0, 0, 0)

_LOOKS: dict[str, _Look] = {
    # MrBeast style: huge bold capitals in a thick black outline, the spoken word yellow.
    "beasty": _Look(
        max_words=3, max_chars=16, font_size=0.068, bold=True, border_style=1,
        outline=0.0075, shadow=0.004, text_colour=_WHITE, highlight_colour=Color(255, 226, 0),
        outline_colour=_BLACK, back_colour=Color(0, 0, 0, 100), pop_in=True,
    ),
    # A line at a time; \k tags turn each word from white (SecondaryColour) to yellow
    # (PrimaryColour) as it is spoken.
    "karaoke": _Look(
        max_words=6, max_chars=32, font_size=0.052, bold=True, border_style=1,
        outline=0.004, shadow=0.002, text_colour=_WHITE, highlight_colour=Color(255, 214, 0),
        outline_colour=_BLACK, back_colour=Color(0, 0, 0, 120), karaoke=True,
    ),
    # Clean sentence case on a semi-transparent box, the spoken word amber. BorderStyle 4
    # (libass's one-box-per-event) rather than 3: 3 draws a box per line and per colour
    # run, and semi-transparent boxes darken where those overlap.
    "mozi": _Look(
        max_words=4, max_chars=24, font_size=0.048, bold=False, border_style=4,
        outline=0.0, shadow=0.011, text_colour=_WHITE, highlight_colour=Color(255, 200, 61),
        outline_colour=_BLACK, back_colour=Color(0, 0, 0, 96),
    ),
}


@dataclass(frozen=True)
class _TimedWord:
    text: str  # cleaned and cased for the preset, not yet escaped
    start_cs: int  # centiseconds, in the clip's timeline
    end_cs: int


@dataclass(frozen=True)
class _Caption:
    words: tuple[_TimedWord, ...]
    start_cs: int
    end_cs: int


def build_caption_track(words: Sequence[Word], *, preset: str, clip_start: float, clip_end: float,
                        width: int, height: int) -> str | None:
    """ASS document text for the words that fall in [clip_start, clip_end), re-timed to the clip
    (t - clip_start), sized for a width x height output; None when preset == "none" or no words fall in."""
    if preset not in PRESETS:
        raise ValueError(f"unknown caption preset {preset!r}; expected one of {', '.join(PRESETS)}")
    if width <= 0 or height <= 0:
        raise ValueError(f"output size must be positive, got {width}x{height}")
    if clip_end <= clip_start:
        raise ValueError(f"clip_end ({clip_end}) must be after clip_start ({clip_start})")
    if preset == "none":
        return None
    look = _LOOKS[preset]

    timed = _clip_words(words, clip_start, clip_end)
    if not timed:
        return None
    clip_cs = _to_cs(clip_end - clip_start)
    captions = _group(_apply_case(timed, preset), look, clip_cs)
    if not captions:
        return None

    layout = _Layout.for_look(look, width, height)
    track = SSAFile()
    track.info.update({
        "PlayResX": str(width),
        "PlayResY": str(height),
        "WrapStyle": "0",  # smart wrapping, a safety net behind our own line breaks
        "ScaledBorderAndShadow": "yes",
    })
    track.styles = {preset: layout.style}
    for caption in captions:
        track.events.extend(_events(caption, look, layout, preset))
    return track.to_string("ass")


def caption_area(width: int, height: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) in output pixels of the region where captions of any preset may be drawn:
    inside the safe area. Tests and renders use it to know where to look."""
    x = math.ceil(width * _AREA_SIDE_MARGIN)
    top = math.ceil(height * _AREA_TOP)
    bottom = math.floor(height * _AREA_BOTTOM)
    return x, top, width - 2 * x, bottom - top


def ass_filter(path: str | PathLike[str]) -> str:
    """The ``ass`` video filter burning the ASS file at ``path``, escaped for an -vf/-filter_complex graph."""
    # Two levels: quoting for the filter's option parser (inside '...' nothing is special
    # but the quote itself), then backslashes for the filtergraph parser.
    quoted = "'" + str(path).replace("'", r"'\''") + "'"
    graph_escaped = "".join("\\" + ch if ch in "\\'[],;" else ch for ch in quoted)
    return f"ass=filename={graph_escaped}"


# --------------------------------------------------------------------------- words


def _to_cs(seconds: float) -> int:
    return round(seconds * 100)


def _escape(text: str) -> str:
    """Make transcript text literal in an ASS event: no override blocks, no \\N, \\n or \\h."""
    # A word joiner after each backslash breaks up \N, \n and \h; libass reads \{ and \} as braces.
    text = text.replace("\\", "\\\u2060")
    return text.replace("{", r"\{").replace("}", r"\}")


def _clip_words(words: Sequence[Word], clip_start: float, clip_end: float) -> list[_TimedWord]:
    """The non-blank words overlapping the clip, clamped to it and re-timed to its start."""
    clip_cs = _to_cs(clip_end - clip_start)
    timed = []
    for word in sorted(words, key=lambda w: w.start):
        text = " ".join(word.text.split())
        end = max(word.end, word.start)  # a word ending before it starts lasts no time
        if not text or end <= clip_start or word.start >= clip_end:
            continue
        start_cs = min(max(_to_cs(word.start - clip_start), 0), clip_cs)
        end_cs = min(max(_to_cs(end - clip_start), start_cs), clip_cs)
        timed.append(_TimedWord(text, start_cs, end_cs))
    return timed


def _apply_case(words: list[_TimedWord], preset: str) -> list[_TimedWord]:
    """Upper case for beasty, sentence case for mozi, the transcript's own case otherwise."""
    cased = []
    starts_sentence = True
    for word in words:
        text = word.text
        if preset == "beasty":
            text = text.upper()
        elif preset == "mozi" and starts_sentence:
            text = text[0].upper() + text[1:]
        starts_sentence = _ends_sentence(text)
        cased.append(_TimedWord(text, word.start_cs, word.end_cs))
    return cased


def _ends_sentence(text: str) -> bool:
    return text.rstrip("\"')]\u201d\u2019").endswith(_SENTENCE_END)


def _group(words: list[_TimedWord], look: _Look, clip_cs: int) -> list[_Caption]:
    """Split words into captions at pauses, sentence ends and the preset's word/character limits."""
    pause_cs = _to_cs(_PAUSE_SECONDS)
    groups: list[list[_TimedWord]] = []
    for word in words:
        current = groups[-1] if groups else None
        if (current is None
                or len(current) >= look.max_words
                or sum(len(w.text) + 1 for w in current) + len(word.text) > look.max_chars
                or word.start_cs - current[-1].end_cs > pause_cs
                or _ends_sentence(current[-1].text)):
            groups.append([word])
        else:
            current.append(word)

    captions = []
    for index, group in enumerate(groups):
        start_cs = group[0].start_cs
        end_cs = max(w.end_cs for w in group)
        next_start = groups[index + 1][0].start_cs if index + 1 < len(groups) else clip_cs
        # Hold the caption through a short gap rather than blink off and on again.
        if next_start - end_cs <= pause_cs:
            end_cs = next_start
        # Zero-length words still show briefly, but captions never overlap: they would stack.
        end_cs = min(max(end_cs, start_cs + 1), next_start)
        if end_cs > start_cs:
            captions.append(_Caption(tuple(group), start_cs, end_cs))
    return captions


# --------------------------------------------------------------------------- layout


def _text_width_px(text: str, font_size: float) -> float:
    """Estimated rendered width of ``text``, on the wide side."""
    ems = 0.0
    for ch in text:
        if ch in _NARROW_CHARS:
            ems += _NARROW_EM
        elif ch in _WIDE_CHARS or unicodedata.east_asian_width(ch) in ("W", "F"):
            ems += _WIDE_EM
        elif ch.isupper() or ch.isdigit() or not ch.isascii():
            ems += _UPPER_EM
        else:
            ems += _LOWER_EM
    return ems * _EM_PER_FONT_SIZE * font_size


@dataclass(frozen=True)
class _Layout:
    style: SSAStyle
    font_size: int
    max_line_px: float  # line width the estimate must stay under, pop-in overshoot included
    max_text_height_px: float

    @classmethod
    def for_look(cls, look: _Look, width: int, height: int) -> _Layout:
        area_x, area_y, _, area_h = caption_area(width, height)
        scale = _POP_IN_OVERSHOOT if look.pop_in else 1.0
        outline_px = look.outline * height
        shadow_px = look.shadow * height
        # How far ink reaches past the text's layout box: the outline all round, the shadow
        # down and right; a box (style 4) pads by the shadow size all round.
        pad_px = math.ceil((outline_px + shadow_px) * scale) + _ANTIALIAS_SLACK_PX
        side_margin = area_x + pad_px
        text_bottom = area_y + area_h - pad_px
        font_size = round(look.font_size * height)
        style = SSAStyle(
            fontname=FONT_NAME,
            fontsize=font_size,
            # \k shows SecondaryColour until a word's time comes, then PrimaryColour.
            primarycolor=look.highlight_colour if look.karaoke else look.text_colour,
            secondarycolor=look.text_colour,
            outlinecolor=look.outline_colour,
            backcolor=look.back_colour,
            bold=look.bold,
            borderstyle=look.border_style,
            outline=round(outline_px, 1),
            shadow=round(shadow_px, 1),
            alignment=Alignment.BOTTOM_CENTER,
            marginl=side_margin,
            marginr=side_margin,
            marginv=height - text_bottom,
        )
        # Pop-in scaling grows the text from its bottom centre, so it needs room that way too.
        max_line_px = (width - 2 * side_margin) / scale
        max_text_height_px = (text_bottom - area_y - pad_px) / scale
        return cls(style, font_size, max_line_px, max_text_height_px)

    def fit(self, words: Sequence[str]) -> tuple[int, list[list[int]]]:
        """The largest font size, no larger than the style's, at which the words fit the area,
        and their line breaks as lists of word indexes."""
        font_size = self.font_size
        while True:
            max_lines = int(self.max_text_height_px // font_size)  # libass: line height = font size
            lines = _balanced_lines(
                [_text_width_px(w, font_size) for w in words],
                _text_width_px(" ", font_size), self.max_line_px, max_lines,
            )
            if lines is not None or font_size <= 1:
                return font_size, lines or [list(range(len(words)))]
            font_size = max(1, math.floor(font_size * 0.95))


def _balanced_lines(word_widths: list[float], space_width: float, max_width: float,
                    max_lines: int) -> list[list[int]] | None:
    """Fewest lines that fit ``max_width``, with their widest line as narrow as possible."""
    count = len(word_widths)
    for line_count in range(1, min(max_lines, count) + 1):
        best, best_widest = None, math.inf
        for breaks in itertools.combinations(range(1, count), line_count - 1):
            bounds = (0, *breaks, count)
            lines = [list(range(a, b)) for a, b in itertools.pairwise(bounds)]
            widest = max(sum(word_widths[i] for i in line) + space_width * (len(line) - 1) for line in lines)
            if widest <= max_width and widest < best_widest:
                best, best_widest = lines, widest
        if best is not None:
            return best
    return None


# --------------------------------------------------------------------------- events


def _colour_tag(colour: Color) -> str:
    return f"\\1c&H{colour.b:02X}{colour.g:02X}{colour.r:02X}&"


def _join_lines(lines: list[list[int]], word_text: Sequence[str]) -> str:
    return r"\N".join(" ".join(word_text[i] for i in line) for line in lines)


def _events(caption: _Caption, look: _Look, layout: _Layout, style_name: str) -> list[SSAEvent]:
    font_size, lines = layout.fit([w.text for w in caption.words])
    texts = [_escape(w.text) for w in caption.words]
    size_tag = f"\\fs{font_size}" if font_size != layout.font_size else ""

    def event(start_cs: int, end_cs: int, tags: str, body: str) -> SSAEvent:
        prefix = "{" + tags + "}" if tags else ""
        return SSAEvent(start=start_cs * 10, end=end_cs * 10, style=style_name, text=prefix + body)

    # Each word's turn runs to the next word's start, the last one's to the caption's end:
    # gaps count, so for karaoke the \k durations add up to the event's.
    starts = [w.start_cs for w in caption.words] + [caption.end_cs]
    if look.karaoke:
        karaoke = [f"{{\\k{starts[i + 1] - starts[i]}}}{text}" for i, text in enumerate(texts)]
        return [event(caption.start_cs, caption.end_cs, size_tag, _join_lines(lines, karaoke))]

    # One event per spoken word, the same text each time with that word in the highlight colour.
    events = []
    for active, (start_cs, end_cs) in enumerate(itertools.pairwise(starts)):
        if end_cs <= start_cs:
            continue  # a word sharing its start with the next is never highlighted on its own
        styled = [
            f"{{{_colour_tag(look.highlight_colour)}}}{text}{{{_colour_tag(look.text_colour)}}}"
            if i == active else text
            for i, text in enumerate(texts)
        ]
        tags = size_tag + (_POP_IN_TAGS if look.pop_in and not events else "")
        events.append(event(start_cs, end_cs, tags, _join_lines(lines, styled)))
    return events
