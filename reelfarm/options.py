"""ProcessOptions: the options a job is made with (reels API document, camelCase keys).

Parsed once, at the API edge (control_plane/jobs/schemas.py turns a ValidationError into
a 400 naming the field), stored on the job as `model_dump()`, and read back typed with
`ProcessOptions.from_job` wherever a job's options matter: the scheduler's planning, the
content analysis, the render specs. Defaults and ranges live here and nowhere else.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from reelfarm.transcript import Word

# Seconds per clipLength value (reels document: 3-15 s, 20-45 s, 45-90 s).
CLIP_LENGTH_RANGES: dict[str, tuple[float, float]] = {"short": (3.0, 15.0), "medium": (20.0, 45.0),
                                                      "long": (45.0, 90.0)}  # fmt: skip
# Dev endpoints: minDuration defaults to 30 s, maxDuration to max(minDuration, 60 s).
DEV_MIN_DURATION = 30.0
DEV_MAX_DURATION = 60.0

Mode = Literal["ai", "none"]
AspectRatio = Literal["9:16", "1:1", "4:5", "16:9"]
CaptionPreset = Literal["none", "beasty", "karaoke", "mozi"]
Genre = Literal["podcast", "interview", "vlog", "tutorial", "auto"]
# The languages a multilingual Whisper model (base and smaller) transcribes, ISO 639-1
# (haw: Hawaiian). tests/render_nodes/test_speech.py checks the list against the model.
WHISPER_LANGUAGES: tuple[str, ...] = tuple("""
af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he hi hr ht hu hy id
is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn no oc pa pl ps pt ro ru sa sd si
sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi yi yo zh
""".split())


class TranscriptWord(BaseModel):
    """One spoken word given with a job, timed in source seconds (the API's input schema)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1, max_length=100)
    start: float = Field(ge=0)
    end: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "TranscriptWord":
        if self.end <= self.start:
            raise ValueError("end must be greater than start")
        return self

    def to_word(self) -> Word:
        return Word(self.text, self.start, self.end)


class ProcessOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = Field("ai", description="ai = pick moments; none = one full-source clip")
    # maxClips: the dev endpoints' name for the same thing.
    numClips: int = Field(3, ge=1, le=10, validation_alias=AliasChoices("numClips", "maxClips"),
                          description="Clips to generate (1-10)")  # fmt: skip
    clipLength: Literal["short", "medium", "long"] = Field("medium", description="3-15 s, 20-45 s, 45-90 s")
    aspectRatio: AspectRatio = Field("9:16", description="Output aspect ratio")
    captionPreset: CaptionPreset = Field("none", description="Burned-in captions")
    # Strict: a JSON boolean. A string such as "false" would otherwise read as true somewhere.
    removeAiVoice: StrictBool = Field(True, description="Splice out interviewer turns in interviews")
    autoHook: StrictBool = Field(True, description="Write a hook, title and hashtags")
    prompt: str = Field("", max_length=2000, description="Free-form instruction for moment selection")
    genre: Genre = Field("auto", description="Content genre")
    trimStart: float = Field(0.0, ge=0, description="Cut the source before this many seconds")
    trimEnd: float | None = Field(None, gt=0, description="Cut the source after this many seconds")
    # The dev endpoints' clip bounds; when set they replace clipLength's range.
    minDuration: float | None = Field(None, ge=1, le=600, description="Shortest clip, seconds (dev endpoints)")
    maxDuration: float | None = Field(None, ge=1, le=600, description="Longest clip, seconds (dev endpoints)")
    customInstructions: str = Field("", max_length=2000, description="Guidance for the selector (dev endpoints)")
    language: str | None = Field(None, description="Spoken language, ISO 639-1 (e.g. \"en\", \"de\"); "
                                                   "null: detected from the speech")
    # Words given with the job replace the recogniser's (captions, moment selection).
    transcript: list[TranscriptWord] | None = Field(
        None, max_length=100_000, description="Timed words {text, start, end} in source seconds, for captions"
    )

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() in ("", "auto"):
            return None
        code = value.strip().lower()
        if code not in WHISPER_LANGUAGES:
            raise ValueError(f"unknown language {value!r}: expected an ISO 639-1 code Whisper knows, e.g. en, de, ja")
        return code

    @model_validator(mode="after")
    def _ranges(self) -> "ProcessOptions":
        if self.trimEnd is not None and self.trimEnd <= self.trimStart:
            raise ValueError("trimEnd must be greater than trimStart")
        if self.minDuration is not None and self.maxDuration is not None and self.maxDuration < self.minDuration:
            raise ValueError("maxDuration must be at least minDuration")
        return self

    @classmethod
    def from_job(cls, stored: dict | None) -> "ProcessOptions":
        """The typed options of a job (its `options` column, written by `model_dump`)."""
        return cls.model_validate(stored or {})

    def length_range(self) -> tuple[float, float]:
        """(shortest, longest) clip length in seconds.

        minDuration/maxDuration (dev endpoints) replace clipLength's range when either is
        set: minDuration defaults to min(30, maxDuration), maxDuration to max(minDuration, 60).
        Otherwise clipLength: short 3-15, medium 20-45 (default), long 45-90.
        """
        if self.minDuration is None and self.maxDuration is None:
            return CLIP_LENGTH_RANGES[self.clipLength]
        high = self.maxDuration
        low = self.minDuration if self.minDuration is not None else min(DEV_MIN_DURATION, high)
        return low, high if high is not None else max(low, DEV_MAX_DURATION)

    def source_window(self, duration: float) -> tuple[float, float]:
        """[trimStart, trimEnd] clamped to a source of `duration` seconds; ValueError when empty."""
        start = self.trimStart
        end = min(self.trimEnd, duration) if self.trimEnd is not None else duration
        if end <= start:
            raise ValueError("the trimmed source is empty")
        return start, end

    @property
    def instructions(self) -> str:
        """prompt and customInstructions together: what the selection is asked to look for."""
        return f"{self.prompt} {self.customInstructions}"

    def supplied_words(self) -> list[Word]:
        """Words given with the job (empty when none were)."""
        return [w.to_word() for w in self.transcript or []]

    @property
    def needs_transcript(self) -> bool:
        """mode "ai" picks moments from the transcript; captions need one unless words came with the job."""
        return self.mode == "ai" or (self.captionPreset != "none" and not self.transcript)
