"""Style DNA at the API: a video's own (`video_style`), and templates: which Style DNA a job
applies (docs/style-dna.md, "Applying a style").

A template is a previously uploaded video of the same account (`template_video_id`, on the v1
upload form, so that the video's jobs apply it, or in a job's body) or an inline DNA document
(`config.style`; it may name only the fields it applies). With both, the inline fields win.
The job keeps what to apply in `render_settings["style"]`; the scheduler extracts whatever
DNA is missing before the job's clips are rendered.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import delete
from sqlalchemy.orm import Session

from control_plane.errors import ApiError
from reelfarm.database import conflict_insert, utcnow
from reelfarm.models.accounts import Account
from reelfarm.models.styles import SourceStyle, StyleExtraction
from reelfarm.models.videos import Video
from reelfarm.states import StyleExtractionState
from reelfarm.style_dna import StyleDNA


@dataclass(frozen=True)
class VideoStyle:
    """Where a video's Style DNA stands: `dna` once extracted; else `error` when the extraction
    failed, or neither while it runs."""

    dna: dict | None = None
    error: str | None = None


def video_style(*, session: Session, video: Video) -> VideoStyle:
    """The video's Style DNA, asking for it if needed (commits).

    Kept by the SHA-256 of the source (table source_styles). Without it, an extraction request
    is recorded (table style_extractions, one per SHA-256 however many ask: the scheduler gives
    it a style task, or lets it follow one already extracting the source). A request that
    failed is reported once and then forgotten, so the next call asks again. Nothing here reads
    the media: render nodes extract, the scheduler keeps the DNA.
    """
    kept = session.get(SourceStyle, video.sha256)
    if kept is not None:
        return VideoStyle(dna=kept.dna)
    request = session.get(StyleExtraction, video.sha256)
    if request is not None and request.state == StyleExtractionState.failed:
        error = request.error or "style extraction failed"
        session.execute(delete(StyleExtraction).where(StyleExtraction.source_sha256 == video.sha256,
                                                      StyleExtraction.state == StyleExtractionState.failed))  # fmt: skip
        session.commit()
        return VideoStyle(error=error)
    if request is None:
        now = utcnow()
        session.execute(conflict_insert(session, StyleExtraction)
                        .values(source_sha256=video.sha256, video_id=video.id, state=StyleExtractionState.requested,
                                created_at=now, updated_at=now)
                        .on_conflict_do_nothing(index_elements=["source_sha256"]))  # fmt: skip
        session.commit()
    return VideoStyle()


def template_video(*, session: Session, account: Account, video_id: str | None, field: str) -> Video | None:
    """The account's video named by `field`; 400 naming the field when it is not one of theirs."""
    if not video_id:
        return None
    video = session.get(Video, video_id)
    if video is None or video.account_id != account.id:
        raise ApiError(400, f"{field}: no such video")
    return video


def inline_style(raw: object, *, field: str = "config.style") -> StyleDNA | None:
    """An inline DNA document; 400 naming each wrong field (`config.style.color_grade.temperature: ...`)."""
    if raw is None:
        return None
    try:
        return StyleDNA.model_validate(raw)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            parts.append(f"{field}.{loc}: {err['msg']}" if loc else f"{field}: {err['msg']}")
        raise ApiError(400, "; ".join(parts)) from None


def style_request(*, template: Video | None, inline: StyleDNA | None) -> dict | None:
    """What a job applies, as kept in its render_settings; None: no style is applied."""
    if template is None and inline is None:
        return None
    request: dict = {}
    if template is not None:
        request["template_video_id"] = template.id
        request["template_sha256"] = template.sha256
    if inline is not None:
        request["inline"] = inline.model_dump(mode="json", exclude_unset=True)
    return request
