"""Is an SVG safe to serve as-is (it is its own preview, opened directly by browsers)?

An SVG is a document, not just a picture: it can run scripts, load other resources
and restyle itself. The checker parses with defusedxml (no DTDs, so no entity bombs
or external entities) and refuses everything that can run code or reach outside the
document: scripts, event handlers, embedded HTML and media, links and references other
than "#fragment" (inline raster images excepted), javascript: URLs, CSS that imports or
points elsewhere, processing instructions (xml-stylesheet), xml:base, and animations
that rewrite links. All problems are reported at once.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from control_plane.blobs.format_error import FormatError

SVG_NS = "http://www.w3.org/2000/svg"
XHTML_NS = "http://www.w3.org/1999/xhtml"
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
MAX_LISTED = 20

# Elements that run code, embed other documents or media, or (handler) are SVG Tiny scripts.
FORBIDDEN_ELEMENTS = {"script", "handler", "foreignobject", "iframe", "frame", "embed", "object", "applet",
                      "audio", "video", "link", "meta", "base"}  # fmt: skip
ANIMATIONS = {"animate", "set", "animatetransform", "animatemotion", "animatecolor"}
INLINE_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,", re.IGNORECASE)
CSS_ESCAPE = re.compile(r"\\([0-9a-f]{1,6})\s?|\\(.)", re.IGNORECASE | re.DOTALL)


class UnsafeSvg(FormatError):
    """The SVG can run code or load something outside itself; `problems` lists what."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "; ".join(problems[:MAX_LISTED])
        more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
        super().__init__(f"unsafe SVG: {shown}{more}")


class _Target(ET.TreeBuilder):
    """TreeBuilder that also records processing instructions, which the tree drops."""

    def __init__(self):
        super().__init__()
        self.pis: list[str] = []

    def pi(self, target, text=None):
        self.pis.append(target)
        return super().pi(target, text)


def _parse(data: bytes) -> tuple[ET.Element, list[str]]:
    """The root element and the processing instructions' targets."""
    target = _Target()
    parser = DefusedXMLParser(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        parser.feed(data)
        root = parser.close()
    except DefusedXmlException:
        raise UnsafeSvg(["DOCTYPE declarations (DTDs, entities) are not allowed"]) from None
    except ET.ParseError as exc:
        raise FormatError(f"not an SVG document: malformed XML ({exc})") from None
    if root.tag != f"{{{SVG_NS}}}svg":
        raise FormatError("not an SVG document")
    return root, target.pis


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1].lower()


def _unescape_css(css: str) -> str:
    """CSS escapes decoded (`\\75 rl(` is `url(`), comments removed, lower case."""
    css = CSS_ESCAPE.sub(lambda m: chr(int(m[1], 16)) if m[1] and int(m[1], 16) < 0x110000 else (m[2] or ""), css)
    out, pos = [], 0
    while (start := css.find("/*", pos)) >= 0:
        out.append(css[pos:start])
        end = css.find("*/", start + 2)
        pos = len(css) if end < 0 else end + 2
    out.append(css[pos:])
    return "".join(out).lower()


def _between(text: str, opening: str, closing: str):
    """What follows each `opening` up to the next `closing` (to the end when unclosed).
    str.find, not a lazy regex: linear on crafted, unclosed input."""
    pos = text.find(opening)
    while pos >= 0:
        start = pos + len(opening)
        end = text.find(closing, start)
        yield text[start:] if end < 0 else text[start:end]
        pos = -1 if end < 0 else text.find(opening, end + len(closing))


def _css_problems(css: str, where: str) -> list[str]:
    css = _unescape_css(css)
    problems = [f"{where}: url({target[:60]}) points outside the document"
                for target in (t.strip(" \t\r\n\"'") for t in _between(css, "url(", ")"))
                if not target.startswith("#")]  # fmt: skip
    if "@import" in css:
        problems.append(f"{where}: @import")
    if "expression(" in css:
        problems.append(f"{where}: CSS expression()")
    if re.search(r"image-set\(|(?<![\w-])image\(", css):
        problems.append(f"{where}: image-set()/image() can load outside resources")
    return problems


def _scheme_free(value: str) -> str:
    """Attribute value as a browser reads a URL scheme: no whitespace or controls."""
    return re.sub(r"[\s\x00-\x1f]", "", value).lower()


def _problems(root: ET.Element, pis: list[str]) -> list[str]:
    problems = [f"processing instruction <?{name}?>" for name in pis]
    for el in root.iter():
        name = _local(el.tag)
        where = f"<{name}>"
        if name in FORBIDDEN_ELEMENTS:
            problems.append(f"{where} element")
        elif el.tag.startswith(f"{{{XHTML_NS}}}"):
            problems.append(f"{where}: embedded HTML element")
        if name == "style":
            problems += _css_problems("".join(el.itertext()), f"{where} stylesheet")
            if "javascript:" in _scheme_free("".join(el.itertext())):
                problems.append(f"{where} stylesheet: javascript: URL")
        for attr, value in el.attrib.items():
            local = _local(attr)
            at = f"{where} {local}="
            if local.startswith("on"):
                problems.append(f"{where} event handler {local}")
            if attr == XML_BASE:
                problems.append(f"{where} xml:base (changes what #fragment links resolve to)")
            if local in ("href", "src"):
                target = value.strip()
                if not (target.startswith("#") or (name == "image" and INLINE_IMAGE.match(target))):
                    problems.append(f"{at}{target[:60]!r} is not a #fragment in this document")
            if "javascript:" in _scheme_free(value) or "vbscript:" in _scheme_free(value):
                problems.append(f"{where} {local}: javascript: URL")
            if "url(" in value.lower() or "@import" in value.lower() or local == "style":
                problems += _css_problems(value, f"{where} {local}")
            if name in ANIMATIONS and local == "attributename" and _local(value.split(":")[-1]) in ("href", "src"):
                problems.append(f"{where} animates {value.strip()}")
    return list(dict.fromkeys(problems))


def check_svg(data: bytes) -> None:
    """Raise UnsafeSvg listing every problem, or FormatError when `data` is not SVG at all."""
    root, pis = _parse(data)
    problems = _problems(root, pis)
    if problems:
        raise UnsafeSvg(problems)


def _positive(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if 0 < number < 1e6 else None  # also refuses nan and inf


def svg_size(data: bytes) -> tuple[int | None, int | None]:
    """(width, height) in px from the root's width/height, else its viewBox; None where
    neither says (percentages and physical units are not resolved)."""
    root, _ = _parse(data)
    width, height = (_positive(root.get(a, "").strip().lower().removesuffix("px")) for a in ("width", "height"))
    box = re.split(r"[\s,]+", root.get("viewBox", "").strip())
    vb_w, vb_h = (_positive(box[2]), _positive(box[3])) if len(box) == 4 else (None, None)
    if vb_w and vb_h:
        if width is None and height is None:
            width, height = vb_w, vb_h
        elif width is None:
            width = height * vb_w / vb_h
        elif height is None:
            height = width * vb_h / vb_w
    return (round(width) if width else None, round(height) if height else None)
