"""Style DNA: a video's measurable style, in the shape of ../shared/seeds/003 (`style_json`).

Extraction (analysis/style/) fills every field; a template given inline as a job's
`config.style` may name only the fields it wants applied (the others keep the new video's
own). docs/style-dna.md says what each field measures, its unit and range, and how.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DNA_VERSION = "1.0"

TransitionType = Literal["cut", "fade", "dissolve"]
Easing = Literal["linear", "ease-in", "ease-out", "ease-in-out"]
Band = Literal["bass", "mid", "high"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColorGrade(_Strict):
    """Each -100..100, relative to the neutral reference grade (0 = neutral)."""

    temperature: int = Field(0, ge=-100, le=100, description="warm (+) / cool (-): Lab b* against neutral")
    tint: int = Field(0, ge=-100, le=100, description="magenta (+) / green (-): Lab a* against neutral")
    saturation: int = Field(0, ge=-100, le=100, description="mean chroma against neutral")
    contrast: int = Field(0, ge=-100, le=100, description="luma spread against neutral")
    highlights: int = Field(0, ge=-100, le=100, description="upper luma percentile against neutral")
    shadows: int = Field(0, ge=-100, le=100, description="lower luma percentile against neutral")


class AudioStyle(_Strict):
    normalization_level: float = Field(..., ge=0.0, le=1.0, description="integrated loudness (EBU R128) on 0..1")
    compression_ratio: float = Field(..., ge=1.0, le=20.0, description="estimated from the dynamics; reliable to ~4:1")
    bass_boost: int = Field(..., ge=-100, le=100, description="low-band energy against a neutral reference")
    enhance_speech: bool = Field(..., description="speech dominates (voice activity share)")


class Transition(_Strict):
    type: TransitionType
    duration_ms: int = Field(..., ge=0, le=10_000)
    easing: Easing = "linear"


class Beat(_Strict):
    timestamp_ms: int = Field(..., ge=0)
    confidence: float = Field(..., ge=0.0, le=1.0)
    frequency: Band


class StyleDNA(_Strict):
    """003's `style_json`. Every field is optional so that a template can name only what it applies."""

    version: Literal["1.0"] = DNA_VERSION
    color_grade: ColorGrade | None = None
    aspect_ratio: str | None = Field(None, pattern=r"^\d{1,3}:\d{1,3}$")
    frame_rate: float | None = Field(None, gt=0, le=240)
    audio_style: AudioStyle | None = None
    cut_frequency: float | None = Field(None, ge=0, le=600, description="cuts per minute")
    motion_intensity: int | None = Field(None, ge=0, le=100)
    zoom_usage: int | None = Field(None, ge=0, le=100)
    primary_transition: Transition | None = None
    detected_beats: list[Beat] | None = None
    tempo_bpm: float | None = Field(None, gt=0, le=400)
    music_genre: str | None = None
    created_at: datetime | None = None
    source_duration_seconds: float | None = Field(None, ge=0)
    extraction_confidence: float | None = Field(None, ge=0.0, le=1.0)

    def as_json(self) -> dict:
        """The document as the API returns it (003's field order; timestamps ISO 8601)."""
        return self.model_dump(mode="json")
