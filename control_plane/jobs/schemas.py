"""ProcessOptions: the options a job is made with (reels API document, camelCase keys)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from control_plane.errors import ApiError


class TranscriptWord(BaseModel):
    """One spoken word, timed in source seconds."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=100)
    start: float = Field(ge=0)
    end: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "TranscriptWord":
        if self.end <= self.start:
            raise ValueError("end must be greater than start")
        return self


class ProcessOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["ai", "none"] = Field("ai", description="ai = pick moments; none = one full-source clip")
    numClips: int = Field(3, ge=1, le=10, description="Clips to generate (1-10)")
    clipLength: Literal["short", "medium", "long"] = Field("medium", description="3-15 s, 20-45 s, 45-90 s")
    aspectRatio: Literal["9:16", "1:1", "4:5", "16:9"] = Field("9:16", description="Output aspect ratio")
    captionPreset: Literal["none", "beasty", "karaoke", "mozi"] = Field("none", description="Burned-in captions")
    removeAiVoice: bool = Field(True, description="Splice out interviewer turns in interviews")
    autoHook: bool = Field(True, description="Write a hook, title and hashtags")
    prompt: str = Field("", max_length=2000, description="Free-form instruction for moment selection")
    genre: Literal["podcast", "interview", "vlog", "tutorial", "auto"] = Field("auto", description="Content genre")
    trimStart: float = Field(0.0, ge=0, description="Cut the source before this many seconds")
    trimEnd: float | None = Field(None, gt=0, description="Cut the source after this many seconds")
    # The dev endpoints' clip bounds; when set they replace clipLength's range.
    minDuration: float | None = Field(None, ge=1, le=600, description="Shortest clip, seconds (dev endpoints)")
    maxDuration: float | None = Field(None, ge=1, le=600, description="Longest clip, seconds (dev endpoints)")
    customInstructions: str = Field("", max_length=2000, description="Guidance for the selector (dev endpoints)")
    # Until transcription exists, captions are drawn from words given with the job.
    transcript: list[TranscriptWord] | None = Field(
        None, max_length=100_000, description="Timed words {text, start, end} in source seconds, for captions"
    )

    @model_validator(mode="after")
    def _trim_order(self) -> "ProcessOptions":
        if self.trimEnd is not None and self.trimEnd <= self.trimStart:
            raise ValueError("trimEnd must be greater than trimStart")
        if self.minDuration is not None and self.maxDuration is not None and self.maxDuration < self.minDuration:
            raise ValueError("maxDuration must be at least minDuration")
        return self


def parse_options(raw: str | dict | None) -> ProcessOptions:
    """Validate options; 400 naming the offending field."""
    try:
        if raw is None or raw == "":
            return ProcessOptions()
        if isinstance(raw, str):
            return ProcessOptions.model_validate_json(raw)
        return ProcessOptions.model_validate(raw)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            if err["type"] == "json_invalid":
                parts.append("options: not valid JSON")
            else:
                parts.append(f"options.{loc}: {err['msg']}" if loc else f"options: {err['msg'].removeprefix('Value error, ')}")
        raise ApiError(400, "; ".join(parts)) from None
