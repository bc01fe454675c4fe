"""Style templates: which Style DNA a job applies (docs/style-dna.md, "Applying a style").

A template is a previously uploaded video of the same account (`template_video_id`, on the v1
upload form, so that the video's jobs apply it, or in a job's body) or an inline DNA document
(`config.style`; it may name only the fields it applies). With both, the inline fields win.
The job keeps what to apply in `render_settings["style"]`; the scheduler extracts whatever
DNA is missing before the job's clips are rendered.
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.orm import Session

from control_plane.errors import ApiError
from reelfarm.models.accounts import Account
from reelfarm.models.videos import Video
from reelfarm.style_dna import StyleDNA


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
