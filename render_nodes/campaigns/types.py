"""What passes between a campaign's stages: the captured page, the spoken voice track."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class PageCapture:
    """A web page as the campaign pipeline sees it (render_nodes/campaigns/capture.py)."""

    url: str  # as asked
    final_url: str  # after redirects
    title: str
    language: str | None  # BCP 47 primary subtag ("en", "ja"), from <html lang> or detected; None: unknown
    headings: tuple[str, ...]
    paragraphs: tuple[str, ...]
    calls_to_action: tuple[str, ...]  # button and prominent link texts ("Start free trial")
    main_text: str  # trafilatura's main text of the captured HTML
    section_screenshots: tuple[Path, ...]  # 1080x1920 viewport PNGs, top to bottom
    full_page_screenshot: Path
    image_urls: tuple[str, ...] = field(default_factory=tuple)
    # Requests the capture refused under the address policy ("URL: why"), in order.
    refused_requests: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class SpokenSentence:
    text: str  # as shown in the captions
    start: float  # seconds into the voice track
    end: float


@dataclass(frozen=True)
class VoiceTrack:
    """A voiced script (render_nodes/campaigns/voice.py): one WAV, every sentence's span in it."""

    path: Path
    language: str
    engine: str  # "piper", "kokoro", "espeak-ng"
    duration_seconds: float
    sentences: tuple[SpokenSentence, ...]
